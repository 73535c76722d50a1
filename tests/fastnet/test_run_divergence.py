"""``fastnet.run.divergence``: which array is not finite, and the error that ends a diverged
run, saying what is kept."""

from __future__ import annotations

import numpy as np
import pytest

from fastnet.errors import TrainingDiverged
from fastnet.run.divergence import diverged, first_nonfinite

BAD = [np.nan, np.inf, -np.inf]


def arrays(rng: np.random.Generator, dtype=np.float32) -> list[tuple[str, np.ndarray]]:
    shapes = {"0.weight": (6, 4), "0.bias": (4,), "state.0.exp_avg": (6, 4), "hyper.lr": ()}
    return [(name, rng.standard_normal(shape).astype(dtype)) for name, shape in shapes.items()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_all_finite_gives_none(dtype, rng):
    assert first_nonfinite(arrays(rng, dtype)) is None
    assert first_nonfinite([]) is None


@pytest.mark.parametrize("value", BAD, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", [0, 1, 2, 3])
def test_the_first_array_holding_nan_or_inf_is_named(value, where, rng):
    named = arrays(rng)
    name, array = named[where]
    array[tuple(rng.integers(0, n) for n in array.shape)] = value
    assert first_nonfinite(named) == name
    if where < 3:  # a later bad array does not change the answer
        named[3][1][...] = np.nan
        assert first_nonfinite(iter(named)) == name


def test_the_message_says_what_where_and_that_the_last_checkpoint_is_kept(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"weights")
    error = diverged("loss is nan", "epoch 2, step 3", 0.5, tmp_path)
    assert isinstance(error, TrainingDiverged)
    assert str(error) == (
        f"loss is nan at epoch 2, step 3: training diverged and stopped; the last good "
        f"checkpoint {tmp_path / 'checkpoint.npz'} is kept; try a lower --lr (now 0.5)"
    )


def test_the_message_says_nothing_was_saved_without_a_checkpoint(tmp_path):
    (tmp_path / "best.npz").write_bytes(b"weights")  # not what a resume reads
    (tmp_path / "checkpoint.npz").mkdir()  # not a file either
    error = diverged("0.weight is not finite", "the end of epoch 1", 0.01, tmp_path)
    assert str(error) == ("0.weight is not finite at the end of epoch 1: training diverged and "
                          "stopped; nothing was saved; try a lower --lr (now 0.01)")  # fmt: skip
    assert "nothing was saved" in str(diverged("x", "y", 1.0, tmp_path / "missing"))
