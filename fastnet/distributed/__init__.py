"""Data-parallel training over MPI (through mpi4py): the one package that knows about ranks.

Launch ``fastnet train`` on ``N`` processes, on one machine or several::

    mpirun -n N python -m mpi4py -m fastnet train ...
    srun --mpi=pmix -n N python -m mpi4py -m fastnet train ...

``python -m mpi4py`` makes an uncaught exception on one rank abort the whole job instead
of leaving the others waiting. Each rank holds a replica of the model; ``--batch-size`` is
the global batch, split into equal contiguous shards; every step each rank computes the
gradients of its shard, and one in-place ``Allreduce`` of one contiguous buffer sums them,
weighted so that the result is the gradient of the global batch mean (with the running
statistics of BatchNorm, averaged). Then every rank applies the same optimizer step.

- :mod:`~fastnet.distributed.world`: the ranks and their collectives, launching, reporting;
- :mod:`~fastnet.distributed.data_parallel`: :class:`DataParallel` (what ``fastnet train``
  wraps its model in) and the functions of a user's own loop.

In one process (no MPI launcher), :func:`world` is a world of one rank whose collectives
do nothing, and nothing here imports mpi4py. The same functions (:func:`broadcast`,
:func:`shard`, :func:`allreduce_gradients`, :func:`average_buffers`) then run unchanged
in a user's own training loop in one process or under ``mpirun``.
"""

from fastnet.distributed.data_parallel import (
    DROPOUT_STREAM,
    DataParallel,
    Reducer,
    allreduce_gradients,
    average_buffers,
    broadcast,
    check_replicas,
    dropout_generator,
    shard,
)
from fastnet.distributed.world import (
    LAUNCHER_SIZE,
    STOP_SIGNALS,
    World,
    default_threads,
    launch_command,
    quiet_other_ranks,
    report,
    world,
)

__all__ = [
    "DROPOUT_STREAM",
    "LAUNCHER_SIZE",
    "STOP_SIGNALS",
    "DataParallel",
    "Reducer",
    "World",
    "allreduce_gradients",
    "average_buffers",
    "broadcast",
    "check_replicas",
    "default_threads",
    "dropout_generator",
    "launch_command",
    "quiet_other_ranks",
    "report",
    "shard",
    "world",
]
