"""fastnet evaluate --ensemble: per-model and mean-of-softmax accuracy, mismatched members."""

import re

import numpy as np
import pytest
from synthetic import write_dataset

from fastnet import Affine, Flatten, Sequential, checkpoint, models
from fastnet.cli import main
from fastnet.config import TrainConfig
from fastnet.data import load_dataset
from fastnet.ensemble import EnsembleError, ensemble_evaluate
from fastnet.run import fit


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three small mlp runs on synthetic MNIST (seeds 0-2) and one on synthetic Fashion."""
    root = tmp_path_factory.mktemp("data")
    for name in ("mnist", "fashion-mnist"):
        write_dataset(root, name, 400, 300, seed=len(name))
    out = tmp_path_factory.mktemp("runs")
    for seed in range(3):
        config = TrainConfig(model="mlp", data_dir=str(root), epochs=1, batch_size=50,
                             optimizer="sgd", lr=0.01, seed=seed)  # fmt: skip
        fit(config, out / f"m{seed}", log=lambda line: None, progress=False)
    fashion = TrainConfig(model="mlp", dataset="fashion-mnist", data_dir=str(root), epochs=1)
    fit(fashion, out / "fashion", log=lambda line: None, progress=False)
    return root, out


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_ensemble_prints_each_model_and_the_mean_of_softmax_outputs(runs, capsys):
    root, out = runs
    paths = [out / "m0", out / "m1" / "checkpoint.npz", out / "m2"]
    assert main(["evaluate", "--ensemble", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    printed = [float(re.search(r"test accuracy (\d\.\d+)", line).group(1)) for line in lines]
    assert len(lines) == 4 and lines[-1].startswith("ensemble of 3 (mean of softmax outputs)")
    # The same numbers, computed here from the checkpoints with NumPy.
    _, (x, t) = load_dataset("mnist", root, download=False)
    xf = x.astype(np.float32) / 255
    probs = []
    for p in paths:
        state, _, _ = checkpoint.load(p if p.suffix == ".npz" else p / "checkpoint.npz")
        model = models.build("mlp", np.random.default_rng(0))
        model.load_state_dict(state)
        probs.append(softmax(model.eval()(xf).astype(np.float64)))
    expected = [np.mean(np.argmax(q, 1) == t) for q in probs]
    expected.append(np.mean(np.argmax(np.mean(probs, 0), 1) == t))
    np.testing.assert_allclose(printed, expected, atol=5e-5)
    assert len(set(expected[:3])) > 1  # the members differ: the ensemble is not one model thrice
    assert f"({round(expected[-1] * len(t))}/{len(t)})" in lines[-1]


def test_members_from_different_datasets_are_refused_in_one_line(runs, capsys):
    _, out = runs
    assert main(["evaluate", "--ensemble", str(out / "m0"), str(out / "fashion")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must share a dataset" in err[0] and "fashion-mnist" in err[0]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["evaluate"], "give either one CHECKPOINT or --ensemble"),
        (["evaluate", "x.npz", "--ensemble", "y.npz"], "give either one CHECKPOINT or --ensemble"),
        (["evaluate", "--ensemble", "/nonexistent"], "no such checkpoint file"),
    ],
)
def test_bad_ensemble_arguments_exit_2(argv, match, capsys):
    assert main(argv) == 2
    assert re.search(match, capsys.readouterr().err)


def test_a_model_that_does_not_take_the_images_is_named(rng):
    images = rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    labels = np.zeros(4, np.int64)
    good = Sequential(Flatten(), Affine(784, 10, rng=rng))
    wrong = Sequential(Flatten(), Affine(100, 10, rng=rng))
    with pytest.raises(EnsembleError, match=r"small does not take this dataset's images \(1, 28"):
        ensemble_evaluate([good, wrong], ["big", "small"], images, labels)
    accuracies, acc, pred = ensemble_evaluate([good], ["big"], images, labels)
    assert accuracies == [acc] and pred.shape == (4,)
