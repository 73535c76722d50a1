"""A PyTorch model and its weights, ported to fastnet, give PyTorch's outputs and gradients.

The expected values were recorded with torch 2.13 by tools/make_torch_layer_fixtures.py
(torch is not needed here). Conv weights keep PyTorch's layout; a Linear weight is
transposed into an Affine weight.
"""

from pathlib import Path

import numpy as np
import pytest

from fastnet import Sequential, layers

FIXTURE = Path(__file__).parent / "data" / "torch_layers.npz"
TOL = {"rtol": 1e-10, "atol": 1e-12}
LINEAR_WEIGHTS = ("8.weight", "11.weight")  # torch (out, in) = Affine (in, out).T


def as_fastnet(name: str, value: np.ndarray) -> np.ndarray:
    return value.T if name in LINEAR_WEIGHTS else value


@pytest.fixture(scope="module")
def recorded() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as f:
        return dict(f)


def ported(recorded: dict[str, np.ndarray]) -> Sequential:
    f64 = np.float64
    net = Sequential(
        layers.Conv2d(2, 4, 3, padding=1, dtype=f64),
        layers.BatchNorm2d(4, dtype=f64),
        layers.ReLU(),
        layers.MaxPool2d(2),
        layers.Conv2d(4, 3, (2, 3), stride=(1, 2), padding=(1, 2), dtype=f64),
        layers.Sigmoid(),
        layers.AvgPool2d(2, stride=1, padding=1),
        layers.Flatten(),
        layers.Affine(60, 6, dtype=f64),
        layers.BatchNorm1d(6, momentum=0.3, dtype=f64),
        layers.ReLU(),
        layers.Affine(6, 5, dtype=f64),
    )
    prefix = "init."
    state = {
        k[len(prefix) :]: as_fastnet(k[len(prefix) :], v)
        for k, v in recorded.items()
        if k.startswith(prefix)
    }
    net.load_state_dict(state)
    return net


def test_training_forward_loss_and_gradients_match_pytorch(recorded):
    net = ported(recorded).train()
    loss_fn = layers.SoftmaxCrossEntropy()
    logits = net(recorded["x"])
    np.testing.assert_allclose(logits, recorded["train_logits"], **TOL)
    loss = loss_fn(logits, recorded["labels"])
    np.testing.assert_allclose(loss, recorded["loss"], **TOL)
    dx = net.backward(loss_fn.backward())
    np.testing.assert_allclose(dx, recorded["dx"], **TOL)
    for name, p in net.named_parameters():
        expected = as_fastnet(name, recorded[f"grad.{name}"])
        np.testing.assert_allclose(p.grad, expected, err_msg=name, **TOL)
    for name, value in net.state_dict().items():  # running statistics after one step
        expected = as_fastnet(name, recorded[f"after.{name}"])
        np.testing.assert_allclose(value, expected, err_msg=name, **TOL)


def test_eval_forward_matches_pytorch(recorded):
    net = ported(recorded)
    net.train()(recorded["x"])  # the same running statistics as the recorded model
    np.testing.assert_allclose(net.eval()(recorded["x"]), recorded["eval_logits"], **TOL)
