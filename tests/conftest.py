"""Shared fixtures, helpers and the one tolerance table for parity tests."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

# Without an NVIDIA GPU, the CUDA kernels run in Numba's CUDA simulator. This must be
# set before numba is first imported, which is why it sits at the top of conftest.
if not Path("/dev/nvidia0").exists():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastnet.data import FILES  # noqa: E402
from fastnet.layers import BatchNorm1d, BatchNorm2d  # noqa: E402
from fastnet.module import Module  # noqa: E402
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
    "augment": {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)},
}

# The first 1,000 Fashion-MNIST test images and labels (tools/make_fashion_mnist_subset.py).
FASHION_SUBSET = Path(__file__).resolve().parent / "fastnet" / "data" / "fashion-mnist-t10k-1000"
FASHION_TRAIN = 800  # the subset's first 800 serve as a training set, the last 200 as a test set
IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f8"): 0x0E}

# Reference backward vs. central finite differences (float64 only).
FINITE_DIFF = {"eps": 1e-6, "rtol": 1e-6, "atol": 1e-8}

# Optimizer updates (tests/kernels/test_optim.py, test_cuda.py): each update's state
# arguments in order; the hyper-parameter that an optional state is needed by; Adam's rates.
OPTIM_STATES = {
    "sgd": ("momentum_buf",),
    "adagrad": ("state_sum",),
    "rmsprop": ("square_avg", "momentum_buf", "grad_avg"),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
}
NEEDED_BY = {"momentum_buf": "momentum", "grad_avg": "centered", "max_exp_avg_sq": "amsgrad"}
ADAM = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test (never a global seed)."""
    return np.random.default_rng(20261128)


@pytest.fixture(scope="session", autouse=True)
def _no_data_outside_the_repository(tmp_path_factory: pytest.TempPathFactory):
    """Every test sees an empty user cache, no ``$FASTNET_DATA_DIR`` and no Debian
    Fashion-MNIST folder, whatever this machine holds: MNIST comes from the copy bundled
    with fastnet, unless a test points elsewhere. Subprocesses inherit the environment."""
    from fastnet.data import sources

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.delenv("FASTNET_DATA_DIR", raising=False)
        mp.setitem(sources.SYSTEM, "fashion-mnist", tmp_path_factory.mktemp("no-system-copy"))
        yield


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding written independently of the reader under test."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = IDX_CODES[dtype]
    magic = (code << 8) | array.ndim if magic is None else magic
    dims = b"".join(d.to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(dtype).tobytes()


def fashion_subset_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The subset's images (1000, 28, 28) and labels (1000,), uint8, decoded with NumPy
    alone (offsets from the IDX header's ndim byte), not with fastnet's reader."""
    arrays = []
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        data = gzip.decompress((FASHION_SUBSET / name).read_bytes())
        arrays.append(np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]))
    return arrays[0].reshape(-1, 28, 28), arrays[1]


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root whose ``fashion-mnist/`` holds real Fashion-MNIST: the subset's first
    ``FASHION_TRAIN`` images as the training set, the rest as the test set."""
    images, labels = fashion_subset_arrays()
    root = tmp_path_factory.mktemp("fashion-root")
    (root / "fashion-mnist").mkdir()
    arrays = [images[:FASHION_TRAIN], labels[:FASHION_TRAIN]]
    arrays += [images[FASHION_TRAIN:], labels[FASHION_TRAIN:]]
    for name, array in zip(FILES, arrays, strict=True):
        (root / "fashion-mnist" / name).write_bytes(gzip.compress(idx_bytes(array)))
    return root


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


def optim_case_ids(cases: list[tuple[str, dict]]) -> list[str]:
    """Test ids of ``(update name, hyper-parameters)`` cases: the name and the keys set
    beyond Adam's rates."""
    return [name + "".join(f"-{k}" for k in hyper if k not in ADAM) for name, hyper in cases]


def optim_initial_states(name: str, hyper: dict, shape: tuple, dtype) -> dict:
    """Torch's initial state of update ``name``: zeros (Adagrad's sum: 0.1; SGD's buffer,
    overwritten on the first step, NaN: its content must not matter); None where unused."""
    states = {}
    for s in OPTIM_STATES[name]:
        if s in NEEDED_BY and not hyper.get(NEEDED_BY[s]):
            states[s] = None
        else:
            states[s] = np.full(shape, {"sgd": np.nan, "adagrad": 0.1}.get(name, 0.0), dtype)
    return states


def optim_step_kwargs(name: str, t: int) -> dict:
    """The step argument of update ``name`` at its ``t``-th call (1-based)."""
    if name == "sgd":
        return {"first_step": t == 1}
    return {"step": t} if name in ("adagrad", "adam") else {}


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray) -> None:
    """Compare an analytic float64 gradient with a finite-difference one."""
    assert analytic.shape == numeric.shape
    np.testing.assert_allclose(
        analytic, numeric, rtol=FINITE_DIFF["rtol"], atol=FINITE_DIFF["atol"]
    )


def randomize_norms(model: Module, rng: np.random.Generator) -> Module:
    """Give every batch norm non-trivial scale, shift and running statistics (a fresh one is
    the identity in eval mode, which would hide a wrong fold)."""
    for _, m in model.named_modules():
        if isinstance(m, (BatchNorm1d, BatchNorm2d)):
            c, dt = m.weight.data.shape[0], m.weight.data.dtype
            m.weight.data[...] = rng.uniform(0.5, 1.5, c).astype(dt)
            m.bias.data[...] = rng.standard_normal(c).astype(dt)
            m.running_mean[...] = rng.standard_normal(c).astype(dt)
            m.running_var[...] = rng.uniform(0.2, 2.0, c).astype(dt)
    return model


class Double(Module):
    """A module fastnet does not know: the plan must run it as itself."""

    def forward(self, x):
        return 2 * x


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
