"""Parity tests for kernels.pool (2-d max and average pooling)."""

import numpy as np
import pytest
from conftest import assert_close, assert_grad_close, numerical_grad

import kernels.pool as pool
from kernels.pool import reference as ref

# (x shape, kernel_size, stride, padding)
CASES = [
    ((1, 1, 1, 1), 1, None, 0),
    ((2, 16, 28, 28), 2, None, 0),  # the common 2x2, stride 2 case
    ((1, 3, 7, 9), (2, 2), 2, 0),  # the same, odd sizes: last row and column dropped
    ((1, 1, 7, 5), 3, 1, 1),  # overlapping windows, odd non-square input
    ((2, 1, 9, 6), (3, 2), (2, 3), (1, 0)),  # non-square kernel, unequal stride and padding
    ((1, 2, 5, 5), 3, 3, 0),  # stride 3, last row and column dropped (floor mode)
    ((1, 3, 5, 4), (7, 6), 2, 1),  # kernel as large as the padded input
    ((3, 2, 5, 7), 5, 1, 2),  # padding = kernel / 2, stride 1
    ((2, 2, 5, 6), 4, 2, 2),  # windows half made of padding
]
CASE_IDS = [f"{s}-k{k}-s{st}-p{p}" for s, k, st, p in CASES]


def _inputs(kind: str, shape, dtype, rng) -> np.ndarray:
    """Normal values, or values from {0, 1, 2} so that ties fill the windows."""
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _max_bwd_ref(dy, x, *geometry):
    _, indices = ref.maxpool2d_forward_ref(x, *geometry)
    return ref.maxpool2d_backward_ref(dy, indices, x.shape)


REF_OPS = {
    "max": (lambda x, *g: ref.maxpool2d_forward_ref(x, *g)[0], _max_bwd_ref),
    "avg": (
        ref.avgpool2d_forward_ref,
        lambda dy, x, *g: ref.avgpool2d_backward_ref(dy, x.shape, *g),
    ),
}


@pytest.mark.parametrize("geometry", [(3, 1, 1), ((2, 3), (2, 1), (1, 0))], ids=str)
@pytest.mark.parametrize("op", REF_OPS, ids=str)
def test_reference_backward_matches_finite_differences(op, geometry, rng):
    fwd_ref, bwd_ref = REF_OPS[op]
    shape = (2, 2, 5, 6)
    # distinct values spaced far beyond eps, so no perturbation changes a window's max
    x = 0.1 * rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    dy = rng.standard_normal(fwd_ref(x, *geometry).shape)
    numeric = numerical_grad(lambda: float(np.sum(fwd_ref(x, *geometry) * dy)), x)
    assert_grad_close(bwd_ref(dy, x, *geometry), numeric)


@pytest.mark.parametrize("kind", ["normal", "ties"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_maxpool_kernel_matches_reference(case, kind, dtype, parallel, rng):
    shape, *geometry = case
    x = _inputs(kind, shape, dtype, rng)
    x_copy = x.copy()
    y, indices = pool.maxpool2d_forward(x, *geometry, parallel=parallel)
    y_ref, indices_ref = ref.maxpool2d_forward_ref(x, *geometry)
    assert_close(y, y_ref, "pool")
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, indices_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy_copy = dy.copy()
    dx = pool.maxpool2d_backward(dy, indices, shape, parallel=parallel)
    assert_close(dx, ref.maxpool2d_backward_ref(dy, indices_ref, shape), "pool")
    for a, a_copy in [(x, x_copy), (dy, dy_copy), (indices, indices_ref)]:
        np.testing.assert_array_equal(a, a_copy)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_avgpool_kernel_matches_reference(case, dtype, parallel, rng):
    shape, *geometry = case
    x = _inputs("normal", shape, dtype, rng)
    x_copy = x.copy()
    y = pool.avgpool2d_forward(x, *geometry, parallel=parallel)
    assert_close(y, ref.avgpool2d_forward_ref(x, *geometry), "pool")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy_copy = dy.copy()
    dx = pool.avgpool2d_backward(dy, shape, *geometry, parallel=parallel)
    assert_close(dx, ref.avgpool2d_backward_ref(dy, shape, *geometry), "pool")
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dy, dy_copy)


def test_maxpool_nan_and_inf_follow_pytorch(dtype, parallel):
    nan, inf = np.nan, np.inf
    x = np.array([[1, nan, 3, nan, -inf, -inf], [5, 6, 7, 8, -inf, -inf]], dtype=dtype)
    y, indices = pool.maxpool2d_forward(x[None, None], 2, parallel=parallel)
    # a NaN wins its window (the last NaN, as PyTorch); an all -inf window keeps its first
    np.testing.assert_array_equal(y[0, 0], [[nan, nan, -inf]])
    np.testing.assert_array_equal(indices[0, 0], [[1, 3, 4]])
    y_ref, indices_ref = ref.maxpool2d_forward_ref(x[None, None], 2)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(indices, indices_ref)


def test_non_contiguous_input_is_accepted(rng):
    x = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)[..., ::2]
    assert_close(pool.avgpool2d_forward(x, 2), ref.avgpool2d_forward_ref(x, 2), "pool")


X = np.ones((1, 1, 4, 4), np.float32)
DY = np.ones((1, 1, 2, 2), np.float32)
IDX = np.zeros((1, 1, 2, 2), np.int64)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pool.maxpool2d_forward(X[0], 2), r"x must have shape \(N, C, H, W\)"),
        (lambda: pool.avgpool2d_forward(X.astype(np.int32), 2), "float32 or float64"),
        (lambda: pool.maxpool2d_forward(X, 2, padding=2), "at most half of kernel_size"),
        (lambda: pool.avgpool2d_forward(X, (3, 2), padding=(1, 2)), "at most half"),
        (lambda: pool.maxpool2d_forward(X, 7, padding=1), r"larger than the padded input"),
        (lambda: pool.avgpool2d_forward(X, (2, 7), padding=1), r"= \(6, 6\)"),
        (lambda: pool.maxpool2d_forward(X, 0), "kernel_size must be >= 1"),
        (lambda: pool.maxpool2d_forward(X, 2, stride=(1, 0)), "stride must be >= 1"),
        (lambda: pool.avgpool2d_forward(X, 2, padding=-1), "padding must be >= 0"),
        (lambda: pool.maxpool2d_forward(X, (2, 2, 2)), "int or a pair of ints"),
        (lambda: pool.maxpool2d_backward(DY, IDX.astype(np.int32), X.shape), "int64"),
        (lambda: pool.maxpool2d_backward(DY, IDX[..., :1], X.shape), r"dy.shape = \(1, 1, 2, 2\)"),
        (lambda: pool.maxpool2d_backward(DY, IDX + 16, X.shape), r"\[0, H \* W\) = \[0, 16\)"),
        (lambda: pool.maxpool2d_backward(DY, IDX - 1, X.shape), r"\[0, H \* W\)"),
        (lambda: pool.maxpool2d_backward(DY, IDX, (1, 4, 4)), r"x_shape must be 4 positive"),
        (lambda: pool.maxpool2d_backward(DY, IDX, (2, 1, 4, 4)), r"x_shape's N, C"),
        (lambda: pool.maxpool2d_backward(DY[0], IDX, X.shape), r"\(N, C, OH, OW\)"),
        (lambda: pool.avgpool2d_backward(DY, X.shape, 3), r"\(N, C, OH, OW\) = \(1, 1, 1, 1\)"),
        (lambda: pool.avgpool2d_backward(DY.astype(int), X.shape, 2), "float32 or float64"),
        (lambda: pool.avgpool2d_backward(DY, X.shape, 2, padding=3), "at most half"),
    ],
)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
