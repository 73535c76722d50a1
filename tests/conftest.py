"""Shared fixtures and the one tolerance table for parity tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# Without an NVIDIA GPU, the CUDA kernels run in Numba's CUDA simulator. This must be
# set before numba is first imported, which is why it sits at the top of conftest.
if not Path("/dev/nvidia0").exists():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kernels import _jit  # noqa: E402

# (rtol, atol) per kernel family and dtype: kernel vs. its NumPy reference.
# Families that reduce over many terms get looser float32 bounds (summation order differs).
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "activation": {"float32": (1e-5, 1e-6), "float64": (1e-14, 1e-15)},
    "affine": {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)},
    "conv": {"float32": (1e-4, 1e-4), "float64": (1e-11, 1e-11)},
    "pool": {"float32": (1e-6, 1e-6), "float64": (1e-14, 1e-14)},
    "softmax_ce": {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)},
    "batchnorm": {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)},
    "dropout": {"float32": (1e-6, 1e-7), "float64": (1e-14, 1e-15)},
    "optim": {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)},
}

# The real MNIST / Fashion-MNIST files (../shared/datasets beside the repository).
DATA_ROOT = Path(
    os.environ.get("FASTNET_TEST_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
)

# Reference backward vs. central finite differences (float64 only).
FINITE_DIFF = {"eps": 1e-6, "rtol": 1e-6, "atol": 1e-8}


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (never a global seed)."""
    return np.random.default_rng(20261128)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets folder; a missing folder is a failure, not a skip."""
    if not (DATA_ROOT / "mnist").is_dir():
        pytest.fail(f"real datasets not found in {DATA_ROOT} (set FASTNET_TEST_DATA)")
    return DATA_ROOT


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> np.dtype:
    return np.dtype(request.param)


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def parallel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Kernel variant to test; ``True`` runs the parallel variant whatever the input size."""
    if request.param:
        monkeypatch.setattr(_jit, "PARALLEL_MIN_SIZE", 0)
    return request.param


def assert_close(actual: np.ndarray, expected: np.ndarray, family: str) -> None:
    """Assert shape and dtype first, then values within the family's tolerance."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    rtol, atol = TOLERANCES[family][actual.dtype.name]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = FINITE_DIFF["eps"]):
    """Central-difference gradient of the scalar ``f()`` with respect to ``x`` (in place).

    ``x`` is perturbed element by element and restored; ``f`` must read ``x``.
    """
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray) -> None:
    """Compare an analytic float64 gradient with a finite-difference one."""
    assert analytic.shape == numeric.shape
    np.testing.assert_allclose(
        analytic, numeric, rtol=FINITE_DIFF["rtol"], atol=FINITE_DIFF["atol"]
    )


def assert_identical_checkpoints(a: Path, b: Path) -> None:
    """Weights, optimizer state and saved progress of two checkpoints are bit-identical
    (all but ``train_seconds``, the wall-clock time)."""
    from fastnet import checkpoint

    (model_a, optim_a, meta_a), (model_b, optim_b, meta_b) = map(checkpoint.load, (a, b))
    for meta in (meta_a, meta_b):
        meta["state"].pop("train_seconds")
    assert meta_a == meta_b
    for state_a, state_b in ((model_a, model_b), (optim_a, optim_b)):
        assert state_a.keys() == state_b.keys()
        for name, value in state_a.items():
            np.testing.assert_array_equal(state_b[name], value, err_msg=name)
