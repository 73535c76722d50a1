"""The scripts a maintainer runs by hand end in one line per problem, not a traceback:
``tools/check_datasets.py`` for a dataset it cannot find, ``asv_benchmarks/compare_onnx.py``
for an engine that cannot start (the engines measured are still printed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def script(path: str):
    """The module of the script ``path`` (not run: its ``main`` is not called)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_datasets_says_in_one_line_that_a_dataset_is_missing(tmp_path, monkeypatch,
                                                                   capsys):  # fmt: skip
    """With an empty user cache of its own (another test may have downloaded Fashion-MNIST
    into the session's), and no Debian folder (the conftest's), nothing is found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    check = script("tools/check_datasets.py")
    monkeypatch.setattr(sys, "argv", ["check_datasets.py", str(tmp_path), "--datasets",
                                      "fashion-mnist", "--no-train"])  # fmt: skip
    assert check.main() == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("fashion-mnist: FAILED: missing train-images-idx3-ubyte.gz, ")
    assert str(tmp_path / "fashion-mnist") in lines[0]


def engine(result: dict | None) -> list[str]:
    """A process that prints ``result`` as JSON, or fails to start (None)."""
    if result is None:
        return [sys.executable, "-c", "raise SystemExit('ImportError: no onnxruntime here')"]
    return [sys.executable, "-c", f"print('starting'); print({json.dumps(result)!r})"]


def test_compare_onnx_prints_what_it_measured_when_an_engine_cannot_start(capsys):
    compare = script("asv_benchmarks/compare_onnx.py")
    timings = {"ceiling": {"gflops": 100.0}, "fastnet-plan": {"100": 0.004, "1": 0.0002},
               "fastnet-eager": {"100": 0.008, "1": 0.0004}, "onnxruntime": None}  # fmt: skip
    engines = list(timings)
    results, failed = compare.measure_rounds(engines, 2, lambda e: engine(timings[e]))
    assert failed == {"onnxruntime": "ImportError: no onnxruntime here"}
    assert {e: len(r) for e, r in results.items()} == {e: 2 for e in engines[:3]}
    compare.print_results(results, failed, threads=2)
    out = capsys.readouterr().out
    assert "ceiling: NumPy 2048^3 sgemm 100 GFLOP/s on 2 threads" in out
    assert "| fastnet-plan | 4.000 (4.000-4.000) | 25,000 | 0.200 (0.200-0.200) |" in out
    assert "plan / fastnet-eager: throughput at batch 100 2.00x, latency at batch 1 0.50x" in out
    assert out.splitlines()[-1] == (
        "onnxruntime failed (not measured): ImportError: no onnxruntime here"
    )
