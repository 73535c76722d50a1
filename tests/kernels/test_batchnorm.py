"""Parity tests for kernels.batchnorm (PyTorch BatchNorm1d/2d semantics)."""

import numpy as np
import pytest
from conftest import assert_close, assert_grad_close, numerical_grad

import kernels.batchnorm as bn
from kernels.batchnorm import reference as ref

# (shape, training): 1d and 2d, N=1 (legal in training only with H*W > 1), C=1,
# H = W = 1, odd and non-square spatial sizes.
CASES = [
    ((2, 1), True),
    ((7, 3), True),
    ((1, 4), False),
    ((7, 3), False),
    ((1, 4, 3, 5), True),
    ((3, 1, 1, 1), True),
    ((1, 1, 1, 1), False),
    ((2, 5, 7, 3), True),
    ((2, 5, 7, 3), False),
]
CASE_IDS = [f"{s}-{'train' if t else 'eval'}" for s, t in CASES]


def make_inputs(rng, shape, dtype):
    """x, gamma, beta, running_mean, running_var, dy in ``dtype``."""
    c = shape[1]
    arrays = (
        2 * rng.standard_normal(shape) + 0.5,
        rng.uniform(0.5, 2.0, c),
        rng.standard_normal(c),
        rng.standard_normal(c),
        rng.uniform(0.5, 2.0, c),
        rng.standard_normal(shape),
    )
    return [a.astype(dtype) for a in arrays]


def channel_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


@pytest.mark.parametrize(
    "shape, training",
    [((4, 3), True), ((4, 3), False), ((2, 3, 3, 2), True), ((2, 3, 3, 2), False)],
)
def test_reference_backward_matches_finite_differences(shape, training, rng):
    x, gamma, beta, rm, rv, dy = make_inputs(rng, shape, np.float64)

    def loss():
        y = ref.batchnorm_forward_ref(x, gamma, beta, rm.copy(), rv.copy(), training=training)[0]
        return float(np.sum(y * dy))

    _, mean, invstd = ref.batchnorm_forward_ref(
        x, gamma, beta, rm.copy(), rv.copy(), training=training
    )
    grads = ref.batchnorm_backward_ref(dy, x, gamma, mean, invstd, training=training)
    for analytic, wrt in zip(grads, (x, gamma, beta), strict=True):
        assert_grad_close(analytic, numerical_grad(loss, wrt))


@pytest.mark.parametrize("shape, training", CASES, ids=CASE_IDS)
def test_kernel_matches_reference(shape, training, dtype, parallel, rng):
    x, gamma, beta, rm, rv, dy = make_inputs(rng, shape, dtype)
    inputs = [x, gamma, beta, dy] + ([] if training else [rm, rv])  # buffers: eval only
    copies = [a.copy() for a in inputs]
    rm_ref, rv_ref = rm.copy(), rv.copy()
    out = bn.batchnorm_forward(x, gamma, beta, rm, rv, training=training, parallel=parallel)
    out_ref = ref.batchnorm_forward_ref(x, gamma, beta, rm_ref, rv_ref, training=training)
    for actual, expected in zip([*out, rm, rv], [*out_ref, rm_ref, rv_ref], strict=True):
        assert_close(actual, expected, "batchnorm")
    mean, invstd = out[1:]
    grads = bn.batchnorm_backward(dy, x, gamma, mean, invstd, training=training, parallel=parallel)
    grads_ref = ref.batchnorm_backward_ref(dy, x, gamma, mean, invstd, training=training)
    for actual, expected in zip(grads, grads_ref, strict=True):
        assert_close(actual, expected, "batchnorm")
    for a, copy in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, copy)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 5)], ids=str)
def test_running_stats_follow_the_formula_over_two_steps(shape, dtype, parallel, rng):
    momentum = 0.3
    _, gamma, beta, rm, rv, _ = make_inputs(rng, shape, dtype)
    expected_mean, expected_var = rm.astype(np.float64), rv.astype(np.float64)
    for _step in range(2):
        x = (3 * rng.standard_normal(shape) - 1).astype(dtype)
        bn.batchnorm_forward(
            x, gamma, beta, rm, rv, training=True, momentum=momentum, parallel=parallel
        )
        x64 = x.astype(np.float64)
        batch_mean = x64.mean(axis=channel_axes(x))
        batch_var = x64.var(axis=channel_axes(x), ddof=1)
        expected_mean = (1 - momentum) * expected_mean + momentum * batch_mean
        expected_var = (1 - momentum) * expected_var + momentum * batch_var
        assert_close(rm, expected_mean.astype(dtype), "batchnorm")
        assert_close(rv, expected_var.astype(dtype), "batchnorm")


def test_float32_statistics_stay_accurate_with_a_large_offset(rng):
    x64 = 1e4 + rng.standard_normal((16, 2, 32, 32))
    x = x64.astype(np.float32)
    c = np.ones(2, np.float32)
    _, mean, invstd = bn.batchnorm_forward(x, c, c, c.copy(), c.copy(), training=True)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(exact.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-5)


X4 = np.ones((2, 3, 4, 4), np.float32)
C3 = np.ones(3, np.float32)


def fwd(x=X4, gamma=C3, running_var=C3, training=True, **kw):
    return bn.batchnorm_forward(x, gamma, C3, C3.copy(), running_var, training=training, **kw)


def bwd(dy=X4, x=X4, mean=C3):
    return bn.batchnorm_backward(dy, x, C3, mean, C3, training=True)


BAD_INPUTS = [
    (lambda: fwd(x=np.ones((2, 3, 4), np.float32)), r"\(N, C\) or \(N, C, H, W\)"),
    (lambda: fwd(x=X4.astype(np.int64)), "float32 or float64"),
    (lambda: fwd(gamma=np.ones(4, np.float32)), r"gamma must have shape \(C,\) = \(3,\)"),
    (lambda: fwd(gamma=np.ones((3, 1), np.float32)), r"\(C,\) \(1-d\)"),
    (lambda: fwd(running_var=np.ones(3)), "same float dtype"),
    (lambda: fwd(x=np.ones((1, 3), np.float32)), "Expected more than 1 value per channel"),
    (lambda: fwd(x=X4[:1, :, :1, :1]), "Expected more than 1 value per channel when training"),
    (lambda: fwd(momentum=-0.1), "momentum must be a finite number >= 0"),
    (lambda: bwd(dy=X4[:, :, :3]), r"dy must have shape x.shape = \(2, 3, 4, 4\)"),
    (lambda: bwd(dy=X4.astype(np.float64)), "same float dtype"),
    (lambda: bwd(dy=X4[0]), r"\(N, C\) or \(N, C, H, W\)"),
    (lambda: bwd(mean=np.ones(2, np.float32)), r"mean must have shape \(C,\) = \(3,\)"),
]


@pytest.mark.parametrize("call, match", BAD_INPUTS)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
