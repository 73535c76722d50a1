"""Parity tests for kernels.optim: each in-place update vs its NumPy reference.

Float32 stays float32: the parity test compares float32 kernels with the float32 NumPy
reference (NumPy 2 keeps float32 with Python-float scalars) at float32 tolerance.
"""

import numpy as np
import pytest
from conftest import (
    ADAM,
    NEEDED_BY,
    OPTIM_STATES,
    assert_close,
    optim_case_ids,
    optim_initial_states,
    optim_step_kwargs,
)

import kernels.optim as ko
from kernels.optim import reference as ref

SHAPES = [(), (7,), (3, 5), (2, 3, 4, 5), (257,)]
STEPS = 3
KERNELS = {  # name -> (kernel, reference); their state arguments: OPTIM_STATES[name]
    "sgd": (ko.sgd_update, ref.sgd_update_ref),
    "adagrad": (ko.adagrad_update, ref.adagrad_update_ref),
    "rmsprop": (ko.rmsprop_update, ref.rmsprop_update_ref),
    "adam": (ko.adam_update, ref.adam_update_ref),
}
CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, weight_decay=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("adagrad", dict(lr=0.1, eps=1e-10)),
    ("adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, eps=1e-6)),
    ("rmsprop", dict(lr=0.01, alpha=0.99, eps=1e-8)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-8, centered=True)),
    ("rmsprop", dict(lr=0.01, alpha=0.3, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.1)),
    ("adam", ADAM),
    ("adam", dict(ADAM, weight_decay=0.1)),
    ("adam", dict(ADAM, amsgrad=True, weight_decay=0.1)),
    ("adam", dict(ADAM, weight_decay=0.1, decoupled_weight_decay=True)),
    ("adam", dict(ADAM, amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True)),
]
CASE_IDS = optim_case_ids(CASES)


def _copy(states):
    return {k: None if v is None else v.copy() for k, v in states.items()}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name, hyper", CASES, ids=CASE_IDS)
def test_kernel_matches_reference(name, hyper, shape, dtype, parallel, rng):
    kernel, reference = KERNELS[name]
    param = rng.standard_normal(shape).astype(dtype)
    states = optim_initial_states(name, hyper, shape, dtype)
    param_ref, states_ref = param.copy(), _copy(states)
    for t in range(1, STEPS + 1):
        grad = rng.standard_normal(shape).astype(dtype)
        grad_copy = grad.copy()
        kwargs = {**hyper, **optim_step_kwargs(name, t)}
        kernel(param, grad, *states.values(), **kwargs, parallel=parallel)
        reference(param_ref, grad.copy(), *states_ref.values(), **kwargs)
        np.testing.assert_array_equal(grad, grad_copy)
        assert_close(param, param_ref, "optim")
        for s, value in states.items():
            if value is not None:
                assert_close(value, states_ref[s], "optim")


@pytest.mark.parametrize(
    "name, hyper",
    [
        ("sgd", dict(lr=0.1, weight_decay=0.1, first_step=False)),
        ("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-8)),
        ("adam", dict(ADAM, step=1)),
    ],
    ids=["sgd", "rmsprop", "adam"],
)
def test_unused_state_is_not_touched(name, hyper, rng):
    kernel, state_names = KERNELS[name][0], OPTIM_STATES[name]
    states = [rng.standard_normal(4) ** 2 for _ in state_names]
    before = [s.copy() for s in states]
    kernel(rng.standard_normal(4), rng.standard_normal(4), *states, **hyper)
    for state_name, state, old in zip(state_names, states, before, strict=True):
        if state_name in NEEDED_BY:
            np.testing.assert_array_equal(state, old)


def test_non_contiguous_grad_is_accepted(rng):
    param = rng.standard_normal((3, 4))
    grad = rng.standard_normal((3, 8))[:, ::2]
    param_ref = param.copy()
    ko.sgd_update(param, grad, None, lr=0.1, first_step=True)
    ref.sgd_update_ref(param_ref, grad.copy(), None, lr=0.1, first_step=True)
    assert_close(param, param_ref, "optim")


def _arrays():
    return [np.zeros(3) for _ in range(5)]


def _adam(p, g, m, v, vmax=None, step=1, amsgrad=False):
    ko.adam_update(p, g, m, v, vmax, **ADAM, step=step, amsgrad=amsgrad)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, g, m, v, _: _adam(p.astype(np.int64), g, m, v), "float32 or float64"),
        (lambda p, g, m, v, _: _adam(list(p), g, m, v), "numpy array"),
        (lambda p, g, m, v, _: _adam(p, g[:2], m, v), r"grad must have shape param.shape = \(3,\)"),
        (lambda p, g, m, v, _: _adam(p, g.astype(np.float32), m, v), "same float dtype"),
        (lambda p, g, m, v, _: _adam(p, g, m[:2], v), r"exp_avg must have shape param.shape"),
        (lambda p, g, m, v, _: _adam(p, g, m, v.astype(np.float32)), "same float dtype"),
        (lambda p, g, m, v, _: _adam(np.zeros(6)[::2], g, m, v), "param must be C-contiguous"),
        (lambda p, g, m, v, _: _adam(p, g, m, np.zeros(6)[::2]), "exp_avg_sq must be C-contig"),
        (lambda p, g, m, v, _: _adam(p, g, m, v, amsgrad=True), "max_exp_avg_sq .* required"),
        (lambda p, g, m, v, x: _adam(p, g, m, v, x[:1], amsgrad=True), "max_exp_avg_sq must"),
        (lambda p, g, m, v, _: _adam(p, g, m, v, step=0), "step must be an int >= 1"),
        (lambda p, g, m, v, _: _adam(p, g, m, v, step=1.0), "step must be an int >= 1"),
        (
            lambda p, g, m, v, _: ko.sgd_update(p, g, None, lr=0.1, momentum=0.9, first_step=True),
            r"momentum_buf \(shape param.shape = \(3,\)\) is required when momentum != 0",
        ),
        (
            lambda p, g, m, v, _: ko.rmsprop_update(
                p, g, m, None, None, lr=0.1, alpha=0.9, eps=1e-8, centered=True
            ),
            "grad_avg .* is required when centered",
        ),
        (
            lambda p, g, m, v, _: ko.adagrad_update(p, g, m, lr=0.1, eps=1e-10, step=-1),
            "step must be an int >= 1",
        ),
    ],
)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call(*_arrays())


def test_read_only_param_is_rejected():
    p, g, m, v, _ = _arrays()
    p.flags.writeable = False
    with pytest.raises(ValueError, match="param must be writeable"):
        _adam(p, g, m, v)
