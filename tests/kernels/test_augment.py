"""kernels.augment: the reference warp against exact cases, the kernel against the reference."""

import numpy as np
import pytest
from conftest import assert_close

from kernels.augment import warp_forward
from kernels.augment.reference import shift_ref, warp_forward_ref

# (N, C, H, W): one pixel, one channel, odd and non-square sizes, a batch of MNIST size.
SHAPES = [(1, 1, 1, 1), (1, 1, 5, 1), (2, 1, 7, 4), (3, 2, 5, 7), (4, 3, 9, 9), (5, 1, 28, 28)]
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def identities(n: int) -> np.ndarray:
    return np.tile(IDENTITY, (n, 1, 1))


def random_warp(shape, rng, field_scale=2.0):
    """Rotations and scales near identity, translations up to the image size, a field."""
    n, _, h, w = shape
    a = rng.uniform(-0.6, 0.6, n)
    k = rng.uniform(0.7, 1.4, n)
    m = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], 1)
    t = rng.uniform(-1, 1, (n, 2)) * np.array([h, w])
    theta = np.concatenate([m / k[:, None, None], t[:, :, None]], axis=2)
    return theta, field_scale * rng.standard_normal((n, 2, h, w))


def test_reference_identity_and_integer_shifts_copy_pixels(rng):
    x = rng.standard_normal((3, 2, 6, 5))
    np.testing.assert_array_equal(warp_forward_ref(x, identities(3), np.zeros((3, 2, 6, 5))), x)
    offsets = np.array([[1, -2], [0, 3], [-6, 0]])
    theta = identities(3)
    theta[:, :, 2] = offsets
    y = warp_forward_ref(x, theta, np.zeros((3, 2, 6, 5)))
    np.testing.assert_array_equal(y, shift_ref(x, offsets))
    assert y[0, :, 0, 2].tolist() == x[0, :, 1, 0].tolist()  # (i, j) reads (i + 1, j - 2)
    np.testing.assert_array_equal(y[2], 0)  # shifted out entirely


def test_reference_rotation_by_a_quarter_turn_is_rot90(rng):
    x = rng.standard_normal((2, 3, 7, 7))
    # output (i, j) reads input (j, W - 1 - i): numpy's rot90 over (H, W)
    theta = np.tile([[0.0, 1.0, 0.0], [-1.0, 0.0, 6.0]], (2, 1, 1))
    y = warp_forward_ref(x, theta, np.zeros((2, 2, 7, 7)))
    np.testing.assert_allclose(y, np.rot90(x, axes=(2, 3)), atol=1e-15)


def test_reference_half_pixel_shift_averages_neighbours_with_zeros_outside(rng):
    x = rng.standard_normal((1, 1, 4, 6))
    theta = identities(1)
    theta[0, 1, 2] = 0.5
    y = warp_forward_ref(x, theta, np.zeros((1, 2, 4, 6)))
    expected = 0.5 * (x + np.concatenate([x[..., 1:], np.zeros((1, 1, 4, 1))], axis=-1))
    np.testing.assert_allclose(y, expected, rtol=1e-15)
    field = np.zeros((1, 2, 4, 6))
    field[0, 1] = 0.5  # the same displacement as a field
    np.testing.assert_array_equal(warp_forward_ref(x, identities(1), field), y)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_matches_reference(shape, dtype, parallel, rng):
    x = rng.standard_normal(shape).astype(dtype)
    theta, field = random_warp(shape, rng)
    x_copy, theta_copy, field_copy = x.copy(), theta.copy(), field.copy()
    y = warp_forward(x, theta, field, parallel=parallel)
    expected = warp_forward_ref(x, theta.astype(dtype), field.astype(dtype))
    assert_close(y, expected, "augment")
    assert np.count_nonzero(y) > 0 or shape == (1, 1, 1, 1)
    for a, copy in [(x, x_copy), (theta, theta_copy), (field, field_copy)]:
        np.testing.assert_array_equal(a, copy)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_integer_shift_is_exact_without_a_field(shape, dtype, parallel, rng):
    x = rng.standard_normal(shape).astype(dtype)
    n, _, h, w = shape
    offsets = rng.integers(-3, 4, (n, 2))
    theta = identities(n)
    theta[:, :, 2] = offsets
    np.testing.assert_array_equal(warp_forward(x, theta, parallel=parallel), shift_ref(x, offsets))


def test_far_outside_reads_zeros_and_float32_stays_float32(parallel):
    x = np.ones((2, 1, 5, 5), np.float32)
    theta = identities(2)
    theta[0, 0, 2], theta[1, 1, 2] = 1e9, -1e9
    y = warp_forward(x, theta, parallel=parallel)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, 0)


X = np.ones((2, 1, 4, 4), np.float32)
BAD_INPUTS = [
    (lambda: warp_forward(X[0], identities(2)), r"x must have shape \(N, C, H, W\)"),
    (lambda: warp_forward(X.astype(int), identities(2)), "float32 or float64"),
    (lambda: warp_forward(X, identities(3)), r"theta must have shape \(N, 2, 3\)"),
    (lambda: warp_forward(X, "identity"), "theta must be a numeric numpy array"),
    (lambda: warp_forward(X, identities(2) * np.nan), "theta must hold finite numbers"),
    (lambda: warp_forward(X, identities(2), np.zeros((2, 2, 4, 5))), r"field must have shape"),
    (lambda: warp_forward(X, identities(2), np.full((2, 2, 4, 4), np.inf)), "field must hold"),
]


@pytest.mark.parametrize("call, match", BAD_INPUTS)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()
