"""Training on the GPU (``--device cuda``): a model moved with ``Module.to("cuda")`` gives the
CPU's numbers. Without a GPU this runs in Numba's CUDA simulator (tiny shapes: it is slow)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fastnet import backend, layers
from fastnet.cli import main
from fastnet.cli.common import resolve_device, say_device
from fastnet.errors import FastnetError
from fastnet.loop import evaluate
from fastnet.module import Sequential
from fastnet.optim import Adam
from kernels.activation import relu_backward
from kernels.affine import affine_forward

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():
    pytest.skip("no CUDA device (set NUMBA_ENABLE_CUDASIM=1)", allow_module_level=True)

TOL = {"rtol": 1e-11, "atol": 1e-12}


def tiny_net(seed: int, dtype: type = np.float64) -> Sequential:
    rng = np.random.default_rng(seed)
    f64 = {"rng": rng, "dtype": dtype}
    return Sequential(
        layers.Conv2d(1, 2, 3, padding=1, bias=False, **f64),  # (a bias before BN has zero grad)
        layers.BatchNorm2d(2, dtype=dtype),
        layers.ReLU(),
        layers.MaxPool2d(2),
        layers.Flatten(),
        layers.Affine(8, 3, **f64),
        layers.Dropout(0.3, rng=np.random.default_rng(seed + 1)),
    )


def run_step(net: Sequential, x: np.ndarray, labels: np.ndarray, device: str):
    """One forward, backward and Adam step on ``device``; everything comes back to the host."""
    net.to(device)
    opt = Adam(net.parameters(), lr=0.01)
    loss_fn = layers.SoftmaxCrossEntropy()
    xd = backend.to_device(x) if device == "cuda" else x
    logits = net(xd)
    loss = loss_fn(logits, labels)
    dlogits = loss_fn.backward()
    assert backend.is_device(dlogits) == (device == "cuda")
    net.backward(dlogits)
    grads = {p.name + str(i): backend.to_host(p.grad) for i, p in enumerate(net.parameters())}
    opt.step()
    state = net.state_dict() | {"dropout mask": backend.to_host(net[-1]._mask)}
    return backend.to_host(logits), loss, grads, state, opt.state_dict()


def test_device_net_matches_cpu_net():
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4))
    labels = np.array([0, 2, 1])
    cpu_out = run_step(tiny_net(7), x, labels, "cpu")
    dev_out = run_step(tiny_net(7), x, labels, "cuda")
    np.testing.assert_allclose(dev_out[0], cpu_out[0], **TOL)
    assert dev_out[1] == pytest.approx(cpu_out[1], rel=1e-12)
    for three in (2, 3, 4):  # gradients, module state (incl. running stats), Adam state
        assert dev_out[three].keys() == cpu_out[three].keys()
        for k, v in cpu_out[three].items():
            assert type(dev_out[three][k]) is np.ndarray, k
            np.testing.assert_allclose(dev_out[three][k], v, **TOL, err_msg=k)


def test_state_dict_from_device_loads_into_cpu_net():
    net = tiny_net(3).to("cuda")
    state = net.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    cpu_net = tiny_net(4)
    cpu_net.load_state_dict(state)
    for k, v in cpu_net.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    net.load_state_dict(tiny_net(5).state_dict())  # host arrays onto the device
    assert backend.is_device(net[0].weight.data)
    np.testing.assert_array_equal(net.to("cpu")[0].weight.data, tiny_net(5)[0].weight.data)


def test_optimizer_state_round_trips_through_host():
    net = tiny_net(1).to("cuda")
    opt = Adam(net.parameters())
    for p in net.parameters():
        p.grad = backend.full_like(p.data, 0.5)
    opt.step()
    state = opt.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    opt2 = Adam(net.parameters())
    opt2.load_state_dict(state)
    assert backend.is_device(opt2.state[0]["exp_avg"])


def test_wrapper_rejects_host_mixed_with_device():
    x = np.ones((2, 3))
    w = cuda.to_device(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"device arrays \(w\) and host arrays \(x, b\)"):
        affine_forward(x, w, np.zeros(4))
    with pytest.raises(ValueError, match="same device"):
        relu_backward(cuda.to_device(x), x)


def test_strided_device_array_is_rejected_not_copied():
    x = cuda.to_device(np.ones((3, 4)))[:, 1]
    with pytest.raises(ValueError, match="C-contiguous"):
        relu_backward(x, x)


def test_resolve_device(monkeypatch):
    assert backend.resolve_device("cpu") == "cpu"
    assert backend.resolve_device("auto") == "cpu"  # the simulator only counts for "cuda"
    assert backend.resolve_device("cuda") == "cuda"
    monkeypatch.setattr(backend, "cuda_available", lambda: ("gpu", ""))
    assert backend.resolve_device("auto") == "cuda"
    monkeypatch.setattr(backend, "cuda_available", lambda: ("", "no driver"))
    assert backend.resolve_device("auto") == "cpu"
    with pytest.raises(backend.DeviceError, match=r"^--device cuda: no CUDA GPU found \(no") as e:
        backend.resolve_device("cuda")
    assert isinstance(e.value, FastnetError) and "\n" not in str(e.value)
    with pytest.raises(backend.DeviceError, match="must be one of"):
        backend.resolve_device("tpu")


def test_evaluate_uploads_batches_and_brings_predictions_back():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 1, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 3, 5)
    cpu_acc, cpu_pred = evaluate(tiny_net(9, np.float32), images, labels, batch_size=3)
    dev_acc, dev_pred = evaluate(tiny_net(9, np.float32).to("cuda"), images, labels, batch_size=3)
    assert dev_acc == cpu_acc
    np.testing.assert_array_equal(dev_pred, cpu_pred)


def test_cli_device_cuda_without_gpu_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(backend, "cuda_available", lambda: ("", "numba-cuda is not installed"))
    code = main(["train", "--device", "cuda", "--out", str(tmp_path / "run"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "fastnet train: error: --device cuda: no CUDA GPU found (numba-cuda is not installed); "
        "install fastnet[cuda] on a machine with an NVIDIA GPU or use --device cpu"
    ]
    assert not (tmp_path / "run").exists()


def test_cli_auto_says_when_it_falls_back_to_the_cpu(monkeypatch, capsys):
    monkeypatch.setattr(backend, "cuda_available", lambda: ("", "no driver"))
    assert resolve_device("auto") == "cpu"
    say_device("auto", "cpu")
    assert capsys.readouterr().out == "device: cpu (--device auto found no CUDA GPU)\n"
    say_device("cpu", "cpu")
    say_device("auto", "cuda")
    assert capsys.readouterr().out == ""


def test_auto_without_a_cuda_driver_does_not_import_numba_cuda():
    # Importing numba.cuda takes ~0.5 s of start-up; without a driver library it is skipped.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_CUDA_DRIVER"] = "/nonexistent/libcuda.so"
    code = (
        "import sys; from fastnet import backend; "
        "print(backend.resolve_device('auto'), backend.cuda_available()[1], "
        "'numba.cuda' in sys.modules, sep='|')"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cpu|no CUDA driver library was found|False"
