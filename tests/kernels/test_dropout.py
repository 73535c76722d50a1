"""Parity tests for kernels.dropout (inverted dropout, PyTorch semantics)."""

import numpy as np
import pytest
from conftest import assert_close, assert_grad_close, numerical_grad

import kernels.dropout as drop
from kernels.dropout import reference as ref

SHAPES = [(1,), (7,), (1, 1, 1, 1), (3, 5), (2, 3, 5, 7)]
PS = [0.0, 0.25, 1.0]


@pytest.mark.parametrize("p", PS)
def test_reference_backward_matches_finite_differences(p, rng):
    x = rng.standard_normal((3, 4, 5))
    dy = rng.standard_normal(x.shape)

    def forward():
        return ref.dropout_forward_ref(x, p, np.random.default_rng(7))  # fixed mask

    numeric = numerical_grad(lambda: float(np.sum(forward()[0] * dy)), x)
    assert_grad_close(ref.dropout_backward_ref(dy, forward()[1], p), numeric)


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_matches_reference(shape, p, dtype, parallel, rng):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    x_copy, dy_copy = x.copy(), dy.copy()
    y, mask = drop.dropout_forward(x, p, np.random.default_rng(3), parallel=parallel)
    y_ref, mask_ref = ref.dropout_forward_ref(x, p, np.random.default_rng(3))
    assert mask.dtype == np.bool_ and mask.shape == shape
    np.testing.assert_array_equal(mask, mask_ref)
    assert_close(y, y_ref, "dropout")
    mask_copy = mask.copy()
    assert_close(
        drop.dropout_backward(dy, mask, p, parallel=parallel),
        ref.dropout_backward_ref(dy, mask, p),
        "dropout",
    )
    for a, copy in [(x, x_copy), (dy, dy_copy), (mask, mask_copy)]:
        np.testing.assert_array_equal(a, copy)


def test_p_zero_is_identity_and_p_one_is_zero(dtype, parallel, rng):
    x = rng.standard_normal((4, 6)).astype(dtype)
    y, mask = drop.dropout_forward(x, 0.0, rng, parallel=parallel)
    np.testing.assert_array_equal(y, x)
    assert mask.all()
    with np.errstate(all="raise"):
        y, mask = drop.dropout_forward(x, 1.0, rng, parallel=parallel)
        dx = drop.dropout_backward(x, mask, 1.0, parallel=parallel)
    assert not mask.any()
    np.testing.assert_array_equal(y, np.zeros_like(x))
    np.testing.assert_array_equal(dx, np.zeros_like(x))


def test_scale_is_cast_to_the_dtype():
    x = np.ones(8, np.float32)
    y, mask = drop.dropout_forward(x, 0.1, np.random.default_rng(0))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[mask], np.float32(1 / 0.9))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_seeded_mask_is_reproducible_with_keep_rate_near_one_minus_p(p, dtype):
    x = np.ones((1000, 1000), dtype)
    _, mask = drop.dropout_forward(x, p, np.random.default_rng(11))
    _, again = drop.dropout_forward(x, p, np.random.default_rng(11))
    _, other = drop.dropout_forward(x, p, np.random.default_rng(12))
    np.testing.assert_array_equal(mask, again)
    assert not np.array_equal(mask, other)
    assert abs(mask.mean() - (1 - p)) < 0.002  # about 4 standard deviations


X = np.ones((2, 3), np.float32)
MASK = np.ones((2, 3), bool)
RNG = np.random.default_rng(0)
BAD_INPUTS = [
    (lambda: drop.dropout_forward(X, -0.1, RNG), r"p must be in \[0, 1\], got -0.1"),
    (lambda: drop.dropout_forward(X, 1.5, RNG), r"p must be in \[0, 1\], got 1.5"),
    (lambda: drop.dropout_forward(X, float("nan"), RNG), r"p must be in \[0, 1\]"),
    (lambda: drop.dropout_forward(X.astype(np.int32), 0.5, RNG), "float32 or float64"),
    (lambda: drop.dropout_forward(np.float32(1.0), 0.5, RNG), "numpy array"),
    (lambda: drop.dropout_forward(np.ones((), np.float32), 0.5, RNG), r"\(N, \.\.\.\)"),
    (lambda: drop.dropout_forward(X, 0.5, 0), "numpy.random.Generator"),
    (lambda: drop.dropout_backward(X, MASK, 2.0), r"p must be in \[0, 1\]"),
    (lambda: drop.dropout_backward(X, MASK.astype(np.float32), 0.5), "bool numpy array"),
    (lambda: drop.dropout_backward(X, MASK[:1], 0.5), r"mask must have shape dy.shape"),
    (lambda: drop.dropout_backward(X.astype(np.int64), MASK, 0.5), "float32 or float64"),
]


@pytest.mark.parametrize("call, match", BAD_INPUTS)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
