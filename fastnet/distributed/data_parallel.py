"""Data parallelism: one replica of the model per rank, each on a shard of every global
batch, its gradients summed over the ranks after backward (as PyTorch's DDP).

:class:`DataParallel` is what ``fastnet train`` wraps its model in; the functions below it
(:func:`broadcast`, :func:`shard`, :func:`allreduce_gradients`, :func:`average_buffers`)
serve a user's own training loop, in one process or under ``mpirun``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnet.distributed.world import World, world
from fastnet.errors import DistributedError
from fastnet.module import Module

# Seed key of the per-rank dropout streams: ``default_rng([seed, DROPOUT_STREAM, rank])``.
DROPOUT_STREAM = 4


def dropout_generator(
    seed: int, ranks: World, resumed_at: Sequence[int] = ()
) -> np.random.Generator:
    """This rank's source of dropout masks under MPI: one stream per rank of the one seed,
    ``default_rng([seed, DROPOUT_STREAM, rank, *resumed_at])`` (``resumed_at``: the epoch
    and step of a checkpoint saved by another number of ranks, whose streams cannot go on)."""
    return np.random.default_rng([seed, DROPOUT_STREAM, ranks.rank, *resumed_at])


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
        (dtype,) = dtypes
        self.buffer = np.empty(sum(int(np.prod(s)) for s in shapes) + extras, dtype)
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


class DataParallel(Module):
    """``module`` trained on this rank's shard of every global batch, as PyTorch's DDP.

    :meth:`part` takes this rank's contiguous part of a global batch (and notes its share);
    ``forward`` runs ``module`` on it; ``backward`` runs ``module.backward``, then one
    :class:`Reducer` call replaces the gradients by their share-weighted sum over the ranks
    (the gradient of the global batch mean) and averages the running statistics, so that
    every rank's optimizer takes the same step. In one process it is ``module`` itself: the
    whole batch, no reduction, the same bits.

    A rank whose part of a small last batch is empty adds zero gradients: ``forward`` gives
    an empty ``(0, K)`` output and :meth:`criterion`'s loss is 0 on it.
    """

    def __init__(self, module: Module, ranks: World | None = None) -> None:
        super().__init__()
        self.module = module
        self.ranks = world() if ranks is None else ranks
        self.reducer = Reducer(module, self.ranks, buffers=True) if self.ranks.size > 1 else None
        self.share = 1.0

    def part(self, n: int) -> slice:
        """This rank's part of a global batch of ``n`` items; its share is remembered for
        the gradient reduction of the next ``backward``."""
        mine = self.ranks.part(n)
        self.share = (mine.stop - mine.start) / n
        return mine

    def forward(self, x: Any) -> Any:
        """``module(x)``; for an empty shard, an empty output of ``module``'s width."""
        if len(x):
            return self.module(x)
        training = self.module.training
        self.module.eval()  # a side-effect-free probe of the output width
        width = self.module(np.zeros((1, *x.shape[1:]), x.dtype)).shape[1]
        self.module.train(training)
        return np.zeros((0, width), x.dtype)

    def backward(self, dy: Any) -> Any:
        """``module.backward(dy)`` (zero gradients for an empty shard), then the reduction."""
        dx = self.module.backward(dy) if len(dy) else dy
        if not len(dy):
            for p in self.module.parameters():
                p.grad = None  # the Reducer counts them as zeros
        if self.reducer is not None:
            self.reducer(self.share)
        return dx

    def criterion(self, loss_fn: Module) -> Module:
        """``loss_fn``, also taking an empty shard (loss 0, an empty gradient)."""
        return _ShardLoss(loss_fn)


class _ShardLoss(Module):
    """A loss that is 0 on an empty batch (the share of a rank without images)."""

    def __init__(self, loss_fn: Module) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self._empty: Any = None

    def forward(self, logits: Any, labels: np.ndarray) -> float:
        self._empty = None if len(labels) else logits
        return self.loss_fn(logits, labels) if len(labels) else 0.0

    def backward(self, dloss: float = 1.0) -> Any:
        return self.loss_fn.backward(dloss) if self._empty is None else self._empty


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
        return zlib.crc32(data, zlib.crc32(head, crc))  # type: ignore[arg-type]  # a buffer
    if isinstance(value, dict):
        for key in sorted(value):
            crc = _crc(value[key], zlib.crc32(str(key).encode(), crc))
        return crc
    if isinstance(value, (list, tuple)):
        for item in value:
            crc = _crc(item, crc)
        return crc
    return zlib.crc32(json.dumps(value, sort_keys=True).encode(), crc)
