"""fastnet vs. PyTorch eager (and torch.compile) on the VGG net, side by side.

Run with torch installed (``pip install torch==2.13.0``, a CPU build)::

    python asv_benchmarks/compare_torch.py [--threads 2] [--rounds 7] [--no-compile]

Both run in this one process, float32, batch 100 unless noted, with the same thread
count; every measurement alternates fastnet and torch round by round and reports the
median (and the min-max spread) of each, and the ratio fastnet time / torch time
(below 1: fastnet is faster); inference also runs fastnet's compiled plan
(``fastnet.inference.compile``, what ``evaluate`` and ``predict`` use). It prints the
machine first (CPU model, avx2/avx512f, the ISA and register tiles fastnet picked) and the
machine's ceiling: NumPy's 4096^3 float32 matrix product on the same threads, in a child
process without ``OPENBLAS_CORETYPE`` (which some machines here set to an older, slower
kernel); each convolution is also quoted in
GFLOP/s and as a fraction of that ceiling.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from benchmarks._vgg import BATCH, CONVS, POOLS  # noqa: E402


def timeit(fn: Callable[[], object], min_seconds: float = 0.2) -> float:
    """Seconds per call: the mean over enough calls to fill ``min_seconds``."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return elapsed / n


SGEMM = """
import time, numpy as np
from threadpoolctl import threadpool_limits
a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
best = float("inf")
with threadpool_limits({threads}):
    a @ a
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
print(2 * 4096**3 / best / 1e9)
"""


def machine(threads: int) -> tuple[str, float]:
    """A line naming the CPU, and the sgemm ceiling in GFLOP/s on ``threads`` threads."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""

    def field(name: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                     if ln.startswith(name)), "?")  # fmt: skip

    model = f"{field('model name')} (family {field('cpu family')}, model {field('model')})"
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                  if ln.startswith("flags")), [])  # fmt: skip
    import llvmlite.binding as llvm
    import numpy as np

    from kernels import _isa

    host = _isa.host()
    tiles = sorted({_isa.tile(host, np.float32, c) for c in (16, 32, 64)})
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    out = subprocess.run([sys.executable, "-c", SGEMM.format(threads=threads)], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    ceiling = float(out.split()[-1])
    line = (f"{model}; avx2 {'avx2' in flags}, avx512f {'avx512f' in flags}; "
            f"LLVM host CPU {llvm.get_host_cpu_name()}; fastnet ISA {host.name}, float32 tiles "
            f"{', '.join(f'{p}x{lanes}' for p, lanes in tiles)} (pixels x lanes); "
            f"sgemm ceiling {ceiling:.0f} GFLOP/s on {threads} threads")  # fmt: skip
    return line, ceiling


def compare(rows: list, name: str, candidates: dict[str, Callable[[], object]], rounds: int,
            flops: float = 0.0, ceiling: float = 0.0):  # fmt: skip
    """Time ``candidates`` round by round; ``flops`` per call adds GFLOP/s (and the fraction
    of ``ceiling``) to the printed line."""
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for key, fn in candidates.items():
            times[key].append(timeit(fn))
    rows.append((name, {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}))
    med = {k: v[0] for k, v in rows[-1][1].items()}
    ratios = "  ".join(f"{k}/fastnet {med[k] / med['fastnet']:.2f}x" for k in med if k != "fastnet")
    rates = ""
    if flops:
        rates = "  " + "  ".join(
            f"{k} {flops / t / 1e9:.0f} GF/s ({flops / t / 1e9 / ceiling:.0%})"
            for k, t in med.items()
        )
    print(f"  {name:<28} fastnet {med['fastnet'] * 1e3:8.2f} ms   {ratios}{rates}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()
    if importlib.util.find_spec("torch") is None:  # one line, not a traceback
        print("PyTorch is not installed: pip install torch==2.13.0", file=sys.stderr)
        return 2

    # torch ships its own libgomp.so.1, whose idle threads busy-wait by default (300,000
    # spins). It is imported first, so that it reads the environment as the user set it
    # (torch's own defaults), not fastnet's wait policy (kernels._jit: passive after a
    # brief spin), which Numba's OpenMP layer reads when it loads the system libgomp at
    # fastnet's first parallel kernel: each engine runs with its own settings. (Until
    # 2026-12-08 fastnet ran on Numba's workqueue layer here, which wakes its threads far
    # slower: the plan at batch 1 took 0.9 ms there against 0.14 ms with OpenMP.) Each
    # timing loop lasts at least 0.2 s, so the other engine's spinning threads reach
    # only its first milliseconds.
    import torch  # noqa: I001 - first: its OpenMP runtime reads the user's environment
    import numba
    import torch.nn.functional as F
    from threadpoolctl import threadpool_limits
    from torch_calibration import twin

    from fastnet import SoftmaxCrossEntropy, models, optim
    from fastnet.inference import compile as compile_plan
    from kernels.conv import conv2d_backward, conv2d_forward
    from kernels.pool import maxpool2d_backward, maxpool2d_forward

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    rng = np.random.default_rng(0)
    rows: list = []
    line, ceiling = machine(args.threads)
    print(f"fastnet vs torch {torch.__version__}, {args.threads} threads, float32, "
          f"{time.strftime('%Y-%m-%d')}, Numba layer {numba.config.THREADING_LAYER}")  # fmt: skip
    print(line)

    print("per layer (forward, backward):")
    for name, (c, oc, h, w, pad) in CONVS.items():
        x = rng.standard_normal((BATCH, c, h, w)).astype(np.float32)
        wt = (0.1 * rng.standard_normal((oc, c, 3, 3))).astype(np.float32)
        b = np.zeros(oc, np.float32)
        dy = rng.standard_normal(conv2d_forward(x, wt, b, 1, pad).shape).astype(np.float32)
        tx = torch.from_numpy(x).requires_grad_()
        tw, tb = torch.from_numpy(wt).requires_grad_(), torch.from_numpy(b).requires_grad_()
        tdy = torch.from_numpy(dy)

        def torch_bwd(tx=tx, tw=tw, tb=tb, tdy=tdy, pad=pad):
            y = F.conv2d(tx, tw, tb, padding=pad)
            return torch.autograd.grad(y, (tx, tw, tb), tdy)

        flops = 2.0 * dy.size * c * 9  # multiply-adds of the forward pass, x2
        compare(rows, f"{name} forward", {
            "fastnet": lambda x=x, wt=wt, b=b, pad=pad: conv2d_forward(x, wt, b, 1, pad),
            "torch": lambda tx=tx, tw=tw, tb=tb, pad=pad: F.conv2d(tx.detach(), tw.detach(),
                                                                  tb.detach(), padding=pad),
        }, args.rounds, flops, ceiling)  # fmt: skip
        compare(rows, f"{name} fwd+bwd", {
            "fastnet": lambda x=x, wt=wt, b=b, dy=dy, pad=pad: (
                conv2d_forward(x, wt, b, 1, pad), conv2d_backward(dy, x, wt, 1, pad)),
            "torch": torch_bwd,
        }, args.rounds, 3 * flops, ceiling)  # fmt: skip
    for name, (c, h, w) in POOLS.items():
        x = rng.standard_normal((BATCH, c, h, w)).astype(np.float32)
        y, idx = maxpool2d_forward(x, 2)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        tx = torch.from_numpy(x)
        ty, tidx = F.max_pool2d(tx, 2, return_indices=True)
        tdy = torch.from_numpy(dy)
        compare(rows, f"{name} forward", {
            "fastnet": lambda x=x: maxpool2d_forward(x, 2),
            "torch": lambda tx=tx: F.max_pool2d(tx, 2),
        }, args.rounds)  # fmt: skip
        compare(rows, f"{name} backward", {
            "fastnet": lambda dy=dy, idx=idx, s=x.shape: maxpool2d_backward(dy, idx, s),
            "torch": lambda tdy=tdy, tidx=tidx, tx=tx: F.max_unpool2d(tdy, tidx, 2,
                                                                     output_size=tx.shape[2:]),
        }, args.rounds)  # fmt: skip

    print("end to end (VGG, the book's DeepConvNet):")
    net = models.build("vgg", np.random.default_rng(0))
    opt = optim.Adam(net.parameters())
    loss_fn = SoftmaxCrossEntropy()
    tnet = twin(net)
    topt = torch.optim.Adam(tnet.parameters())
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, BATCH)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)

    def fastnet_step():
        net.train()
        loss_fn(net(x), t)
        net.backward(loss_fn.backward())
        opt.step()

    def torch_step(model=tnet):
        model.train()
        topt.zero_grad()
        F.cross_entropy(model(tx), tt).backward()
        topt.step()

    def infer(model, inp):
        model.eval()
        with torch.no_grad():
            return model(inp)

    steps = {"fastnet": fastnet_step, "torch": torch_step}
    plan = compile_plan(net)  # what evaluate and predict run
    inference = {"fastnet": lambda: net.eval()(x), "torch": lambda: infer(tnet, tx),
                 "fastnet plan": lambda: plan(x)}  # fmt: skip
    latency = {"fastnet": lambda: net.eval()(x[:1]), "torch": lambda: infer(tnet, tx[:1]),
               "fastnet plan": lambda: plan(x[:1])}  # fmt: skip
    if not args.no_compile:
        try:
            cnet = torch.compile(tnet)
            infer(cnet, tx), infer(cnet, tx[:1])
            inference["torch.compile"] = lambda: infer(cnet, tx)
            latency["torch.compile"] = lambda: infer(cnet, tx[:1])
        except Exception as e:  # noqa: BLE001 - torch.compile needs a C++ toolchain
            print(f"  (torch.compile unavailable: {type(e).__name__}: {e})")
    compare(rows, "train step, batch 100", steps, args.rounds)
    compare(rows, "inference, batch 100", inference, args.rounds)
    compare(rows, "inference, batch 1", latency, args.rounds)

    print("\n| what | fastnet ms (min-max) | torch ms (min-max) | fastnet/torch |")
    print("| --- | --- | --- | --- |")
    for name, res in rows:
        f, tr = res["fastnet"], res["torch"]
        cells = [f"{v[0] * 1e3:.2f} ({v[1] * 1e3:.2f}-{v[2] * 1e3:.2f})" for v in (f, tr)]
        print(f"| {name} | {cells[0]} | {cells[1]} | {f[0] / tr[0]:.2f} |")
    for name, res in rows[-3:-1]:
        rates = "  ".join(f"{k} {BATCH / v[0]:,.0f} img/s" for k, v in res.items())
        print(f"{name}: {rates}")
    name, res = rows[-1]
    print(f"{name} latency: " + "  ".join(f"{k} {v[0] * 1e3:.2f} ms" for k, v in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
