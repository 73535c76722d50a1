"""Parity tests for kernels.activation (ReLU, sigmoid)."""

import warnings

import numpy as np
import pytest
from conftest import assert_close, assert_grad_close, numerical_grad

import kernels.activation as act
from kernels.activation import reference as ref

SHAPES = [(1,), (7,), (1, 1, 1, 1), (3, 5), (2, 3, 5, 7), (4, 16, 28, 28)]
OPS = [
    ("relu", act.relu_forward, act.relu_backward, ref.relu_forward_ref, ref.relu_backward_ref),
    (
        "sigmoid",
        act.sigmoid_forward,
        act.sigmoid_backward,
        ref.sigmoid_forward_ref,
        ref.sigmoid_backward_ref,
    ),
]
OP_IDS = [op[0] for op in OPS]


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_reference_backward_matches_finite_differences(op, rng):
    _, _, _, fwd_ref, bwd_ref = op
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from ReLU's kink
    dy = rng.standard_normal(x.shape)
    numeric = numerical_grad(lambda: float(np.sum(fwd_ref(x) * dy)), x)
    assert_grad_close(bwd_ref(dy, fwd_ref(x)), numeric)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_kernel_matches_reference(op, shape, dtype, parallel, rng):
    _, fwd, bwd, fwd_ref, bwd_ref = op
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    x_copy, dy_copy = x.copy(), dy.copy()
    y = fwd(x, parallel=parallel)
    assert_close(y, fwd_ref(x), "activation")
    assert_close(bwd(dy, y, parallel=parallel), bwd_ref(dy, fwd_ref(x)), "activation")
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dy, dy_copy)


def test_sigmoid_is_stable_for_large_inputs(dtype, parallel):
    x = np.array([-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = act.sigmoid_forward(x, parallel=parallel)
        y_ref = ref.sigmoid_forward_ref(x)
    assert np.all(np.isfinite(y))
    assert y[0] == 0 and y[-1] == 1 and y[3] == 0.5
    assert_close(y, y_ref, "activation")


def test_relu_propagates_nan(parallel):
    x = np.array([np.nan, -1.0, 2.0], dtype=np.float32)
    y = act.relu_forward(x, parallel=parallel)
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2


def test_non_contiguous_input_is_accepted(rng):
    x = rng.standard_normal((6, 8)).astype(np.float32)[:, ::2]
    assert_close(act.relu_forward(x), ref.relu_forward_ref(x), "activation")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: act.relu_forward(np.ones(3, np.int64)), "float32 or float64"),
        (lambda: act.relu_forward([1.0, 2.0]), "numpy array"),
        (lambda: act.relu_forward(np.ones((), np.float32)), r"\(N, \.\.\.\)"),
        (
            lambda: act.relu_backward(np.ones(3, np.float32), np.ones(3, np.float64)),
            "same float dtype",
        ),
        (
            lambda: act.sigmoid_backward(np.ones(3, np.float32), np.ones(4, np.float32)),
            r"y.shape = \(4,\)",
        ),
    ],
)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
