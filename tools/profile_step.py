"""Where a vgg training step's time goes: each layer's forward and backward (a Conv2d and
the ReLU it fuses as one), the loss and Adam, on 1 and on 2 threads (medians), and the
whole step beside the sum of its parts.

    python tools/profile_step.py [--batch 100] [--rounds 30] [--threads 1 2]

Medians of the parts sum to less than the whole step's median when the machine is noisy:
a slow call anywhere slows the step, while each part's median drops it (compare the whole
step's minimum).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np


def main() -> None:
    import numba
    from threadpoolctl import threadpool_limits

    from fastnet import models, optim
    from fastnet.layers import SoftmaxCrossEntropy
    from fastnet.module import _fuses

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    net = models.build("vgg", rng)
    opt, loss_fn = optim.Adam(net.parameters()), SoftmaxCrossEntropy()
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, args.batch)
    layers = list(net._modules.values())
    # the parts as Sequential runs them: a layer and the ReLU it fuses are one part
    parts, i = [], 0
    while i < len(layers):
        fused = i + 1 < len(layers) and _fuses(layers[i], layers[i + 1])
        parts.append((f"{i:>2}", layers[i : i + 1 + fused]))
        i += 1 + fused

    def timed(rec: dict, key: str, fn, *a):
        t0 = time.perf_counter()
        out = fn(*a)
        rec[key].append(time.perf_counter() - t0)
        return out

    def step(rec: dict) -> None:
        net.train()
        h = x
        for i, ms in parts:
            h = timed(rec, f"{i} {_name(ms)} forward", ms[0].forward, h, *ms[1:])
        timed(rec, "loss", loss_fn, h, t)
        g = loss_fn.backward()
        for i, ms in reversed(parts):
            g = timed(rec, f"{i} {_name(ms)} backward", ms[0].backward, g, *ms[1:])
        timed(rec, "Adam", opt.step)

    medians, wholes = {}, {}
    for threads in args.threads:
        numba.set_num_threads(threads)
        threadpool_limits(threads)
        rec: dict = defaultdict(list)
        for _ in range(5):
            step(defaultdict(list))
        for _ in range(args.rounds):
            timed(rec, "step", step, rec)
        medians[threads] = {k: float(np.median(v)) * 1e3 for k, v in rec.items()}
        wholes[threads] = np.array(rec["step"]) * 1e3
    first = args.threads[0]
    print("| part | " + " | ".join(f"{n} thread(s) ms" for n in args.threads) + " |")
    print("| --- |" + " --- |" * len(args.threads))
    for key in medians[first]:
        if key != "step":
            print(f"| {key} | " + " | ".join(f"{medians[n][key]:.2f}" for n in args.threads) + " |")
    for n in args.threads:
        parts = sum(v for k, v in medians[n].items() if k != "step")
        whole = float(np.median(wholes[n]))
        print(f"{n} thread(s): sum of the parts {parts:.1f} ms, whole step median "
              f"{whole:.1f} ms (min {wholes[n].min():.1f}); outside the parts "
              f"{whole - parts:.1f} ms")  # fmt: skip


def _name(modules: list) -> str:
    """``Conv2d+ReLU``: the kinds of the modules of one part."""
    return "+".join(type(m).__name__ for m in modules)


if __name__ == "__main__":
    main()
