"""Timings behind README's "Train on several machines": the gradient Allreduce and the step.

    mpirun -n 2 python -m mpi4py tools/bench_distributed.py allreduce
    python tools/bench_distributed.py step --threads 2 --batches 2 13 16 100 125 1000
    mpirun -n 2 python -m mpi4py tools/bench_distributed.py step --threads 1 --batches 100
    python tools/bench_distributed.py scaling --rounds 60 --repeats 2
    python tools/bench_distributed.py table --threads 2 --loopback-us 150

``allreduce``: vgg's gradients (123,552 float32 = 494 KB) summed over the ranks, as one bare
in-place ``Allreduce`` and as ``fastnet.distributed.Reducer`` (packing, the Allreduce, the
views); the median of ``--rounds`` calls, on rank 0. ``step``: one vgg training step
(forward, loss, backward, Adam) on random images, per batch size, median of ``--rounds``;
under mpirun each of the N ranks takes 1/N of each (global) batch and the step includes the
packed gradient Allreduce, as in ``fastnet train``. ``scaling``: the step at batch 100 as 1
process x 1 thread, 1 process x 2 threads and 2 ranks x 1 thread (``mpirun -n 2``), each a
child process, the three in turn ``--repeats`` times, in one table with images/s and ratios.
``table``: the step time and the efficiency of N nodes like this machine, on paper: the
measured step at the per-rank batch, plus a ring all-reduce of the gradients (each rank
sends and receives 2 (N - 1) / N x 494 KB in 2 (N - 1) messages) after the measured
loopback Allreduce (its fixed cost: copies and sums).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

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


def step_seconds(batches: list[int], threads: int, rounds: int) -> dict[int, float]:
    """Median seconds of one vgg training step per batch size, with ``threads`` threads."""
    import numba
    from threadpoolctl import threadpool_limits

    from fastnet import distributed, models, optim
    from fastnet.layers import SoftmaxCrossEntropy

    numba.set_num_threads(threads)
    threadpool_limits(threads)
    ranks = distributed.world()
    rng = np.random.default_rng(0)
    model = models.build("vgg", rng)
    opt, loss_fn = optim.Adam(model.parameters()), SoftmaxCrossEntropy()
    reducer = distributed.Reducer(model, ranks) if ranks.size > 1 else None
    seconds = {}
    for batch in batches:
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)[ranks.part(batch)]
        t = rng.integers(0, 10, batch)[ranks.part(batch)]

        def one_step(x: np.ndarray = x, t: np.ndarray = t) -> None:
            loss_fn(model.train()(x), t)
            model.backward(loss_fn.backward())
            if reducer is not None:
                reducer(1 / ranks.size)
            opt.step()

        seconds[batch] = median_seconds(one_step, max(3, rounds * 100 // (batch + 100)))
    return seconds


def step(batches: list[int], threads: int, rounds: int) -> None:
    from fastnet import distributed

    ranks = distributed.world()
    for batch, seconds in step_seconds(batches, threads, rounds).items():
        slowest = float(ranks.allgather(np.array([seconds])).max())
        if ranks.is_root:
            print(f"batch {batch:>5}, {ranks.size} rank(s) x {threads} thread(s): step "
                  f"{slowest * 1e3:8.2f} ms, {batch / slowest:7.0f} images/s")  # fmt: skip


GRADIENT_BYTES = 123_552 * 4  # vgg's gradients, float32
# (name, bytes/s, seconds per message): the latencies are assumptions, typical of TCP over
# 10 Gbit/s Ethernet and of RDMA (InfiniBand, RoCE) at 100 Gbit/s.
LINKS = [("10 Gbit/s", 10e9 / 8, 25e-6), ("100 Gbit/s", 100e9 / 8, 2e-6)]


def table(threads: int, rounds: int, loopback_us: float) -> None:
    """The README table: 8 and 64 nodes, two links, global batches 100 and 1,000.

    The speed-up is against one such node training the same global batch; the efficiency
    is the speed-up over N (below 100% from the Allreduce and from the smaller, less
    efficient per-node batches)."""
    cases = [(n, b) for n in (8, 64) for b in (100, 1000)]
    per_rank = {(n, b): -(-b // n) for n, b in cases}  # the largest shard sets the pace
    seconds = step_seconds(sorted({100, 1000, *per_rank.values()}), threads, rounds)
    print(f"one node ({threads} threads): step {seconds[100] * 1e3:.1f} ms at batch 100, "
          f"{seconds[1000] * 1e3:.0f} ms at 1,000; "
          f"loopback Allreduce {loopback_us:.0f} us\n")  # fmt: skip
    print("| nodes | link | global batch | per node | compute | Allreduce | step | images/s "
          "| speed-up | efficiency |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for n, batch in cases:
        for link, bandwidth, latency in LINKS:
            wire = 2 * (n - 1) / n * GRADIENT_BYTES / bandwidth + 2 * (n - 1) * latency
            comm = loopback_us * 1e-6 + wire
            compute = seconds[per_rank[n, batch]]
            total = compute + comm
            speedup = seconds[batch] / total
            print(f"| {n} | {link} | {batch:,} | {per_rank[n, batch]} | {compute * 1e3:.1f} ms "
                  f"| {comm * 1e3:.2f} ms | {total * 1e3:.1f} ms | {batch / total:,.0f} "
                  f"| {speedup:.1f}x | {speedup / n:.0%} |")  # fmt: skip


LAYOUTS = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
           ("2 ranks x 1 thread", 2, 1)]  # fmt: skip


def scaling(rounds: int, repeats: int) -> None:
    """The README's scaling table: each layout of ``LAYOUTS`` in a child process, in turn."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    mpirun = shutil.which("mpirun") or str(Path(sys.executable).with_name("mpirun"))
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    me = [sys.executable, "-m", "mpi4py", __file__, "step", "--batches", "100"]
    steps: dict[str, list[float]] = {name: [] for name, _, _ in LAYOUTS}
    for _ in range(repeats):
        for name, ranks, threads in LAYOUTS:
            launch = [mpirun, *root, "-n", str(ranks)] if ranks > 1 else []
            cmd = [*launch, *me, "--threads", str(threads), "--rounds", str(rounds)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            steps[name].append(float(re.search(r"step\s+([\d.]+) ms", out).group(1)))
    base = float(np.median(steps[LAYOUTS[0][0]]))
    print(f"vgg step at global batch 100, median of {rounds} per run, {repeats} run(s) each in "
          "turn\n\n| layout | step (each run) | images/s | vs 1 x 1 |\n"
          "| --- | --- | --- | --- |")  # fmt: skip
    for name, ms in steps.items():
        med = float(np.median(ms))
        runs = ", ".join(f"{v:.1f}" for v in ms)
        print(f"| {name} | {med:.1f} ms ({runs}) | {100e3 / med:,.0f} | {base / med:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("allreduce", "step", "table", "scaling"))
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[100])
    parser.add_argument("--loopback-us", type=float, default=150.0)
    parser.add_argument("--repeats", type=int, default=2, help="scaling: runs per layout")
    args = parser.parse_args()
    if args.what in ("allreduce", "scaling") and importlib.util.find_spec("mpi4py") is None:
        print("mpi4py is not installed: pip install -e '.[mpi]'", file=sys.stderr)
        raise SystemExit(2)  # one line, not a traceback
    if args.what == "allreduce":
        allreduce(args.rounds)
    elif args.what == "step":
        step(args.batches, args.threads, args.rounds)
    elif args.what == "scaling":
        scaling(args.rounds, args.repeats)
    else:
        table(args.threads, args.rounds, args.loopback_us)


if __name__ == "__main__":
    main()
