"""Parity tests for kernels.affine (the book's Affine, Y = X @ W + B)."""

import numpy as np
import pytest
from conftest import assert_close, assert_grad_close, numerical_grad

import kernels.affine as aff
from kernels.affine import reference as ref

# (x shape, M): N=1, D=1, M=1, 3-d and 4-d inputs flattened, a book-sized layer
CASES = [
    ((1, 1), 1),
    ((1, 7), 3),
    ((5, 1), 4),
    ((6, 9), 1),
    ((3, 2, 3), 4),
    ((4, 3, 5, 5), 10),
    ((100, 4, 12, 12), 50),
]


def _operands(x_shape, m, dtype, rng):
    """x, w (scaled by 1/sqrt(D) so y stays O(1)), b and a random dy."""
    d = int(np.prod(x_shape[1:]))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((d, m)) / np.sqrt(d)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    dy = rng.standard_normal((x_shape[0], m)).astype(dtype)
    return x, w, b, dy


def test_reference_backward_matches_finite_differences(rng):
    x, w, b, dy = _operands((2, 3, 2, 2), 4, np.float64, rng)
    dx, dw, db = ref.affine_backward_ref(dy, x, w)
    for analytic, a in [(dx, x), (dw, w), (db, b)]:
        numeric = numerical_grad(lambda: float(np.sum(ref.affine_forward_ref(x, w, b) * dy)), a)
        assert_grad_close(analytic, numeric)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_kernel_matches_reference(case, dtype, parallel, rng):
    x, w, b, dy = _operands(*case, dtype, rng)
    copies = [a.copy() for a in (x, w, b, dy)]
    assert_close(
        aff.affine_forward(x, w, b, parallel=parallel), ref.affine_forward_ref(x, w, b), "affine"
    )
    grads = aff.affine_backward(dy, x, w, parallel=parallel)
    for got, expected in zip(grads, ref.affine_backward_ref(dy, x, w), strict=True):
        assert_close(got, expected, "affine")
    for a, a_copy in zip((x, w, b, dy), copies, strict=True):
        np.testing.assert_array_equal(a, a_copy)


def test_non_contiguous_input_is_accepted(rng):
    x, w, b, dy = _operands((6, 4), 3, np.float32, rng)
    xt = np.ascontiguousarray(x.T).T
    assert_close(aff.affine_forward(xt, w, b), ref.affine_forward_ref(x, w, b), "affine")
    assert_close(aff.affine_backward(dy, xt, w)[1], ref.affine_backward_ref(dy, x, w)[1], "affine")


X = np.ones((2, 3), np.float32)
W = np.ones((3, 4), np.float32)
B = np.ones(4, np.float32)
DY = np.ones((2, 4), np.float32)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: aff.affine_forward(X[0], W, B), r"x must have shape \(N, d1, \.\.\.\)"),
        (lambda: aff.affine_forward(X, W[0], B), r"w must have shape \(D, M\)"),
        (lambda: aff.affine_forward(X, W[:2], B), r"D = x\[0\].size = \(3, 4\)"),
        (lambda: aff.affine_forward(X, W, B[:3]), r"M = w.shape\[1\] = \(4,\)"),
        (lambda: aff.affine_forward(X, W, B[None]), r"b must have shape \(M,\)"),
        (lambda: aff.affine_forward(X.astype(np.int64), W, B), "float32 or float64"),
        (lambda: aff.affine_forward(X, W.astype(np.float64), B), "same float dtype"),
        (lambda: aff.affine_forward(X.tolist(), W, B), "numpy array"),
        (lambda: aff.affine_backward(DY[:1], X, W), r"dy must have shape \(N, M\) .* = \(2, 4\)"),
        (lambda: aff.affine_backward(DY[0], X, W), r"dy must have shape \(N, M\)"),
        (lambda: aff.affine_backward(DY, X, W[:, :3]), r"\(N, M\) .* = \(2, 3\)"),
        (lambda: aff.affine_backward(DY.astype(np.float64), X, W), "same float dtype"),
        (lambda: aff.affine_backward(DY, X, W.astype(np.int32)), "float32 or float64"),
    ],
)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
