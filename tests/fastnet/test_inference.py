"""fastnet.inference: the plan gives the eval-mode model's outputs, for every layer combination
it fuses, every model, both dtypes; it reuses its buffers, and runs what it cannot fuse."""

import threading

import numba
import numpy as np
import pytest
from conftest import Double, assert_close, randomize_norms

from fastnet import inference, layers, models
from fastnet.inference import steps
from fastnet.module import Module, Sequential


def assert_plan_matches(model: Module, x: np.ndarray) -> inference.Plan:
    """The plan of ``model`` gives ``model.eval()(x)``; ``x`` is left as it was."""
    plan = inference.compile(model)
    x_copy = x.copy()
    assert_close(plan(x), model.eval()(x), "conv")
    np.testing.assert_array_equal(x, x_copy)
    return plan


def step_kinds(plan: inference.Plan) -> list[str]:
    """The kind of the first layer of each step (``"Conv2d"`` for ``"0-2: Conv2d(...) + ..."``)."""
    return [str(s).split(": ")[1].split("(")[0] for s in plan.steps]


class MyConv(layers.Conv2d):
    """A Conv2d subclass with its own forward: it must not be fused as a plain Conv2d."""

    def forward(self, x):
        return super().forward(x) + 1


def conv_stack(dtype, rng, bias=True, norm=False, relu=False, pool=None, oc=20, stride=1):
    """A conv with the given followers, as the plan fuses them (Dropout in between is removed)."""
    stack = [layers.Conv2d(3, oc, 3, stride=stride, padding=1, bias=bias, rng=rng, dtype=dtype)]
    stack += [layers.BatchNorm2d(oc, dtype=dtype)] * norm + [layers.Dropout(0.3)]
    stack += [layers.ReLU()] * relu + ([pool] if pool is not None else [])
    return randomize_norms(Sequential(*stack), rng)


POOLS = {
    "none": None,
    "max2x2": layers.MaxPool2d(2),
    "max3x3": layers.MaxPool2d(3, 1, 1),
    "avg2": layers.AvgPool2d(2),
}


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("norm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_conv_combinations_match_the_model(bias, norm, relu, pool, dtype, rng):
    model = conv_stack(dtype, rng, bias, norm, relu, POOLS[pool])
    x = rng.standard_normal((3, 3, 11, 9)).astype(dtype)  # odd sizes: the pool drops a row
    plan = assert_plan_matches(model, x)
    fused = pool == "none" or (relu and pool == "max2x2")
    assert step_kinds(plan) == ["Conv2d"] + ([] if fused else [type(POOLS[pool]).__name__])
    assert ("BatchNorm2d" in str(plan)) == norm and "Dropout" not in str(plan)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (5, 3, 7, 6), (2, 3, 3, 4)], ids=str)
@pytest.mark.parametrize("oc", [1, 16, 40])
def test_conv_relu_pool_shapes_match_the_model(oc, shape, dtype, rng):
    model = conv_stack(dtype, rng, norm=True, relu=True, pool=layers.MaxPool2d(2), oc=oc, stride=2)
    assert_plan_matches(model, rng.standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("norm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_affine_combinations_match_the_model(bias, norm, relu, dtype, rng):
    stack = [layers.Flatten(), layers.Affine(12, 7, bias=bias, rng=rng, dtype=dtype)]
    stack += [layers.BatchNorm1d(7, dtype=dtype)] * norm + [layers.ReLU()] * relu
    stack += [layers.Dropout()]
    model = randomize_norms(Sequential(*stack), rng)
    plan = assert_plan_matches(model, rng.standard_normal((4, 3, 2, 2)).astype(dtype))
    span = "1" if not (norm or relu) else f"1-{1 + norm + relu}"
    assert [str(s).split(":")[0] for s in plan.steps] == ["0", span]


def test_layers_it_does_not_fuse_run_as_themselves(dtype, rng):
    inner = Sequential(Double(), layers.BatchNorm2d(4, dtype=dtype), layers.Sigmoid())
    model = Sequential(
        layers.ReLU(),
        layers.Conv2d(2, 4, 3, rng=rng, dtype=dtype),
        inner,  # nested: opened up
        layers.MaxPool2d(2),
        MyConv(4, 4, 1, rng=rng, dtype=dtype),
        layers.ReLU(),
        layers.AvgPool2d(2, padding=1),
        layers.BatchNorm2d(4, dtype=dtype),
        layers.Affine(4 * 2 * 2, 3, rng=rng, dtype=dtype),  # flattens 4-d input itself
        layers.BatchNorm1d(3, dtype=dtype),
        layers.Sigmoid(),
    )
    randomize_norms(model, rng)
    plan = assert_plan_matches(model, rng.standard_normal((2, 2, 9, 9)).astype(dtype))
    assert step_kinds(plan) == ["ReLU", "Conv2d", "Double", "BatchNorm2d", "Sigmoid", "MaxPool2d",
                     "MyConv", "ReLU", "AvgPool2d", "BatchNorm2d", "Affine", "Sigmoid"]  # fmt: skip


@pytest.mark.parametrize("batch", [1, 100])
@pytest.mark.parametrize("name", models.MODELS)
def test_every_model_matches_its_eval_mode(name, batch, dtype, rng):
    model = randomize_norms(models.build(name, np.random.default_rng(0), dtype=dtype), rng)
    plan = assert_plan_matches(model, rng.random((batch, 1, 28, 28)).astype(dtype))
    assert "Dropout" not in str(plan)
    assert set(step_kinds(plan)) <= {"Conv2d", "Flatten", "Affine"}


def test_a_small_batch_is_split_within_each_image(monkeypatch, rng):
    """Fewer images than threads: each image's output pixels, then its epilogue's channels,
    are split over the threads (40 channels: the last block of the tile's lanes partial)."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 4)
    monkeypatch.setattr(steps, "SPLIT_MIN_FLOPS", 1)
    model = conv_stack(np.float32, rng, norm=True, relu=True, pool=layers.MaxPool2d(2), oc=40)
    x = rng.standard_normal((1, 3, 10, 10)).astype(np.float32)
    plan = assert_plan_matches(model, x)
    step = plan.steps[0]
    assert step._parts(1, 100, 4) == 4
    assert step._parts(2, 100, 4) == 2
    assert step._parts(4, 100, 4) == 1
    assert_plan_matches(model, np.concatenate([x, 2 * x]))  # 2 images x 2 parts


def test_a_small_image_is_not_split(monkeypatch, rng):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 4)
    step = inference.compile(conv_stack(np.float32, rng, oc=64)).steps[0]
    assert step._parts(1, 10 * 10, 4) == 1  # 2 * 64 * 27 * 100 flops: not worth a thread


def test_the_plan_is_a_snapshot_in_eval_mode(rng):
    model = conv_stack(np.float32, rng, norm=True, relu=True)
    model.train()
    state = {k: v.copy() for k, v in model.state_dict().items()}
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    plan = inference.compile(model)
    y = plan(x)
    assert model.training  # compile did not change the model's mode
    model[0].weight.data[...] = 0  # later changes do not reach the plan
    np.testing.assert_array_equal(plan(x), y)
    model.load_state_dict(state)
    assert_close(y, model.eval()(x), "conv")


def test_buffers_are_allocated_once_per_input_shape(rng):
    model = Sequential(
        layers.Conv2d(3, 4, 3, rng=rng),
        layers.ReLU(),
        layers.Flatten(),
        layers.Affine(64, 2, rng=rng),
    )
    plan = inference.compile(model)
    conv, affine = plan.steps[0], plan.steps[2]
    x = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    first = plan(x)
    buffers = conv._states[x.shape, x.dtype]
    second = plan(2 * x)
    assert conv._states[x.shape, x.dtype] is buffers and len(conv._states) == 1
    assert first is not second and not np.shares_memory(first, second)
    assert_close(second, model.eval()(2 * x), "conv")
    for n in range(1, inference.SHAPES_KEPT + 3):
        plan(x[:1].repeat(n, axis=0))
    assert len(conv._states) == len(affine._states) == inference.SHAPES_KEPT


def test_a_pool_that_does_not_fit_fails_as_in_the_model(rng):
    model = conv_stack(np.float32, rng, relu=True, pool=layers.MaxPool2d(2), stride=2)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)  # the conv gives 1 x 1
    with pytest.raises(ValueError) as expected:
        model.eval()(x)
    with pytest.raises(ValueError, match="larger than the padded input") as got:
        inference.compile(model)(x)
    assert str(got.value) == str(expected.value)


def test_bad_input_is_a_clear_value_error(rng):
    plan = inference.compile(Sequential(layers.Conv2d(3, 4, 3, rng=rng), layers.ReLU()))
    with pytest.raises(
        ValueError, match="plan: x must be float32 .the model's dtype., got float64"
    ):
        plan(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="C = 2 .the channels of x."):
        plan(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="must be float32 or float64"):
        plan(np.zeros((1, 3, 5, 5), np.int64))
    with pytest.raises(ValueError, match="numpy array"):
        plan([[1.0]])


def test_a_layer_changing_the_dtype_is_caught_by_the_next_kernel(rng):
    class ToFloat64(Module):
        def forward(self, x):
            return x.astype(np.float64)

    model = Sequential(ToFloat64(), layers.Conv2d(3, 4, 3, rng=rng))
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="same float dtype"):
        inference.compile(model)(x)


def test_a_model_on_the_gpu_is_refused_with_a_clear_error(rng):
    pytest.importorskip("numba.cuda")
    model = Sequential(layers.Affine(3, 2, rng=rng)).to("cuda")
    with pytest.raises(ValueError, match="the plan runs on the CPU"):
        inference.compile(model)


def test_concurrent_calls_give_each_caller_its_own_result(rng):
    model = conv_stack(np.float32, rng, relu=True, pool=layers.MaxPool2d(2))
    plan = inference.compile(model)
    xs = [rng.standard_normal((3, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    results = [None] * len(xs)

    def work(i):
        for _ in range(20):
            results[i] = plan(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, y in zip(xs, results, strict=True):
        assert_close(y, model.eval()(x), "conv")


def test_profile_times_every_step(rng):
    plan = inference.compile(models.build("simple", rng))
    rows = plan.profile(rng.random((2, 1, 28, 28)).astype(np.float32), rounds=3)
    assert [name for name, _ in rows] == [str(s) for s in plan.steps]
    assert all(seconds > 0 for _, seconds in rows)
