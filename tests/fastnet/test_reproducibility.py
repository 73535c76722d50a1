"""Reproducibility: the same seed, thread count and machine give bit-identical weights;
which operations depend on the thread count (README.md, "Reproducibility").
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import numba
import numpy as np
import pytest
import threadpoolctl
from conftest import TOLERANCES
from conftest import assert_identical_checkpoints as assert_identical

from fastnet import models, optim, run
from fastnet.config import TrainConfig
from fastnet.layers import Conv2d, SoftmaxCrossEntropy
from kernels.affine import affine_backward, affine_forward

# One thread: the fastest on a busy 2-core machine; two threads are covered in-process below.
SMALL = ["--limit", "240", "--batch-size", "40", "--val-split", "0.25", "--epochs", "1",
         "--threads", "1"]  # fmt: skip


def test_two_processes_give_bit_identical_weights(tmp_path):
    """vgg-bn: convolution, batch norm, pooling, dropout, affine, Adam, augmentation."""
    for name in ("a", "b"):
        argv = ["train", "--model", "vgg-bn", "--out", str(tmp_path / name),
                "--seed", "7", "--augment", "2", *SMALL]  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "fastnet.cli", *argv], capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
    assert_identical(tmp_path / "a" / "checkpoint.npz", tmp_path / "b" / "checkpoint.npz")


@pytest.mark.parametrize("model", ["mlp", "vgg-bn"])  # vgg-bn has every layer type
def test_fit_twice_in_one_process_gives_bit_identical_weights(model, tmp_path):
    config = TrainConfig(model=model, epochs=1, batch_size=20, limit=80, val_split=0.25)
    for name in ("a", "b"):
        run.fit(config, tmp_path / name, log=lambda line: None, progress=False)
    assert_identical(tmp_path / "a" / "checkpoint.npz", tmp_path / "b" / "checkpoint.npz")


# ---------------------------------------------------------------- thread-count dependence


@contextmanager
def threads(numba_threads: int, blas_threads: int):
    """Run the block with these thread counts (the BLAS of Numba's np.dot included)."""
    import scipy.linalg.cython_blas  # noqa: F401 - loads that BLAS, so that the limit reaches it

    before = numba.get_num_threads()
    numba.set_num_threads(numba_threads)
    try:
        with threadpoolctl.threadpool_limits(blas_threads):
            yield
    finally:
        numba.set_num_threads(before)


def one_step(numba_threads: int) -> dict[str, np.ndarray]:
    """Every layer output, input gradient, parameter gradient and Adam update of one
    training step of vgg-bn on a fixed batch, with ``numba_threads`` (BLAS on one)."""
    rng = np.random.default_rng(3)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 8)
    model = models.build("vgg-bn", np.random.default_rng(4))
    loss_fn = SoftmaxCrossEntropy()
    out = {}
    with threads(numba_threads, 1):
        for i, layer in enumerate(model):
            x = out[f"{type(layer).__name__} {i} y"] = layer(x)
        out["loss"] = np.array(loss_fn(x, labels))
        dy = out["loss dx"] = loss_fn.backward()
        for i in reversed(range(len(model))):
            dy = out[f"{type(model[i]).__name__} {i} dx"] = model[i].backward(dy)
        out |= {f"{name} grad": p.grad for name, p in model.named_parameters()}
        for p in model.parameters():  # the same gradient whatever the thread count
            p.grad = np.full_like(p.data, 0.5)
        optim.Adam(model.parameters()).step()
        out |= {f"{name} after Adam": p.data for name, p in model.named_parameters()}
    return out


def conv_gradients() -> set[str]:
    model = models.build("vgg-bn", np.random.default_rng(0))
    convs = [f"{i}." for i, m in enumerate(model) if isinstance(m, Conv2d)]
    return {f"{name} grad" for name, _ in model.named_parameters() if name.startswith(tuple(convs))}


@pytest.fixture(scope="module")
def steps() -> dict[int, dict[str, np.ndarray]]:
    """``one_step`` with 1 and 2 Numba threads."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    return {n: one_step(n) for n in (1, 2)}


def differing(a: dict, b: dict) -> set[str]:
    assert a.keys() == b.keys()
    return {k for k in a if not np.array_equal(a[k], b[k])}


def test_numba_thread_count_changes_only_conv_weight_and_bias_gradients(steps):
    """Conv2d's dw and db are sums over the batch split into one chunk per thread; every
    other kernel gives each output to one thread (element, row, channel or plane)."""
    one, two = steps[1], steps[2]
    changed = differing(one, two)
    assert changed <= conv_gradients()
    rtol, atol = TOLERANCES["conv"]["float32"]
    for name in changed:
        np.testing.assert_allclose(two[name], one[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("n, d, m", [(100, 1024, 50), (100, 784, 100)])
def test_blas_thread_count_changes_affine_products_by_rounding_only(n, d, m):
    """Affine's products are BLAS calls, which split the work among the BLAS's threads in a
    way that depends on their number (small products run on one thread and agree)."""
    rng = np.random.default_rng(5)
    x, w, dy = (rng.standard_normal(s, dtype=np.float32) for s in [(n, d), (d, m), (n, m)])
    b = rng.standard_normal(m, dtype=np.float32)
    results = []
    for blas_threads in (1, 2):
        with threads(1, blas_threads):
            results.append((affine_forward(x, w, b), *affine_backward(dy, x, w)))
    for name, one, two in zip(["y", "dx", "dw", "db"], *results, strict=True):
        scale = np.abs(one).max()  # sums of ~1000 terms: rounding relative to the largest
        np.testing.assert_allclose(two, one, rtol=0, atol=1e-6 * scale, err_msg=name)
    np.testing.assert_array_equal(results[0][3], results[1][3])  # db: Numba's own loop
