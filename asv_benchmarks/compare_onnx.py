"""fastnet's inference plan vs onnxruntime, OpenVINO and PyTorch eager on the VGG net.

Run with the peers installed (``pip install onnx onnxruntime openvino torch==2.13.0``)::

    python asv_benchmarks/compare_onnx.py [--threads 2] [--rounds 3] [--profile]

Each engine runs in its own process (``--engine NAME`` runs one and prints JSON), float32,
with the same thread count: fastnet through Numba's and BLAS's thread limits, onnxruntime
with ``intra_op_num_threads`` and sequential execution, OpenVINO (reading fastnet's ONNX
export) with ``INFERENCE_NUM_THREADS``, torch with ``set_num_threads``. Each engine's
output is checked against fastnet's eager model before it is timed. The
processes take turns, round by round, and each measures batch 1 and batch 100; the table
gives the median over the rounds (and the min-max spread). The machine's ceiling, NumPy's
2048^3 float32 matrix product on the same threads, is measured in its own process too, and
the CPU model, its avx512f flag and the load average are printed with the figures.
``--profile`` adds the plan's per-step times (and each convolution's GFLOP/s).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_torch import timeit  # noqa: E402

BATCHES = (1, 100)
ENGINES = ("fastnet-plan", "fastnet-eager", "onnxruntime", "openvino", "torch-eager")


def machine() -> str:
    """CPU model, family, avx512f, cores and load, from /proc/cpuinfo (Linux) or platform."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = info.get("flags", "").split()
    model = info.get("model name", platform.processor() or platform.machine())
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{model} (family {info.get('cpu family', '?')}), avx512f "
            f"{'yes' if 'avx512f' in flags else 'no'}, {os.cpu_count()} cores, "
            f"load average {load}")  # fmt: skip


def _vgg():
    import numpy as np

    from fastnet import models

    return models.build("vgg", np.random.default_rng(0)).eval()


def _runner(engine: str, threads: int, onnx_path: str) -> Callable:
    """A function ``x -> logits`` for ``engine``, set up for ``threads`` threads."""
    if engine.startswith("fastnet"):
        import numba
        from threadpoolctl import threadpool_limits

        from fastnet import inference

        numba.set_num_threads(threads)
        threadpool_limits(threads)
        net = _vgg()
        return inference.compile(net) if engine == "fastnet-plan" else net
    if engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]
    if engine == "openvino":
        import openvino

        # float32 as the others (on CPUs with bf16, OpenVINO's default precision is bf16)
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}  # fmt: skip
        compiled = openvino.Core().compile_model(onnx_path, "CPU", config)
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: x})[compiled.output(0)]
    import torch

    sys.path.insert(0, str(HERE.parent / "tools"))
    from torch_calibration import twin

    torch.set_num_threads(threads)
    tnet = twin(_vgg()).eval()

    def run(x):
        with torch.inference_mode():
            return tnet(torch.from_numpy(x)).numpy()

    return run


def measure(engine: str, threads: int, onnx_path: str, seconds: float) -> dict:
    """Seconds per call of ``engine`` at each batch size (median of 3 timings); the ceiling
    engine gives GFLOP/s instead."""
    import numpy as np

    if engine == "ceiling":
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
        return {"gflops": 2 * 2048**3 / timeit(lambda: a @ a, seconds) / 1e9}
    run = _runner(engine, threads, onnx_path)
    x = np.random.default_rng(1).random((max(BATCHES), 1, 28, 28), dtype=np.float32)
    for n in BATCHES:  # the same logits as fastnet's eager model, or no timing at all
        expected = _vgg()(x[:n])
        error = np.abs(run(x[:n]) - expected).max() / np.abs(expected).max()
        if not error < 1e-4:
            raise SystemExit(f"{engine}: its outputs differ from fastnet's at batch {n} "
                             f"(largest difference {error:.1e} of the largest logit)")  # fmt: skip
    return {str(n): statistics.median(timeit(lambda n=n: run(x[:n]), seconds) for _ in range(3))
            for n in BATCHES}  # fmt: skip


def profile(threads: int) -> None:
    """The plan's per-step medians at each batch size, with each convolution's GFLOP/s."""
    import numba
    import numpy as np
    from threadpoolctl import threadpool_limits

    from fastnet import inference
    from fastnet.layers import Conv2d

    numba.set_num_threads(threads)
    threadpool_limits(threads)
    net = _vgg()
    plan = inference.compile(net)
    for n in BATCHES:
        x = np.random.default_rng(1).random((n, 1, 28, 28), dtype=np.float32)
        flops, h = [], x
        for layer in inference.flat_layers(net):
            y = layer(h)
            if type(layer) is Conv2d:
                flops.append(2 * layer.weight.data.size * y.shape[0] * y.shape[2] * y.shape[3])
            h = y
        rows = plan.profile(x, rounds=30 if n > 1 else 300)
        total = sum(s for _, s in rows)
        print(f"plan profile, batch {n}: {total * 1e3:.3f} ms in all")
        for name, s in rows:
            rate = f"{flops.pop(0) / s / 1e9:6.1f} GFLOP/s" if "Conv2d" in name else " " * 14
            print(f"  {s * 1e3:8.3f} ms {100 * s / total:5.1f}%  {rate}  {name}")


def measure_rounds(
    engines: list[str], rounds: int, command: Callable[[str], list[str]]
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Run ``command(engine)`` (a process that prints one JSON line last) for each engine,
    round by round. An engine whose process fails is left out of the later rounds; the
    others go on.

    Returns
    -------
    (results, failed)
        ``{engine: [one dict per round it ran]}`` of the engines that ran at least once,
        and ``{engine: why}`` (the last line of its standard error) of those that failed.
    """
    results: dict[str, list[dict]] = {e: [] for e in engines}
    failed: dict[str, str] = {}
    for _ in range(rounds):
        for engine in [e for e in engines if e not in failed]:
            done = subprocess.run(command(engine), capture_output=True, text=True)
            lines = done.stdout.splitlines()
            if done.returncode == 0 and lines:
                results[engine].append(json.loads(lines[-1]))
                continue
            why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            failed[engine] = why
    return {e: r for e, r in results.items() if r}, failed


def print_results(results: dict[str, list[dict]], failed: dict[str, str], threads: int) -> None:
    """The table of the engines measured (and the ceiling, if measured), then one line per
    engine that could not run."""
    if "ceiling" in results:
        ceiling = statistics.median(r["gflops"] for r in results["ceiling"])
        print(f"ceiling: NumPy 2048^3 sgemm {ceiling:.0f} GFLOP/s on {threads} threads")
    engines = {e: runs for e, runs in results.items() if e != "ceiling"}
    print("\n| engine | batch 100: ms (min-max) | img/s | batch 1: ms (min-max) |")
    print("| --- | --- | --- | --- |")
    for engine, runs in engines.items():
        cells = []
        for n in (100, 1):
            v = [r[str(n)] * 1e3 for r in runs]
            cells.append(f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})")
            if n == 100:
                cells.append(f"{100e3 / statistics.median(v):,.0f}")
        print(f"| {engine} | " + " | ".join(cells) + " |")
    if "fastnet-plan" in engines:
        plan = {n: statistics.median(r[str(n)] for r in engines["fastnet-plan"]) for n in BATCHES}
        for engine, runs in engines.items():
            if engine != "fastnet-plan":
                other = {n: statistics.median(r[str(n)] for r in runs) for n in BATCHES}
                print(f"plan / {engine}: throughput at batch 100 {other[100] / plan[100]:.2f}x, "
                      f"latency at batch 1 {plan[1] / other[1]:.2f}x")  # fmt: skip
    for engine, why in failed.items():
        rounds = len(results.get(engine, []))
        done = f"after {rounds} round(s), measured above" if rounds else "not measured"
        print(f"{engine} failed ({done}): {why}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timing")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--profile", action="store_true", help="the plan's per-step times")
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # a child process: one engine
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(measure(args.engine, args.threads, args.onnx, args.seconds)))
        return 0
    peers = {"onnx": "onnx", "onnxruntime": "onnxruntime", "openvino": "openvino",
             "torch-eager": "torch==2.13.0"}  # fmt: skip
    missing = [peers[e] for e in ("onnx", *args.engines) if e in peers
               and importlib.util.find_spec(peers[e].split("=")[0]) is None]  # fmt: skip
    if missing:  # a peer that is not installed: one line, not a traceback
        print(f"not installed: pip install {' '.join(missing)}", file=sys.stderr)
        return 2

    from fastnet import onnx

    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {machine()}")
    print(f"VGG (the book's DeepConvNet), float32, {args.threads} threads, each engine in its "
          f"own process, {args.rounds} rounds")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "vgg.onnx")
        onnx.export(_vgg(), path)
        results, failed = measure_rounds(
            ["ceiling", *args.engines], args.rounds,
            lambda engine: [sys.executable, __file__, "--engine", engine, "--onnx", path,
                            "--threads", str(args.threads), "--seconds", str(args.seconds)],
        )  # fmt: skip
    print_results(results, failed, args.threads)
    print(f"after: {machine()}")
    if args.profile:
        profile(args.threads)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
