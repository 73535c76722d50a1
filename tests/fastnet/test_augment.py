"""fastnet.data.augment: specs, the drawn transforms, and --augment on the command line."""

import numpy as np
import pytest
import scipy.ndimage

from fastnet.cli import main
from fastnet.config import TrainConfig
from fastnet.data import random_shift
from fastnet.data.augment import (
    AugmentSpec,
    affine_matrices,
    augment_batch,
    canonical_augment,
    elastic_fields,
    gaussian_matrix,
    parse_augment,
)
from kernels.augment import warp_forward
from kernels.augment.reference import shift_ref

FULL = "shift=2,rotate=10,scale=0.1,elastic=34:4"


@pytest.mark.parametrize(
    "spec, expected",
    [
        (0, AugmentSpec()),
        ("0", AugmentSpec()),
        (2, AugmentSpec(shift=2)),
        ("shift=2", AugmentSpec(shift=2)),
        (FULL, AugmentSpec(2, 10.0, 0.1, 34.0, 4.0)),
        (" rotate = 7.5 , elastic=0:1", AugmentSpec(rotate=7.5)),  # alpha 0: no elastic
    ],
)
def test_specs_parse_and_print_back(spec, expected):
    parsed = parse_augment(spec)
    assert parsed == expected
    assert parse_augment(str(parsed)) == parsed


def test_canonical_form_keeps_the_old_integer_form():
    assert canonical_augment("shift=2") == 2 == canonical_augment(2)
    assert canonical_augment("0") == 0
    assert canonical_augment("scale=0.10,shift=2,rotate=10.0,elastic=34:4") == FULL


@pytest.mark.parametrize(
    "spec, match",
    [
        (-1, "shift must be an integer from 0 to 8, got '-1'"),
        ("9", "shift must be an integer from 0 to 8"),
        ("shift=1.5", "shift must be an integer"),
        ("rotate=200", r"rotate must be in \[0, 180\]"),
        ("scale=1", r"scale must be in \[0, 1\)"),
        ("scale=nan", r"scale must be in \[0, 1\)"),
        ("elastic=34", "elastic must be ALPHA:SIGMA"),
        ("elastic=34:0", "elastic sigma must be a number > 0"),
        ("elastic=-1:4", "elastic alpha must be a number >= 0"),
        ("rot=3", "unknown key 'rot'"),
        ("shift=1,shift=2", "shift is given twice"),
        ("", "expected an integer or a spec like"),
        (2.0, "expected an integer or a spec like"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_augment(spec)


def test_shift_only_specs_draw_what_random_shift_always_drew(rng):
    x = rng.random((16, 1, 9, 11)).astype(np.float32)
    offsets = np.random.default_rng(5).integers(0, 5, size=(16, 2)) - 2  # the old draw
    expected = shift_ref(x, offsets)
    np.testing.assert_array_equal(random_shift(x, 2, np.random.default_rng(5)), expected)
    for spec in (2, "shift=2"):
        np.testing.assert_array_equal(augment_batch(x, spec, np.random.default_rng(5)), expected)
    assert augment_batch(x, 0, rng) is x


def test_quarter_turn_about_the_centre_is_rot90(rng):
    x = rng.random((2, 1, 8, 8))
    theta = affine_matrices(np.zeros((2, 2)), np.array([90.0, -90.0]), np.ones(2), 8, 8)
    y = warp_forward(x, theta)
    np.testing.assert_allclose(y[0], np.rot90(x[0], 1, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(y[1], np.rot90(x[1], -1, axes=(1, 2)), atol=1e-12)


def test_scaling_keeps_the_centre_and_stretches_about_it():
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 4, 4], x[0, 0, 4, 6] = 1.0, 2.0  # the centre, and 2 pixels to its right
    y = warp_forward(x, affine_matrices(np.zeros((1, 2)), np.zeros(1), np.array([2.0]), 9, 9))
    assert y[0, 0, 4, 4] == 1.0
    assert y[0, 0, 4, 8] == 2.0  # 2 pixels out now lie 4 out


@pytest.mark.parametrize("size, sigma", [(28, 4.0), (9, 1.5), (5, 3.0)])
def test_gaussian_matrix_is_scipys_constant_mode_filter(size, sigma, rng):
    v = rng.standard_normal((3, size))
    expected = scipy.ndimage.gaussian_filter1d(v, sigma, axis=1, mode="constant", truncate=4.0)
    np.testing.assert_allclose(v @ gaussian_matrix(size, sigma).T, expected, rtol=1e-12,
                               atol=1e-14)  # fmt: skip


def test_elastic_fields_are_smooth_and_scale_with_alpha(rng):
    noise = rng.uniform(-1, 1, (50, 2, 28, 28))
    field = elastic_fields(noise, 34.0, 4.0)
    assert field.shape == noise.shape and field.dtype == np.float64
    np.testing.assert_allclose(elastic_fields(noise, 68.0, 4.0), 2 * field, rtol=1e-14)
    rough = np.abs(np.diff(noise, axis=-1)).mean() / np.abs(noise).mean()
    smooth = np.abs(np.diff(field, axis=-1)).mean() / np.abs(field).mean()
    assert smooth < rough / 5
    # Simard's 34:4 moves pixels by about a pixel, not by the image size.
    assert 0.3 < np.sqrt(np.mean(field[:, :, 8:20, 8:20] ** 2)) < 3
    assert elastic_fields(noise.astype(np.float32), 34.0, 4.0).dtype == np.float32


def test_full_spec_is_seeded_keeps_dtype_and_input(rng):
    x = rng.random((20, 1, 28, 28)).astype(np.float32)
    x_copy = x.copy()
    a = augment_batch(x, FULL, np.random.default_rng(1))
    b = augment_batch(x, FULL, np.random.default_rng(1))
    c = augment_batch(x, FULL, np.random.default_rng(2))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, x)
    np.testing.assert_array_equal(x, x_copy)
    # Each part alone changes the images, and differently from the others.
    parts = [augment_batch(x, s, np.random.default_rng(1)) for s in
             ("rotate=10", "scale=0.1", "elastic=34:4")]  # fmt: skip
    assert all(not np.array_equal(p, x) for p in parts)
    assert not np.array_equal(parts[0], parts[1])


@pytest.mark.parametrize("spec", [0, 2, FULL])
@pytest.mark.parametrize("rows", [slice(0, 7), slice(7, 14), slice(14, 20), slice(20, 20)])
def test_rows_give_those_images_of_the_whole_batch_and_the_same_generator_state(spec, rows, rng):
    """An MPI rank augments its part of the global batch alone, with the whole batch's
    draws: the same images as the whole batch's, and the generator where it would be."""
    x = rng.random((20, 1, 28, 28)).astype(np.float32)
    whole_rng, part_rng = np.random.default_rng(3), np.random.default_rng(3)
    whole = augment_batch(x, spec, whole_rng)
    part = augment_batch(x, spec, part_rng, rows)
    assert part.shape == x[rows].shape and part.dtype == x.dtype
    np.testing.assert_array_equal(part, whole[rows])
    assert part_rng.bit_generator.state == whole_rng.bit_generator.state


def test_train_config_accepts_specs_and_names_the_bad_field():
    TrainConfig(augment=FULL).validate()
    TrainConfig(augment=3).validate()
    with pytest.raises(ValueError, match="augment must be an integer shift in pixels from 0 to 8"):
        TrainConfig(augment="rotate=999").validate()


@pytest.mark.parametrize("spec", ["rot=3", "9", "elastic=1"])
def test_cli_rejects_a_bad_spec_with_exit_2_and_one_line(spec, capsys):
    with pytest.raises(SystemExit) as e:  # argparse's own errors
        main(["train", "--augment", spec, "--dry-run"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --augment: " in err
