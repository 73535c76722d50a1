"""Timings behind README's "Train on several machines": the gradient Allreduce and the step.

    mpirun -n 2 python -m mpi4py tools/bench_distributed.py allreduce
    python tools/bench_distributed.py step --threads 2 --batches 2 13 16 100 125 1000

``allreduce``: vgg's gradients (123,552 float32 = 494 KB) summed over the ranks, as one bare
in-place ``Allreduce`` and as ``fastnet.distributed.Reducer`` (packing, the Allreduce, the
views); the median of ``--rounds`` calls, on rank 0. ``step``: one vgg training step
(forward, loss, backward, Adam) on random images, per batch size, median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def median_seconds(fn, rounds: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def allreduce(rounds: int) -> None:
    from mpi4py import MPI

    from fastnet import distributed, models

    ranks = distributed.world()
    model = models.build("vgg", np.random.default_rng(0))
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    reducer = distributed.Reducer(model, ranks)
    buffer = np.ones(reducer.buffer.size, np.float32)

    def bare() -> None:
        ranks.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    def packed() -> None:  # the gradients are views of its buffer after the first call: the
        reducer(1 / ranks.size)  # same work (equal ranks' means leave the values unchanged)

    ranks.barrier()
    t_bare, t_packed = median_seconds(bare, rounds), median_seconds(packed, rounds)
    if ranks.is_root:
        print(f"{ranks.size} ranks, {buffer.size:,} float32 ({buffer.nbytes / 1e3:.0f} KB): "
              f"Allreduce {t_bare * 1e6:.0f} us, Reducer {t_packed * 1e6:.0f} us "
              f"(median of {rounds}; {MPI.Get_library_version().split(',')[0]})")  # fmt: skip


def step(batches: list[int], threads: int, rounds: int) -> None:
    import numba
    from threadpoolctl import threadpool_limits

    from fastnet import models, optim
    from fastnet.layers import SoftmaxCrossEntropy

    numba.set_num_threads(threads)
    threadpool_limits(threads)
    rng = np.random.default_rng(0)
    model = models.build("vgg", rng)
    opt, loss_fn = optim.Adam(model.parameters()), SoftmaxCrossEntropy()
    for batch in batches:
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        t = rng.integers(0, 10, batch)

        def one_step(x: np.ndarray = x, t: np.ndarray = t) -> None:
            loss_fn(model.train()(x), t)
            model.backward(loss_fn.backward())
            opt.step()

        seconds = median_seconds(one_step, rounds)
        print(f"batch {batch:>5}, {threads} thread(s): step {seconds * 1e3:8.2f} ms, "
              f"{batch / seconds:7.0f} images/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("allreduce", "step"))
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[100])
    args = parser.parse_args()
    if args.what == "allreduce":
        allreduce(args.rounds)
    else:
        step(args.batches, args.threads, args.rounds)


if __name__ == "__main__":
    main()
