"""Parity tests for kernels.fused (the inference plan's fused epilogues)."""

import numpy as np
import pytest
from conftest import assert_close

import kernels.fused as fused
from kernels.activation.reference import relu_forward_ref
from kernels.fused import reference as ref
from kernels.pool.reference import maxpool2d_forward_ref

SHAPES = [(1, 1, 2, 2), (2, 16, 28, 28), (1, 3, 7, 9), (3, 2, 5, 4), (1, 1, 2, 11)]


def _inputs(kind: str, shape, dtype, rng) -> np.ndarray:
    """Normal values; values from {-1, 0, 1} (ties and zeros); or normal values with NaN,
    inf and -0.0 sprinkled in."""
    if kind == "ties":
        return rng.integers(-1, 2, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "special":
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
        flat[picks] = np.array([np.nan, np.inf, -np.inf, -0.0, np.nan, -np.inf])[: picks.size]
    return x


@pytest.mark.parametrize("kind", ["normal", "special"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reference_is_relu_of_max_pooling(shape, kind, rng):
    x = _inputs(kind, shape, np.float64, rng)
    expected = relu_forward_ref(maxpool2d_forward_ref(x, 2)[0])
    np.testing.assert_array_equal(ref.relu_maxpool2x2_forward_ref(x), expected)
    # ReLU is monotonic: pooling after it gives the same values
    np.testing.assert_array_equal(expected, maxpool2d_forward_ref(relu_forward_ref(x), 2)[0])


@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_relu_maxpool2x2_kernel_matches_reference(shape, kind, dtype, parallel, rng):
    x = _inputs(kind, shape, dtype, rng)
    x_copy = x.copy()
    y = fused.relu_maxpool2x2_forward(x, parallel=parallel)
    y_ref = ref.relu_maxpool2x2_forward_ref(x)
    assert_close(y, y_ref, "pool")
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))  # no -0.0 comes out
    np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((2, 3, 4), np.float32), r"shape \(N, C, H, W\)"),
        (np.zeros((1, 1, 1, 4), np.float32), "H and W >= 2"),
        (np.zeros((1, 1, 2, 2), np.int32), "float32 or float64"),
        ([[[[1.0, 2.0]]]], "numpy array"),
    ],
    ids=["3d", "too-small", "int", "list"],
)
def test_bad_input_is_a_value_error(x, match):
    with pytest.raises(ValueError, match=match):
        fused.relu_maxpool2x2_forward(x)


def test_strided_input_is_handled(rng):
    x = rng.standard_normal((2, 3, 8, 10)).astype(np.float32)[:, ::2]
    assert_close(fused.relu_maxpool2x2_forward(x), ref.relu_maxpool2x2_forward_ref(x), "pool")
