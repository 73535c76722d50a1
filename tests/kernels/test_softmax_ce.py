"""Parity tests for kernels.softmax_ce (softmax, fused softmax cross-entropy)."""

import warnings

import numpy as np
import pytest
from conftest import TOLERANCES, assert_close, assert_grad_close, numerical_grad

import kernels.softmax_ce as sce
from kernels.softmax_ce import reference as ref

# (N, K): N=1, K=1 (probs all 1, loss 0), K=2, tall, wide, odd sizes.
SHAPES = [(1, 1), (1, 10), (6, 1), (5, 2), (33, 10), (4, 101)]


def assert_loss_close(loss, expected, dtype):
    assert isinstance(loss, float)
    rtol, atol = TOLERANCES["softmax_ce"][np.dtype(dtype).name]
    assert loss == pytest.approx(expected, rel=rtol, abs=atol)


def test_reference_backward_matches_finite_differences(rng):
    x = 2 * rng.standard_normal((4, 5))
    labels = rng.integers(0, 5, size=4)
    dloss = 1.7
    numeric = numerical_grad(lambda: dloss * ref.softmax_ce_forward_ref(x, labels)[0], x)
    probs = ref.softmax_ce_forward_ref(x, labels)[1]
    assert_grad_close(ref.softmax_ce_backward_ref(probs, labels, dloss), numeric)


def test_reference_loss_is_mean_negative_log_softmax(rng):
    x = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, size=6)
    expected = -np.mean(np.log(ref.softmax_forward_ref(x))[np.arange(6), labels])
    assert ref.softmax_ce_forward_ref(x, labels)[0] == pytest.approx(expected, rel=1e-14)
    uniform = np.zeros((3, 7))
    assert ref.softmax_ce_forward_ref(uniform, labels[:3] % 7)[0] == pytest.approx(np.log(7))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_matches_reference(shape, dtype, parallel, rng):
    n, k = shape
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, k, size=n)
    dloss = float(rng.uniform(0.5, 2.0))
    x_copy, labels_copy = x.copy(), labels.copy()
    assert_close(
        sce.softmax_forward(x, parallel=parallel), ref.softmax_forward_ref(x), "softmax_ce"
    )
    loss, probs = sce.softmax_ce_forward(x, labels, parallel=parallel)
    loss_ref, probs_ref = ref.softmax_ce_forward_ref(x, labels)
    assert_loss_close(loss, loss_ref, dtype)
    assert_close(probs, probs_ref, "softmax_ce")
    probs_copy = probs.copy()
    dx = sce.softmax_ce_backward(probs, labels, dloss, parallel=parallel)
    assert_close(dx, ref.softmax_ce_backward_ref(probs, labels, dloss), "softmax_ce")
    for arr, copy in [(x, x_copy), (labels, labels_copy), (probs, probs_copy)]:
        np.testing.assert_array_equal(arr, copy)


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int32, np.int64])
def test_any_integer_label_dtype_is_accepted(label_dtype, rng):
    x = rng.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    loss, probs = sce.softmax_ce_forward(x, labels.astype(label_dtype))
    assert loss == sce.softmax_ce_forward(x, labels)[0]
    dx = sce.softmax_ce_backward(probs, labels.astype(label_dtype))
    np.testing.assert_array_equal(dx, sce.softmax_ce_backward(probs, labels))


def test_large_logits_are_stable(dtype, parallel):
    x = np.array([[0.0, 1e4, -1e4], [1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], dtype=dtype)
    labels = np.array([1, 2, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, probs = sce.softmax_ce_forward(x, labels, parallel=parallel)
        p = sce.softmax_forward(x, parallel=parallel)
        loss_ref, probs_ref = ref.softmax_ce_forward_ref(x, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(probs))
    assert loss == pytest.approx((0 + 2e4 + np.log(3)) / 3) == loss_ref
    assert_close(probs, probs_ref, "softmax_ce")
    assert_close(p, probs_ref, "softmax_ce")


X = np.zeros((3, 4), np.float32)
LABELS = np.array([0, 1, 3])
BAD_INPUTS = [
    (lambda: sce.softmax_forward(np.zeros((2, 3, 4))), r"\(N, K\) \(2-d\)"),
    (lambda: sce.softmax_forward(np.zeros((2, 3), np.int64)), "float32 or float64"),
    (lambda: sce.softmax_forward(np.zeros((0, 3))), "N, K >= 1"),
    (lambda: sce.softmax_ce_forward(X[0], LABELS), r"\(N, K\) \(2-d\)"),
    (lambda: sce.softmax_ce_forward(X, LABELS[:2]), r"labels must have shape \(N,\) = \(3,\)"),
    (lambda: sce.softmax_ce_forward(X, LABELS.astype(np.float32)), "integer numpy array"),
    (lambda: sce.softmax_ce_forward(X, np.array([True, False, True])), "integer numpy array"),
    (lambda: sce.softmax_ce_forward(X, [0, 1, 3]), "integer numpy array"),
    (lambda: sce.softmax_ce_forward(X, np.array([0, 4, 1])), r"\[0, 4\), got 4"),
    (lambda: sce.softmax_ce_forward(X, np.array([0, -1, 1])), r"\[0, 4\), got -1"),
    (lambda: sce.softmax_ce_backward(X, np.array([0, 1, 9])), "got 9"),
    (lambda: sce.softmax_ce_backward(X.astype(np.int32), LABELS), "float32 or float64"),
    (lambda: sce.softmax_ce_backward(X, LABELS.reshape(3, 1)), r"\(N,\) = \(3,\)"),
]


@pytest.mark.parametrize("call, match", BAD_INPUTS)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_contiguous_input_is_accepted(rng):
    x = rng.standard_normal((8, 6)).astype(np.float32)[::2, ::2]
    labels = np.array([0, 2, 1, 1, 2, 0, 0, 1])[::2]
    loss, probs = sce.softmax_ce_forward(x, labels)
    loss_ref, probs_ref = ref.softmax_ce_forward_ref(x, labels)
    assert_loss_close(loss, loss_ref, np.float32)
    assert_close(probs, probs_ref, "softmax_ce")
