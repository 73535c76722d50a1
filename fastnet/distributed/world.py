"""The ranks of a job (MPI's ``COMM_WORLD`` through mpi4py, or one process) and the few
collectives training needs; how a job is launched, reports an error once, and stops.

In one process (no MPI launcher), :func:`world` is a world of one rank whose collectives
do nothing, and nothing here imports mpi4py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO, TypeVar

import numpy as np

from fastnet.errors import DistributedError

# Environment variables in which MPI launchers give each process the job's size:
# Open MPI's mpirun; MPICH's and Intel MPI's mpiexec (Hydra), and srun --mpi=pmi2.
LAUNCHER_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
# Signals that stop training at the next step under MPI, as Ctrl-C does in one process: mpirun
# and srun forward SIGUSR1 to every rank (and Slurm sends it at ``sbatch --signal=USR1@60``);
# launchers stop a job with SIGTERM (Slurm at the time limit; Open MPI's mpirun on Ctrl-C,
# with SIGKILL 0.25 s later, mostly too soon to save).
STOP_SIGNALS = tuple(
    getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, s)
)
E = TypeVar("E", bound=BaseException)
_worlds: list[World] = []  # the process's world, once made (MPI itself is process-wide)


class World:
    """The ranks of a job and the few collectives training needs.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The ranks; ``None`` for one process, where every collective returns at once.

    Attributes
    ----------
    rank, size : int
        This process's rank in ``0..size-1`` and the number of ranks.
    """

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0, the one that reads checkpoints and writes the run folder."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items; the first ``n % size`` ranks get one more."""
        per, extra = divmod(n, self.size)
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + per + (self.rank < extra))

    def allreduce(self, buffer: np.ndarray) -> None:
        """Sum ``buffer`` (contiguous) over the ranks, in place: one ``Allreduce``."""
        if self.comm is not None:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    def bcast(self, buffer: np.ndarray) -> None:
        """Overwrite ``buffer`` (contiguous, the same size everywhere) with rank 0's."""
        if self.comm is not None:
            self.comm.Bcast(buffer, root=0)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.comm is not None:
            self.comm.Barrier()

    def allgather(self, values: np.ndarray) -> np.ndarray:
        """Every rank's ``values`` (1-d, the same length everywhere), stacked: ``(size, n)``."""
        out = np.empty((self.size, *values.shape), values.dtype)
        if self.comm is None:
            out[0] = values
        else:
            self.comm.Allgather(np.ascontiguousarray(values), out)
        return out

    def bcast_json(self, document: Any) -> Any:
        """Rank 0's JSON-serialisable ``document`` on every rank (JSON, never pickle)."""
        if self.comm is None:
            return document
        data = json.dumps(document).encode() if self.is_root else b""
        size = np.array([len(data)], np.int64)
        self.bcast(size)
        buffer = (
            np.frombuffer(data, np.uint8).copy() if self.is_root else np.empty(size[0], np.uint8)
        )
        self.bcast(buffer)
        return json.loads(buffer.tobytes())

    def gather_json(self, document: Any) -> list[Any] | None:
        """Every rank's ``document``, in rank order, on rank 0 (``None`` on the others)."""
        if self.comm is None:
            return [document]
        data = np.frombuffer(json.dumps(document).encode(), np.uint8)
        sizes = self.allgather(np.array([len(data)], np.int64))[:, 0]
        out = np.empty(int(sizes.sum()), np.uint8) if self.is_root else None
        self.comm.Gatherv(data, [out, sizes] if self.is_root else None, root=0)
        if out is None:  # not the root
            return None
        ends = np.cumsum(sizes)
        return [json.loads(out[e - s : e].tobytes()) for s, e in zip(sizes, ends, strict=True)]

    def sum_ints(self, values: Sequence[int]) -> list[int]:
        """``values`` summed over the ranks, element by element."""
        buffer = np.array(values, np.int64)
        self.allreduce(buffer)
        return [int(v) for v in buffer]

    def agreed(self, error: E) -> E:
        """Mark ``error`` as raised by every rank at the same point, so that :func:`report`
        prints it once (rank 0) instead of once per rank; returns ``error``."""
        error.on_every_rank = True  # type: ignore[attr-defined]
        return error

    def local_size(self) -> int:
        """Number of ranks on this machine (collective)."""
        if self.comm is None:
            return 1
        from mpi4py import MPI

        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return local.Get_size()
        finally:
            local.Free()


def world() -> World:
    """The ranks this process trains with: MPI's ``COMM_WORLD`` under ``python -m mpi4py``
    (or once mpi4py is imported), else one process; made once.

    mpi4py is imported only when it already is (``python -m mpi4py`` imports it first).

    Raises
    ------
    DistributedError
        An MPI launcher started several processes without mpi4py: each would train alone.
    """
    if not _worlds:
        _worlds.append(_make_world())
    return _worlds[0]


def _make_world() -> World:
    if "mpi4py" not in sys.modules:
        sizes = [os.environ.get(v, "") for v in LAUNCHER_SIZE]
        size = max((int(s) for s in sizes if s.isdigit()), default=1)
        if size > 1:
            raise DistributedError(
                f"started by an MPI launcher as one of {size} processes, but without mpi4py, "
                f"so each would train alone: run mpirun -n {size} python -m mpi4py -m fastnet "
                "train ... (pip install 'fastnet[mpi]')"
            )
        return World()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return World(comm if comm.Get_size() > 1 else None)


def _current() -> World:
    """The world if :func:`world` made one, else one process (never raises, never imports)."""
    return _worlds[0] if _worlds else World()


def default_threads() -> int:
    """Threads per process when ``--threads`` is not given: all cores in one process; under
    MPI, the cores this process may run on shared among the ranks on its machine."""
    ranks = world()
    if ranks.size == 1:
        return os.cpu_count() or 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // ranks.local_size())


def launch_command(ranks: World) -> str:
    """How to start ``fastnet`` on these ranks again (for messages)."""
    return "fastnet" if ranks.size == 1 else f"mpirun -n {ranks.size} python -m mpi4py -m fastnet"


def report(error: BaseException, line: str, file: TextIO) -> None:
    """Print the message ``line`` of ``error`` once per job.

    In one process: print it. Under MPI, an error marked by :meth:`World.agreed` (every rank
    raised it) is printed by rank 0 alone, and then the ranks meet at a barrier, so that rank
    0's line is out before the exit of any rank aborts the job; any other error is printed by
    the rank that raised it, prefixed with that rank.
    """
    ranks = _current()
    if ranks.size == 1:
        print(line, file=file, flush=True)
    elif getattr(error, "on_every_rank", False):
        if ranks.is_root:
            print(line, file=file, flush=True)
        ranks.barrier()
    else:
        print(f"rank {ranks.rank} of {ranks.size}: {line}", file=sys.stderr, flush=True)


def quiet_other_ranks() -> None:
    """Under MPI, send the standard output of every rank but 0 to ``os.devnull`` (errors
    still reach standard error through :func:`report`)."""
    if not world().is_root:
        sys.stdout = open(os.devnull, "w")  # for the rest of the process
