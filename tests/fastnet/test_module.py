"""The layer contract: registration, state_dict, modes, dtype conversion, imports."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnet
from fastnet import Affine, BatchNorm1d, Dropout, Module, Parameter, ReLU, Sequential, layers

REPO = Path(__file__).resolve().parents[2]


def small_mlp(rng: np.random.Generator) -> Sequential:
    return Sequential(
        Affine(4, 5, rng=rng), BatchNorm1d(5), ReLU(), Dropout(0.5, rng=rng), Affine(5, 3, rng=rng)
    )


def test_parameters_in_registration_order_with_dotted_names(rng):
    net = small_mlp(rng)
    names = [name for name, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert [p.name for p in net.parameters()] == ["weight", "bias"] * 3
    assert net.parameters()[0] is net[0].weight


def test_buffers_are_in_state_dict_not_in_parameters(rng):
    net = small_mlp(rng)
    state = net.state_dict()
    assert "1.running_mean" in state and "1.running_var" in state
    assert all("running" not in name for name, _ in net.named_parameters())
    assert len(state) == 8


def test_state_dict_round_trip_copies(rng):
    a, b = small_mlp(rng), small_mlp(np.random.default_rng(1))
    a[1].running_mean[:] = rng.standard_normal(5)
    state = a.state_dict()
    state["0.weight"][0, 0] += 1.0  # a copy: does not touch the module
    assert a[0].weight.data[0, 0] != state["0.weight"][0, 0]
    b.load_state_dict(a.state_dict())
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        np.testing.assert_array_equal(va, vb, err_msg=name)


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda s: s.pop("0.bias"), KeyError, r"missing keys \['0.bias'\]"),
        (lambda s: s.update(extra=np.zeros(1)), KeyError, r"unexpected keys \['extra'\]"),
        (
            lambda s: s.update({"4.weight": np.zeros((3, 5))}),
            ValueError,
            r"4.weight must have shape \(5, 3\), got \(3, 5\)",
        ),
    ],
    ids=["missing", "unexpected", "misshaped"],
)
def test_load_state_dict_is_strict(edit, error, match, rng):
    net = small_mlp(rng)
    state = net.state_dict()
    edit(state)
    with pytest.raises(error, match=match):
        net.load_state_dict(state)


def test_load_state_dict_non_strict_allows_missing_keys(rng):
    net = small_mlp(rng)
    state = net.state_dict()
    state.pop("0.bias")
    state["0.weight"] = np.ones((4, 5), np.float32)
    net.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(net[0].weight.data, 1.0)


def test_train_and_eval_are_recursive(rng):
    net = Sequential(small_mlp(rng), ReLU())
    assert net.eval() is net
    assert not any(m.training for _, m in net.named_modules())
    net.train()
    assert all(m.training for _, m in net.named_modules())


def test_to_converts_parameters_and_buffers(rng):
    net = small_mlp(rng).to(np.float64)
    assert all(v.dtype == np.float64 for v in net.state_dict().values())
    assert net[1].running_var is dict(net.named_buffers())["1.running_var"]
    with pytest.raises(ValueError, match="float32 or float64"):
        net.to(np.int32)


def test_backward_before_forward_raises(rng):
    with pytest.raises(RuntimeError, match="Affine.backward called before forward"):
        Affine(2, 3, rng=rng).backward(np.ones((1, 3), np.float32))


def test_reassigning_attributes_updates_registration(rng):
    m = Module()
    m.w = Parameter(np.zeros(2, np.float32))
    m.w = np.zeros(2)  # no longer a parameter
    assert m.parameters() == []
    with pytest.raises(RuntimeError, match="super"):

        class Broken(Module):
            def __init__(self):
                self.x = 1

        Broken()


def test_public_names():
    """Every layer of ``fastnet.layers``, the module contract and ``gradcheck``."""
    expected = {*layers.__all__, "Module", "Parameter", "Sequential", "gradcheck"}
    assert len(expected) == 15
    assert set(fastnet.__all__) == expected
    assert all(getattr(fastnet, name) is not None for name in expected)
    assert callable(fastnet.gradcheck)
    with pytest.raises(AttributeError):
        _ = fastnet.NoSuchLayer


def test_kernels_package_is_this_repository():
    import kernels

    assert Path(kernels.__file__).resolve().parent == REPO / "kernels"


def test_import_compiles_nothing():
    """Import time itself is an asv benchmark (asv_benchmarks/benchmarks/bench_startup.py)."""
    code = (
        "import fastnet; from fastnet import Conv2d, Affine; "
        "import sys, kernels._jit as j; "
        "ks = [v for m in list(sys.modules.values()) for v in vars(m).values() "
        "if isinstance(v, j.Kernel)]; "
        "assert ks, 'no kernels found'; "
        "assert all(not k.serial.signatures and not k.parallel.signatures for k in ks)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_fuses_a_conv_and_its_relu_into_the_same_bits(dtype, rng):
    """A Conv2d followed by a ReLU runs as one kernel per pass (``Conv2d.fuses``): the same
    output, gradients and ``dx`` bits as the layers one by one, and each layer's cache set
    (the ReLU's backward still works alone); a ReLU after another layer is not fused."""
    conv, relu = layers.Conv2d(3, 16, 3, padding=1, rng=rng, dtype=dtype), ReLU()
    net = Sequential(conv, relu, layers.MaxPool2d(2), ReLU())
    x = rng.standard_normal((4, 3, 8, 8)).astype(dtype)
    y = net(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = net.backward(dy)
    grads = [conv.weight.grad.copy(), conv.bias.grad.copy()]
    assert conv.fuses(relu) and not conv.fuses(net[2])
    h = x
    for m in net:  # each layer on its own
        h = m(h)
    np.testing.assert_array_equal(h, y)
    g = dy
    for m in reversed(list(net)):
        g = m.backward(g)
    np.testing.assert_array_equal(g, dx)
    for fused, apart in zip(grads, [conv.weight.grad, conv.bias.grad], strict=True):
        np.testing.assert_array_equal(fused, apart)
    net.to("reference")
    assert not conv.fuses(relu)
