"""``Module.to("reference")``: every layer computes with its NumPy reference
(``kernels/<family>/reference.py``) and trains like the Numba kernels; ``to("cpu")``
switches back."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest
from conftest import assert_close

from fastnet import backend, config
from fastnet.layers import AvgPool2d, Flatten, Sigmoid, SoftmaxCrossEntropy
from fastnet.models import MODELS, build
from fastnet.module import Module, Sequential
from fastnet.optim import Adam
from kernels.pool import reference as pool_reference

STEPS, BATCH = 3, 2
# The loosest kernel family in each model: its tolerance bounds the whole model.
FAMILY = {"vgg": "conv", "vgg-bn": "conv", "simple": "conv", "mlp": "affine"}
# Adam's eps is raised from 1e-8 to 1e-3: a gradient that is zero in exact arithmetic (the
# bias of a convolution ahead of BatchNorm) is rounding noise (~1e-6 in float32), which
# eps=1e-8 turns into a step of up to lr either way, different on each backend.
ADAM = {"lr": 1e-3, "eps": 1e-3}


def batches(dtype: np.dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    """``STEPS`` seeded batches of ``BATCH`` random 1x28x28 images and labels 0..9.

    A small batch: fewer max-pool windows, hence fewer near-ties that rounding can
    resolve differently on the two backends (in float32 such a tie sends a gradient to
    another pixel, a legitimate divergence of about lr)."""
    rng = np.random.default_rng(1)
    images = rng.standard_normal((STEPS, BATCH, 1, 28, 28)).astype(dtype)
    return list(zip(images, rng.integers(0, 10, (STEPS, BATCH)), strict=True))


def train(name: str, dtype: np.dtype, device: str) -> list[tuple[float, dict, list]]:
    """Per step: the loss, the state after the update and the dropout masks."""
    model = build(name, rng=np.random.default_rng(0), dtype=dtype).to(device)
    loss_fn = SoftmaxCrossEntropy().to(device)
    optimizer = Adam(model.parameters(), **ADAM)
    assert backend.module_device(model) == device
    history = []
    for x, t in batches(dtype):
        loss = loss_fn(model(x), t)
        model.backward(loss_fn.backward())
        optimizer.step()
        masks = [m._mask for m in model if hasattr(m, "_mask")]
        history.append((loss, model.state_dict(), masks))
    return history


@pytest.mark.parametrize("name", list(MODELS))
def test_reference_trains_like_cpu(name, dtype):
    family = FAMILY[name]
    reference, cpu = train(name, dtype, "reference"), train(name, dtype, "cpu")
    for step, ((loss, state, masks), (cpu_loss, cpu_state, cpu_masks)) in enumerate(
        zip(reference, cpu, strict=True)
    ):
        assert_close(np.asarray(loss, dtype), np.asarray(cpu_loss, dtype), family)
        for mask, cpu_mask in zip(masks, cpu_masks, strict=True):  # same generator, same draws
            np.testing.assert_array_equal(mask, cpu_mask, err_msg=f"step {step}")
        assert state.keys() == cpu_state.keys()
        for key, value in cpu_state.items():
            assert_close(state[key], value, family)


def profiled_names(fn: Callable[[], object]) -> set[tuple[str, str]]:
    """``(module, function)`` of every Python function of ``kernels`` that ``fn()`` calls."""
    seen = set()

    def hook(frame, event, _arg):
        module = frame.f_globals.get("__name__", "")
        if event == "call" and module.startswith("kernels."):
            seen.add((module, frame.f_code.co_name))

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def every_layer(rng: np.random.Generator) -> tuple[Sequential, SoftmaxCrossEntropy]:
    """vgg-bn (conv, batchnorm, relu, max pool, affine, dropout) and the layers it lacks."""
    model = build("vgg-bn", rng=rng, dtype=np.float64)
    model = Sequential(AvgPool2d(1), model, Sigmoid(), Flatten())
    return model, SoftmaxCrossEntropy()


def one_step(model: Module, loss_fn: Module) -> float:
    """One forward and backward pass on a fixed batch of two images; the loss."""
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28))
    loss = loss_fn(model(x), np.array([3, 7]))
    model.backward(loss_fn.backward())
    return loss


def test_reference_runs_only_the_reference_code():
    model, loss_fn = every_layer(np.random.default_rng(0))
    for m in (model, loss_fn):
        m.to("reference")
    called = profiled_names(lambda: one_step(model, loss_fn))
    helpers = {"kernels._checks"}  # is_device, which the layers call on any backend
    fast = {(mod, f) for mod, f in called if mod not in helpers and not mod.endswith(".reference")}
    assert not fast, f"fast kernels called on the reference backend: {fast}"
    ops = ["relu", "sigmoid", "affine", "conv2d", "maxpool2d", "avgpool2d", "batchnorm"]
    ops += ["dropout", "softmax_ce"]
    expected = {f"{op}_{way}_ref" for op in ops for way in ("forward", "backward")}
    assert expected <= {f for _, f in called}


def test_to_cpu_after_reference_runs_the_numba_kernels_again(monkeypatch):
    model, loss_fn = every_layer(np.random.default_rng(0))
    twin, twin_loss_fn = every_layer(np.random.default_rng(0))
    for m in (model, loss_fn):
        assert m.to("reference").to(np.float64).to("cpu") is m
    assert backend.module_device(model) == "cpu"
    assert all(m.ops is type(m).KERNELS.get("fast") for _, m in model.named_modules())

    def boom(*args):
        raise AssertionError("reference code called")

    monkeypatch.setattr(pool_reference, "_geometry", boom)  # max and avg pool references
    assert one_step(model, loss_fn) == one_step(twin, twin_loss_fn)  # bit for bit
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, dict(twin.named_parameters())[name].grad)
    with pytest.raises(AssertionError, match="reference code called"):
        one_step(model.to("reference"), loss_fn)


def test_devices_and_module_device():
    assert backend.DEVICES is config.DEVICES
    assert backend.resolve_device("reference") == "reference"
    a = np.arange(3.0)
    assert backend.to(a, "reference") is a
    model = Sequential(Flatten())
    assert backend.module_device(model) == "cpu"  # no parameters
    model[0].to("reference")  # one sub-module is enough
    assert backend.module_device(model) == "reference"
