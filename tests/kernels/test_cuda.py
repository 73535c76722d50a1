"""CUDA parity tests: each ``kernels/<family>/cuda.py`` function vs its NumPy reference.

Real CUDA when a GPU is present, else Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``,
set by the runner before numba is imported) on tiny shapes. Launch sizes are shrunk so
that several blocks, grid-stride loops, partial last blocks, several shared-memory tiles
and several split-K chunks run. ``FASTNET_CUDA_FULL=1`` switches to the VGG layer shapes
at batch 100 with the production launch sizes (``tests/gpu/check.sh``, on a GPU).
"""

import importlib
import os

import numpy as np
import pytest
from conftest import (
    ADAM,
    TOLERANCES,
    assert_close,
    optim_case_ids,
    optim_initial_states,
    optim_step_kwargs,
)

from kernels.activation import reference as act_ref
from kernels.affine import reference as aff_ref
from kernels.batchnorm import reference as bn_ref
from kernels.conv import reference as conv_ref
from kernels.dropout import reference as drop_ref
from kernels.optim import reference as opt_ref
from kernels.pool import reference as pool_ref
from kernels.softmax_ce import reference as sce_ref

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():
    pytest.skip("no CUDA device (set NUMBA_ENABLE_CUDASIM=1)", allow_module_level=True)

_cuda = importlib.import_module("kernels._cuda")
act = importlib.import_module("kernels.activation.cuda")
aff = importlib.import_module("kernels.affine.cuda")
bn = importlib.import_module("kernels.batchnorm.cuda")
conv = importlib.import_module("kernels.conv.cuda")
drop = importlib.import_module("kernels.dropout.cuda")
opt = importlib.import_module("kernels.optim.cuda")
pool = importlib.import_module("kernels.pool.cuda")
sce = importlib.import_module("kernels.softmax_ce.cuda")

FULL = os.environ.get("FASTNET_CUDA_FULL") == "1"
SMALL_LAUNCH = {"BLOCK": 16, "MAX_BLOCKS": 3, "TILE": 4, "REDUCE": 8, "SPLIT": 8, "MAX_SPLITS": 3}


def table(tiny: list, full: list) -> list:
    """The tiny edge-case table, or the VGG shapes at batch 100 when FASTNET_CUDA_FULL=1."""
    return full if FULL else tiny


@pytest.fixture(autouse=True)
def launch_sizes(monkeypatch):
    """Shrink the launch sizes (tiny shapes still run many blocks), except in full mode."""
    if not FULL:
        for name, value in SMALL_LAUNCH.items():
            monkeypatch.setattr(_cuda, name, value)


class Device:
    """Uploads host arrays and checks at the end that the device copies were not modified."""

    def __init__(self):
        self.uploaded = []

    def __call__(self, *arrays):
        out = [None if a is None else cuda.to_device(a) for a in arrays]
        self.uploaded += [(a, d) for a, d in zip(arrays, out, strict=True) if a is not None]
        return out if len(out) > 1 else out[0]

    def assert_unchanged(self):
        for a, d in self.uploaded:
            np.testing.assert_array_equal(d.copy_to_host(), a)


@pytest.fixture
def dev():
    device = Device()
    yield device
    device.assert_unchanged()


def assert_device_close(actual, expected, family):
    assert _cuda.is_device_array(actual)
    assert_close(actual.copy_to_host(), expected, family)


# ---- activation -------------------------------------------------------------------------

SPECIAL = [-1e4, -800.0, -100.0, -0.0, 0.0, 1e-3, 100.0, 800.0, 1e4, np.nan, np.inf, -np.inf]
ACTIVATIONS = {
    "relu": (
        act.relu_forward,
        act.relu_backward,
        act_ref.relu_forward_ref,
        act_ref.relu_backward_ref,
    ),
    "sigmoid": (
        act.sigmoid_forward,
        act.sigmoid_backward,
        act_ref.sigmoid_forward_ref,
        act_ref.sigmoid_backward_ref,
    ),
}


@pytest.mark.parametrize(
    "shape", table([(1,), (37,), (2, 3, 5, 7), "special"], [(100, 16, 28, 28)]), ids=str
)
@pytest.mark.parametrize("op", ACTIVATIONS)
def test_activation(op, shape, dtype, rng, dev):
    fwd, bwd, fwd_ref, bwd_ref = ACTIVATIONS[op]
    x = np.array(SPECIAL) if shape == "special" else 3 * rng.standard_normal(shape)
    x = x.astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y_ref = fwd_ref(x)
    y = fwd(dev(x))
    assert_device_close(y, y_ref, "activation")
    assert_device_close(bwd(dev(dy), dev(y_ref)), bwd_ref(dy, y_ref), "activation")


# ---- affine -----------------------------------------------------------------------------

AFFINE = table(
    [((1, 1), 1), ((5, 9), 6), ((3, 2, 3), 4), ((11, 3), 5)],  # N=D=M=1, tiles, split-K
    [((100, 64, 4, 4), 50), ((100, 50), 10)],
)


@pytest.mark.parametrize("x_shape, m", AFFINE, ids=str)
def test_affine(x_shape, m, dtype, rng, dev):
    d = int(np.prod(x_shape[1:]))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((d, m)) / np.sqrt(d)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    dy = (rng.standard_normal((x_shape[0], m)) / np.sqrt(x_shape[0])).astype(dtype)
    assert_device_close(
        aff.affine_forward(*dev(x, w, b)), aff_ref.affine_forward_ref(x, w, b), "affine"
    )
    grads = aff.affine_backward(*dev(dy, x, w))
    for got, expected in zip(grads, aff_ref.affine_backward_ref(dy, x, w), strict=True):
        assert_device_close(got, expected, "affine")


# ---- conv -------------------------------------------------------------------------------

# (N, C, H, W, OC, KH, KW, stride, padding, bias)
CONV = table(
    [
        (1, 1, 5, 5, 1, 3, 3, 1, 0, True),  # N = C = OC = 1
        (2, 2, 5, 4, 5, 3, 3, 1, 1, True),  # odd, non-square, padding 1, OC over two tiles
        (2, 2, 5, 6, 3, 2, 3, 2, 2, False),  # non-square kernel, stride 2, padding 2, no bias
        (1, 2, 8, 7, 2, 3, 3, 3, 0, True),  # stride 3 leaves rows unread
        (2, 1, 6, 7, 2, 3, 1, (2, 3), (1, 2), True),  # unequal stride and padding
        (1, 2, 3, 4, 3, 5, 6, 1, 1, True),  # kernel as large as the padded input
    ],
    [
        (100, 1, 28, 28, 16, 3, 3, 1, 1, True),
        (100, 16, 28, 28, 16, 3, 3, 1, 1, True),
        (100, 16, 14, 14, 32, 3, 3, 1, 1, True),
        (100, 32, 14, 14, 32, 3, 3, 1, 2, True),
        (100, 32, 8, 8, 64, 3, 3, 1, 1, True),
        (100, 64, 8, 8, 64, 3, 3, 1, 1, True),
    ],
)


@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv(case, dtype, rng, dev):
    n, c, h, w_, oc, kh, kw, stride, padding, bias = case
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = (rng.standard_normal((oc, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(dtype)
    b = rng.standard_normal(oc).astype(dtype) if bias else None
    y_ref = conv_ref.conv2d_forward_ref(x, w, b, stride, padding)
    dy = (rng.standard_normal(y_ref.shape) / np.sqrt(y_ref[:, 0].size)).astype(dtype)
    assert_device_close(conv.conv2d_forward(*dev(x, w, b), stride, padding), y_ref, "conv")
    grads = conv.conv2d_backward(*dev(dy, x, w), stride, padding)
    for got, expected in zip(
        grads, conv_ref.conv2d_backward_ref(dy, x, w, stride, padding), strict=True
    ):
        assert_device_close(got, expected, "conv")


# ---- pool -------------------------------------------------------------------------------

# (x shape, kernel_size, stride, padding)
POOL = table(
    [
        ((1, 1, 1, 1), 1, None, 0),
        ((2, 2, 4, 4), 2, None, 0),
        ((1, 1, 7, 5), 3, 1, 1),  # overlapping windows, odd non-square input
        ((2, 1, 9, 6), (3, 2), (2, 3), (1, 0)),  # unequal kernel, stride and padding
        ((1, 2, 5, 5), 3, 3, 0),  # stride 3, last row and column dropped
        ((1, 3, 5, 4), (7, 6), 2, 1),  # kernel as large as the padded input
        ((2, 2, 5, 6), 4, 2, 2),  # windows half made of padding
    ],
    [
        ((100, 16, 28, 28), 2, None, 0),
        ((100, 32, 16, 16), 2, None, 0),
        ((100, 64, 8, 8), 2, None, 0),
    ],
)


def _pool_input(kind, shape, dtype, rng):
    """Normal values, values from {0, 1, 2} (ties fill the windows), or normal with NaNs."""
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    return x


@pytest.mark.parametrize("kind", ["normal", "ties", "nan"])
@pytest.mark.parametrize("shape, kernel_size, stride, padding", POOL, ids=str)
def test_maxpool(shape, kernel_size, stride, padding, kind, dtype, rng, dev):
    geometry = (kernel_size, stride, padding)
    x = _pool_input(kind, shape, dtype, rng)
    y_ref, indices_ref = pool_ref.maxpool2d_forward_ref(x, *geometry)
    y, indices = pool.maxpool2d_forward(dev(x), *geometry)
    assert_device_close(y, y_ref, "pool")
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices.copy_to_host(), indices_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx = pool.maxpool2d_backward(dev(dy), dev(indices_ref), shape)
    assert_device_close(dx, pool_ref.maxpool2d_backward_ref(dy, indices_ref, shape), "pool")


@pytest.mark.parametrize("shape, kernel_size, stride, padding", POOL, ids=str)
def test_avgpool(shape, kernel_size, stride, padding, dtype, rng, dev):
    geometry = (kernel_size, stride, padding)
    x = rng.standard_normal(shape).astype(dtype)
    y_ref = pool_ref.avgpool2d_forward_ref(x, *geometry)
    assert_device_close(pool.avgpool2d_forward(dev(x), *geometry), y_ref, "pool")
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx = pool.avgpool2d_backward(dev(dy), shape, *geometry)
    assert_device_close(dx, pool_ref.avgpool2d_backward_ref(dy, shape, *geometry), "pool")


# ---- softmax cross-entropy --------------------------------------------------------------


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("shape", table([(1, 1), (1, 10), (5, 2), (37, 3)], [(100, 10)]), ids=str)
def test_softmax_ce(shape, label_dtype, dtype, rng, dev):
    n, k = shape
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    x[0, 0] = 1e4  # large logits stay finite
    labels = rng.integers(0, k, size=n).astype(label_dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    assert_device_close(sce.softmax_forward(dev(x)), sce_ref.softmax_forward_ref(x), "softmax_ce")
    loss, probs = sce.softmax_ce_forward(*dev(x, labels))
    loss_ref, probs_ref = sce_ref.softmax_ce_forward_ref(x, labels)
    rtol, atol = TOLERANCES["softmax_ce"][np.dtype(dtype).name]
    assert isinstance(loss, float) and loss == pytest.approx(loss_ref, rel=rtol, abs=atol)
    assert_device_close(probs, probs_ref, "softmax_ce")
    dx = sce.softmax_ce_backward(*dev(probs_ref, labels), dloss)
    assert_device_close(dx, sce_ref.softmax_ce_backward_ref(probs_ref, labels, dloss), "softmax_ce")


# ---- batchnorm --------------------------------------------------------------------------

BATCHNORM = table(
    [
        ((2, 1), True),
        ((7, 3), True),
        ((1, 4), False),
        ((1, 4, 3, 5), True),
        ((3, 1, 1, 1), True),
        ((2, 5, 7, 3), True),
        ((2, 5, 7, 3), False),
    ],
    [((100, 16, 28, 28), True), ((100, 64, 8, 8), False), ((100, 50), True)],
)


@pytest.mark.parametrize("shape, training", BATCHNORM, ids=str)
def test_batchnorm(shape, training, dtype, rng, dev):
    c = shape[1]
    x = (2 * rng.standard_normal(shape) + 0.5).astype(dtype)
    gamma, rv = (rng.uniform(0.5, 2.0, (2, c))).astype(dtype)
    beta, rm = rng.standard_normal((2, c)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    rm_dev, rv_dev = cuda.to_device(rm), cuda.to_device(rv)  # updated in place when training
    kw = dict(training=training, momentum=0.3, eps=1e-4)
    out = bn.batchnorm_forward(*dev(x, gamma, beta), rm_dev, rv_dev, **kw)
    out_ref = bn_ref.batchnorm_forward_ref(x, gamma, beta, rm_ref, rv_ref, **kw)
    for got, expected in zip([*out, rm_dev, rv_dev], [*out_ref, rm_ref, rv_ref], strict=True):
        assert_device_close(got, expected, "batchnorm")
    _, mean, invstd = out_ref
    grads = bn.batchnorm_backward(*dev(dy, x, gamma, mean, invstd), training=training)
    grads_ref = bn_ref.batchnorm_backward_ref(dy, x, gamma, mean, invstd, training=training)
    for got, expected in zip(grads, grads_ref, strict=True):
        assert_device_close(got, expected, "batchnorm")


# ---- dropout ----------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("shape", table([(1,), (7,), (2, 3, 5, 7)], [(100, 1024)]), ids=str)
def test_dropout(shape, p, dtype, rng, dev):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y, mask = drop.dropout_forward(dev(x), p, np.random.default_rng(3))
    y_ref, mask_ref = drop_ref.dropout_forward_ref(x, p, np.random.default_rng(3))
    np.testing.assert_array_equal(mask.copy_to_host(), mask_ref)
    assert_device_close(y, y_ref, "dropout")
    dx = drop.dropout_backward(dev(dy), dev(mask_ref), p)
    assert_device_close(dx, drop_ref.dropout_backward_ref(dy, mask_ref, p), "dropout")


# ---- optimizers -------------------------------------------------------------------------

OPTIMIZERS = {  # name -> (kernel, reference); their state arguments: OPTIM_STATES[name]
    "sgd": (opt.sgd_update, opt_ref.sgd_update_ref),
    "adagrad": (opt.adagrad_update, opt_ref.adagrad_update_ref),
    "rmsprop": (opt.rmsprop_update, opt_ref.rmsprop_update_ref),
    "adam": (opt.adam_update, opt_ref.adam_update_ref),
}
OPTIM_CASES = [
    ("sgd", dict(lr=0.1, weight_decay=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, eps=1e-6)),
    ("rmsprop", dict(lr=0.01, alpha=0.99, eps=1e-8)),
    ("rmsprop", dict(lr=0.01, alpha=0.3, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.1)),
    ("adam", ADAM),
    ("adam", dict(ADAM, amsgrad=True, weight_decay=0.1)),
    ("adam", dict(ADAM, amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True)),
]
OPTIM_IDS = optim_case_ids(OPTIM_CASES)


@pytest.mark.parametrize("shape", table([(), (37,)], [(64, 64, 3, 3), (1024, 50)]), ids=str)
@pytest.mark.parametrize("name, hyper", OPTIM_CASES, ids=OPTIM_IDS)
def test_optimizer(name, hyper, shape, dtype, rng, dev):
    kernel, reference = OPTIMIZERS[name]
    param = rng.standard_normal(shape).astype(dtype)
    states = optim_initial_states(name, hyper, shape, dtype)
    param_dev = cuda.to_device(param)
    states_dev = {k: None if v is None else cuda.to_device(v) for k, v in states.items()}
    for t in range(1, 4):
        grad = rng.standard_normal(shape).astype(dtype)
        kwargs = {**hyper, **optim_step_kwargs(name, t)}
        kernel(param_dev, dev(grad), *states_dev.values(), **kwargs)
        reference(param, grad.copy(), *states.values(), **kwargs)
        assert_device_close(param_dev, param, "optim")
        for s, value in states.items():
            if value is not None:
                assert_device_close(states_dev[s], value, "optim")
