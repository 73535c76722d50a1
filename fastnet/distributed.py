"""Data-parallel training over MPI (through mpi4py): the one module that knows about ranks.

Launch ``fastnet train`` on ``N`` processes, on one machine or several::

    mpirun -n N python -m mpi4py -m fastnet train ...
    srun --mpi=pmix -n N python -m mpi4py -m fastnet train ...

``python -m mpi4py`` makes an uncaught exception on one rank abort the whole job instead
of leaving the others waiting. Each rank holds a replica of the model; ``--batch-size`` is
the global batch, split into equal contiguous shards; every step each rank computes the
gradients of its shard, and one in-place ``Allreduce`` of one contiguous buffer sums them,
weighted so that the result is the gradient of the global batch mean (plus the running
statistics of BatchNorm, averaged, and a few scalars: the loss, the correct predictions and
the stop flag). Then every rank applies the same optimizer step.

In one process (no MPI launcher), :func:`world` is a world of one rank whose collectives
do nothing, and nothing here imports mpi4py. The same functions (:func:`broadcast`,
:func:`shard`, :func:`allreduce_gradients`, :func:`average_buffers`) then run unchanged
in a user's own training loop in one process or under ``mpirun``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import zlib
from collections.abc import Sequence
from typing import Any, TextIO, TypeVar

import numpy as np

from fastnet.errors import DistributedError
from fastnet.module import Module

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
# Seed key of the per-rank dropout streams: ``default_rng([seed, DROPOUT_STREAM, rank])``.
DROPOUT_STREAM = 4

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
        if not self.is_root:
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


def dropout_generator(
    seed: int, ranks: World, resumed_at: Sequence[int] = ()
) -> np.random.Generator:
    """This rank's source of dropout masks under MPI: one stream per rank of the one seed,
    ``default_rng([seed, DROPOUT_STREAM, rank, *resumed_at])`` (``resumed_at``: the epoch
    and step of a checkpoint saved by another number of ranks, whose streams cannot go on)."""
    return np.random.default_rng([seed, DROPOUT_STREAM, ranks.rank, *resumed_at])


# ---------------------------------------------------------------- the public training API


class Reducer:
    """One contiguous buffer for the gradients of a model, and optionally its buffers and a
    few scalars, summed over the ranks by one in-place ``Allreduce`` per call.

    Parameters
    ----------
    model : Module
        Host parameters and buffers of one float dtype.
    ranks : World
    gradients : bool
        Sum the gradients (weighted: see ``__call__``).
    buffers : bool
        Average the model's buffers (BatchNorm's running statistics) over the ranks.
    extras : int
        Number of scalars summed along, in the model's dtype.
    """

    def __init__(
        self,
        model: Module,
        ranks: World,
        *,
        gradients: bool = True,
        buffers: bool = False,
        extras: int = 0,
    ) -> None:
        self.model, self.ranks, self.extras = model, ranks, extras
        self.params = model.parameters() if gradients else []
        self.buffer_names = [name for name, _ in model.named_buffers()] if buffers else []
        arrays = [p.data for p in self.params] + [b for _, b in model.named_buffers()]
        dtypes = {a.dtype for a in arrays} or {np.dtype(np.float64)}  # nothing but extras
        if len(dtypes) != 1 or not all(isinstance(a, np.ndarray) for a in arrays):
            raise ValueError(
                "Reducer: the parameters and buffers must be host arrays of one dtype, got "
                + ", ".join(sorted(map(str, dtypes)))
            )
        shapes = [p.data.shape for p in self.params]
        shapes += [b.shape for name, b in model.named_buffers() if name in self.buffer_names]
        self.buffer = np.empty(sum(int(np.prod(s)) for s in shapes) + extras, *dtypes)
        self.views, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            self.views.append(self.buffer[start : start + size].reshape(shape))
            start += size

    def __call__(self, weight: float = 1.0, extras: Sequence[float] = ()) -> np.ndarray:
        """Replace each ``p.grad`` by the sum over the ranks of ``weight * p.grad`` (a
        parameter whose ``grad`` is None counts as zeros), average the buffers, and return the
        sums of ``extras``. The new gradients are views of the buffer, valid until the next
        call."""
        scale = self.buffer.dtype.type
        n = len(self.params)
        buffers = dict(self.model.named_buffers())
        for p, view in zip(self.params, self.views, strict=False):
            if p.grad is None:
                view[...] = 0
            else:
                np.multiply(p.grad, scale(weight), out=view)
        for name, view in zip(self.buffer_names, self.views[n:], strict=True):
            np.multiply(buffers[name], scale(1 / self.ranks.size), out=view)
        tail = self.buffer[len(self.buffer) - self.extras :]
        tail[...] = extras
        self.ranks.allreduce(self.buffer)
        for p, view in zip(self.params, self.views, strict=False):
            p.grad = view
        for name, view in zip(self.buffer_names, self.views[n:], strict=True):
            buffers[name][...] = view
        return tail.copy()


def allreduce_gradients(model: Module, *, weight: float | None = None) -> None:
    """Replace every gradient of ``model`` by the sum over the ranks of ``weight * grad``.

    All gradients travel in one contiguous buffer, summed by one in-place ``Allreduce``
    (no call per parameter); afterwards every rank holds the same gradients, views of that
    buffer.

    Parameters
    ----------
    model : Module
        After ``backward`` on this rank's shard; host parameters of one float dtype.
    weight : float, optional
        This rank's share of the global batch, ``len(shard) / len(batch)`` when the shards
        differ in size; by default ``1 / size``, so that equal shards give the gradient of
        the global batch mean. In one process: the gradients times ``weight``.
    """
    ranks = world()
    Reducer(model, ranks)(1 / ranks.size if weight is None else weight)


def average_buffers(model: Module) -> None:
    """Average the buffers of ``model`` (BatchNorm's running statistics) over the ranks, in
    place (before an evaluation or a checkpoint, so that every rank holds the same model)."""
    Reducer(model, world(), gradients=False, buffers=True)()


def shard(indices: Sequence[Any] | np.ndarray) -> Any:
    """This rank's contiguous part of ``indices`` (e.g. of one global batch): ``np.array_split``
    order, the first ``len % size`` ranks get one more. In one process: all of ``indices``."""
    return indices[world().part(len(indices))]


def broadcast(model: Module, optimizer: Any = None) -> None:
    """Copy rank 0's parameters and buffers (and the optimizer's state) into every rank's
    ``model`` (and ``optimizer``), in place, so that all ranks start from the same point.

    Parameters
    ----------
    model : Module
        The same architecture on every rank.
    optimizer : fastnet.optim.Optimizer, optional
        Over ``model.parameters()``; its hyper-parameters and per-parameter state.
    """
    ranks = world()
    if ranks.size == 1:
        return
    model.load_state_dict(_bcast_arrays(ranks, model.state_dict()))
    if optimizer is not None:
        optimizer.load_state_dict(_bcast_arrays(ranks, optimizer.state_dict()))


def _bcast_arrays(ranks: World, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rank 0's ``arrays`` on every rank: a JSON table of names, dtypes and shapes, then one
    byte buffer holding them all (two broadcasts, no pickle)."""
    table = ranks.bcast_json(
        [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()] if ranks.is_root else None
    )
    sizes = [np.dtype(d).itemsize * int(np.prod(s)) for _, d, s in table]
    if ranks.is_root:
        data = np.frombuffer(b"".join(v.tobytes() for v in arrays.values()), np.uint8).copy()
    else:
        data = np.empty(sum(sizes), np.uint8)
    ranks.bcast(data)
    out, start = {}, 0
    for (name, dtype, shape), size in zip(table, sizes, strict=True):
        out[name] = data[start : start + size].view(dtype).reshape(shape)
        start += size
    return out


def check_replicas(ranks: World, **groups: Any) -> None:
    """Raise unless every rank holds the same ``groups`` (e.g. ``model=state_dict``): one
    CRC-32 per group, gathered from every rank and compared with rank 0's.

    Raises
    ------
    DistributedError
        On every rank (agreed), naming the first group that differs and the ranks.
    """
    table = ranks.allgather(np.array([_crc(v) for v in groups.values()], np.int64))
    for i, name in enumerate(groups):
        differ = [r for r in range(ranks.size) if table[r, i] != table[0, i]]
        if differ:
            raise ranks.agreed(
                DistributedError(
                    f"rank {', '.join(map(str, differ))} of {ranks.size} starts from other "
                    f"{name} than rank 0 (different files or library versions on its machine?)"
                )
            )


def _crc(value: Any, crc: int = 0) -> int:
    """CRC-32 of arrays (dtype, shape and bytes), of dicts (sorted by key), lists and JSON."""
    if isinstance(value, np.ndarray):
        head = f"{value.dtype.str}{value.shape}".encode()
        data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
        return zlib.crc32(data, zlib.crc32(head, crc))
    if isinstance(value, dict):
        for key in sorted(value):
            crc = _crc(value[key], zlib.crc32(str(key).encode(), crc))
        return crc
    if isinstance(value, (list, tuple)):
        for item in value:
            crc = _crc(item, crc)
        return crc
    return zlib.crc32(json.dumps(value, sort_keys=True).encode(), crc)
