"""kernels._jit: lazy compilation, on-disk cache, and the read-only-install fallback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import kernels.optim as optim
from kernels import _jit
from kernels.activation import cpu as activation_cpu
from kernels.optim import reference as optim_ref

REPO = Path(__file__).resolve().parents[2]

RUN_RELU = (  # large enough for the parallel variant
    "import numpy as np, kernels.activation as a; "
    "x = np.tile(np.array([-1.0, 2.0], np.float32), 1 << 17); "
    "assert (a.relu_forward(x, parallel=False) == np.maximum(x, 0)).all(); "
    "assert (a.relu_forward(x, parallel=True) == np.maximum(x, 0)).all()"
)


def run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    full_env.update(env, PYTHONPATH=str(cwd))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True
    )


def test_serial_and_parallel_variants_get_their_own_cache_files(tmp_path):
    shutil.copytree(
        REPO / "kernels", tmp_path / "kernels", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = run(RUN_RELU, tmp_path)
    assert out.returncode == 0, out.stderr
    names = [p.name for p in (tmp_path / "kernels" / "activation" / "__pycache__").iterdir()]
    assert any("relu_forward_serial" in n and n.endswith(".nbi") for n in names), names
    assert any("relu_forward_parallel" in n and n.endswith(".nbi") for n in names), names


def test_unwritable_package_folder_falls_back_to_the_user_cache(tmp_path):
    src = tmp_path / "site"
    shutil.copytree(REPO / "kernels", src / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    # A file where the cache folder would go: the package folder cannot take a cache
    # (what a read-only install looks like to Numba, even when running as root).
    (src / "kernels" / "activation" / "__pycache__").write_text("not a folder")
    cache_home = tmp_path / "cache"
    out = run(RUN_RELU, src, XDG_CACHE_HOME=str(cache_home))
    assert out.returncode == 0, out.stderr
    cached = [p.name for p in cache_home.rglob("*.nbi")]
    assert any("relu_forward_serial" in n for n in cached), cached
    # The second process loads from the fallback cache instead of compiling again.
    stats = "import kernels.activation.cpu as c; s = c.relu_forward.serial.stats; "
    stats += "print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))"
    out = run(f"{RUN_RELU}; {stats}", src, XDG_CACHE_HOME=str(cache_home))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0"], out.stdout


@pytest.mark.parametrize(
    "kernel, factor",
    [(activation_cpu.sigmoid_forward, 1), (activation_cpu.relu_forward, 4)],
    ids=["sigmoid", "relu"],
)  # fmt: skip
def test_inputs_below_the_size_threshold_run_the_serial_variant(kernel, factor, monkeypatch):
    calls = []
    monkeypatch.setattr(kernel, "serial", lambda *args: calls.append("serial"))
    monkeypatch.setattr(kernel, "parallel", lambda *args: calls.append("parallel"))
    assert kernel.size_factor == factor
    small = np.zeros(int(factor * _jit.PARALLEL_MIN_SIZE) - 1, np.float32)
    large = np.zeros(int(factor * _jit.PARALLEL_MIN_SIZE), np.float32)
    kernel(small, small)
    kernel(large, large)
    kernel(large, large, parallel=False)
    assert calls == ["serial", "parallel", "serial"]


@pytest.mark.parametrize("parallel", [False, True])
def test_float_division_by_zero_gives_nan_as_in_numpy(parallel, monkeypatch):
    # Kernels compile with error_model="numpy" (it lets LLVM vectorize divisions): 0 / 0
    # in Adagrad's update (zero gradient, eps 0) must give NaN as the reference does, not
    # raise ZeroDivisionError.
    monkeypatch.setattr(_jit, "PARALLEL_MIN_SIZE", 0)
    rng = np.random.default_rng(0)
    param = rng.standard_normal(64).astype(np.float32)
    grad = np.zeros_like(param)
    grad[::2] = rng.standard_normal(32).astype(np.float32)
    state, want = np.zeros_like(param), param.copy()
    with np.errstate(invalid="ignore"):
        optim_ref.adagrad_update_ref(want, grad, np.zeros_like(param), lr=0.1, eps=0.0, step=1)
    optim.adagrad_update(param, grad, state, lr=0.1, eps=0.0, step=1, parallel=parallel)
    assert np.isnan(want[1::2]).all()
    np.testing.assert_allclose(param, want, rtol=1e-6, equal_nan=True)


def test_compile_notice_speaks_once_when_compiling_and_not_for_compiled_code():
    said = []
    f, g = numba.njit(lambda a: a + 1), numba.njit(lambda a: a * 2)
    with _jit.compile_notice(lambda: said.append("first")):
        assert (f(1), g(1), f(2)) == (2, 2, 3)
    with _jit.compile_notice(lambda: said.append("second")):
        assert (f(3), g(4)) == (4, 8)
    assert said == ["first"]


WAIT_POLICY = (
    "import os, kernels.activation; maps = open('/proc/self/maps').read(); "
    "print(*(os.environ[k] for k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', "
    "'OPENBLAS_THREAD_TIMEOUT')), "
    "'libgomp' in maps, 'scipy.libs' in maps)"
)


def test_idle_worker_threads_are_told_to_spin_briefly_before_their_libraries_load():
    env = {k: v for k, v in os.environ.items() if k not in _jit.WAIT_POLICY}
    env["PYTHONPATH"] = str(REPO)
    for preset, expected in [
        ({}, "PASSIVE 5000 4"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE 5000 4"),
        ({"GOMP_SPINCOUNT": "0"}, "PASSIVE 0 4"),
    ]:
        out = subprocess.run(
            [sys.executable, "-c", WAIT_POLICY],
            env={**env, **preset},
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        # set at import, while neither libgomp nor SciPy's OpenBLAS is loaded yet
        assert out.stdout.split() == [*expected.split(), "False", "False"]


def _fill(x, t, chunks):
    x[t] = t + 1.0 + chunks


def _fill_all(x, chunks):
    for t in numba.prange(chunks):
        _body(x, t, chunks)  # noqa: F821 - the body, a global of the launcher's copy


@pytest.mark.parametrize("parallel", [False, True])
def test_chunk_kernels_run_every_chunk(parallel):
    x = np.zeros(3)
    _jit.ChunkKernel(_fill, _fill_all)(x, chunks=3, parallel=parallel)
    assert x.tolist() == [4.0, 5.0, 6.0]
