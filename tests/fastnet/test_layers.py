"""Layers: whole-model gradient check, train/eval behaviour, dtype discipline."""

import numpy as np
import pytest

import fastnet
from fastnet import Sequential, layers


def small_convnet(rng: np.random.Generator, dtype=np.float64) -> Sequential:
    return Sequential(
        layers.Conv2d(2, 4, 3, padding=1, bias=False, rng=rng, dtype=dtype),  # BN follows
        layers.BatchNorm2d(4, dtype=dtype),
        layers.ReLU(),
        layers.MaxPool2d(2),
        layers.Conv2d(4, 3, 2, stride=(1, 2), padding=1, rng=rng, dtype=dtype),
        layers.Sigmoid(),
        layers.AvgPool2d(2, stride=1),
        layers.Flatten(),
        layers.Affine(3 * 3 * 1, 6, bias=False, rng=rng, dtype=dtype),  # BN follows
        layers.BatchNorm1d(6, dtype=dtype),
        layers.ReLU(),
        layers.Dropout(0.5, rng=rng),
        layers.Affine(6, 5, rng=rng, dtype=dtype),
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_small_convnet_passes_gradcheck_in_float64(mode, rng):
    net = small_convnet(rng)
    x = rng.standard_normal((4, 2, 6, 7))
    t = rng.integers(0, 5, 4)
    if mode == "eval":
        net.train()
        net(x)  # give BatchNorm non-trivial running statistics
        net.eval()
    else:
        net.train()
        net[11].p = 0.0  # dropout must be deterministic for a numerical gradient
    before = net.state_dict()
    errors = fastnet.gradcheck(net, x, t)
    assert set(errors) == {name for name, _ in net.named_parameters()}
    assert max(errors.values()) < 1e-6, errors
    for name, value in net.state_dict().items():  # buffers restored
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_gradcheck_detects_a_wrong_gradient(rng):
    net = small_convnet(rng).eval()
    x, t = rng.standard_normal((3, 2, 6, 7)), rng.integers(0, 5, 3)
    real_backward = net[8].backward

    def broken(dy):
        dx = real_backward(dy)
        net[8].weight.grad = net[8].weight.grad * 1.01
        return dx

    net[8].backward = broken
    errors = fastnet.gradcheck(net, x, t)
    assert errors["8.weight"] > 1e-3 and errors["0.weight"] < 1e-6


def test_gradcheck_refuses_a_nondeterministic_model(rng):
    net = small_convnet(rng).train()
    with pytest.raises(ValueError, match="not deterministic"):
        fastnet.gradcheck(net, rng.standard_normal((3, 2, 6, 7)), rng.integers(0, 5, 3))


def test_float32_stays_float32_through_a_training_step(rng):
    net = small_convnet(rng, np.float32).train()
    loss_fn = layers.SoftmaxCrossEntropy()
    x = rng.standard_normal((4, 2, 6, 7)).astype(np.float32)
    logits = net(x)
    assert logits.dtype == np.float32
    loss = loss_fn(logits, rng.integers(0, 5, 4))
    assert isinstance(loss, float) and np.isfinite(loss)
    dx = net.backward(loss_fn.backward())
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(p.grad.dtype == np.float32 for p in net.parameters())
    assert all(v.dtype == np.float32 for v in net.state_dict().values())


def test_dropout_is_identity_in_eval_and_seeded_in_training(rng):
    x = rng.standard_normal((50, 40)).astype(np.float32)
    d = layers.Dropout(0.3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(d.eval()(x), x)
    np.testing.assert_array_equal(d.backward(x), x)
    y1 = d.train()(x)
    y2 = layers.Dropout(0.3, rng=np.random.default_rng(7))(x)
    np.testing.assert_array_equal(y1, y2)
    kept = y1 != 0
    np.testing.assert_allclose(y1[kept], x[kept] / np.float32(0.7), rtol=1e-6)


def test_batchnorm_running_statistics_follow_pytorch_semantics(rng):
    bn = layers.BatchNorm2d(3, momentum=0.2)
    x = (2 + 3 * rng.standard_normal((4, 3, 5, 5))).astype(np.float32)
    bn.train()(x)
    mean = x.mean(axis=(0, 2, 3))
    var_unbiased = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var_unbiased, rtol=1e-5)
    y = bn.eval()(x)
    expected = (x - bn.running_mean[None, :, None, None]) / np.sqrt(
        bn.running_var[None, :, None, None] + bn.eps
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: layers.Conv2d(0, 4, 3), "in_channels must be a positive integer"),
        (lambda: layers.Conv2d(1, 4, 3, stride=0), "stride must be >= 1"),
        (lambda: layers.Conv2d(1, 4, 3, dtype=np.int32), "float32 or float64"),
        (lambda: layers.Conv2d(1, 4, 3, weight_init="glorot"), "'he', 'xavier' or a float"),
        (lambda: layers.Affine(3, -1), "out_features must be a positive integer"),
        (lambda: layers.MaxPool2d(2, padding=-1), "padding must be >= 0"),
        (lambda: layers.BatchNorm2d(3, eps=float("nan")), "eps must be a finite number"),
        (lambda: layers.BatchNorm2d(3, momentum=1.5), r"momentum must be in \[0, 1\]"),
        (lambda: layers.Dropout(1.2), r"p must be in \[0, 1\]"),
    ],
)
def test_layer_constructors_reject_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layer_rejects_input_of_the_wrong_shape(rng):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        layers.Conv2d(3, 4, 3, rng=rng)(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        layers.BatchNorm1d(3)(np.zeros((2, 3, 4, 4), np.float32))
