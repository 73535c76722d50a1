"""fastnet experiment NAME: what each experiment shows, as properties of its numbers, on
reduced settings and synthetic MNIST-like data."""

import json

import numpy as np
import pytest
from synthetic import digits

from fastnet.cli import main
from fastnet.experiments import activations, curves, gradcheck, optimizers

QUIET = {"log": lambda line: None}


@pytest.fixture(autouse=True, scope="module")
def blas_threads():
    """One BLAS thread (the CLI sets the count with ``_set_threads``): with the defaults, an
    MLP step took 58 ms instead of 1.7 ms on the loaded 2-core dev VM."""
    import scipy.linalg.cython_blas  # noqa: F401 - loads the BLAS of Numba's np.dot
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    (x, t), (xt, tt) = digits(600, rng), digits(300, rng)
    return x, t, xt, tt


def test_gradcheck_errors_are_below_1e_6_in_float64(tmp_path):
    result = gradcheck.run(tmp_path, max_checks=3, **QUIET)
    errors = [e for errs in result["errors"].values() for e in errs.values()]
    assert set(result["errors"]) == {"vgg", "vgg-bn", "simple", "mlp"}
    assert len(errors) > 30 and max(errors) < 1e-6
    assert json.loads((tmp_path / "gradcheck.json").read_text())["errors"] == result["errors"]
    assert (tmp_path / "gradcheck.png").stat().st_size > 1000


def test_activations_sigmoid_saturates_with_std_1_not_with_xavier(tmp_path):
    runs = activations.run(tmp_path, samples=500, **QUIET)["runs"]
    assert runs["sigmoid/std=1"]["saturated"][-1] > 0.5  # most near 0 or 1
    assert runs["sigmoid/xavier"]["saturated"][-1] < 0.05
    assert runs["tanh/std=1"]["saturated"][-1] > 0.5
    assert runs["sigmoid/std=0.01"]["std"][-1] < 0.02  # all near 0.5: no expressiveness
    relu_he, relu_small = runs["relu/he"]["std"], runs["relu/std=0.01"]["std"]
    assert 1 / 3 < relu_he[-1] / relu_he[0] < 3  # He keeps the spread of ReLU layers
    assert relu_small[-1] < 1e-3 * relu_small[0]  # std 0.01 shrinks it layer by layer
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "activations-relu.png", "activations-sigmoid.png", "activations-tanh.png"]  # fmt: skip


def test_optimizers_on_the_2d_function():
    start = optimizers.f(-7.0, 2.0)
    finals = {n: optimizers.f(*optimizers.trajectory(n)[-1]) for n in optimizers.OPTIMIZERS}
    assert all(v < start / 50 for v in finals.values()), finals
    assert finals["AdaGrad"] < finals["SGD"] / 10
    sgd_y = [p[1] for p in optimizers.trajectory("SGD")[:10]]
    assert all(a * b < 0 for a, b in zip(sgd_y, sgd_y[1:], strict=False))  # SGD zigzags in y
    adagrad_y = [p[1] for p in optimizers.trajectory("AdaGrad")[:10]]
    assert all(a * b > 0 for a, b in zip(adagrad_y, adagrad_y[1:], strict=False))


def test_adam_and_adagrad_end_below_sgd_on_mnist_like_data(tmp_path, data):
    x, t, _, _ = data
    result = optimizers.run(tmp_path, (x, t), iterations=150, **QUIET)
    final = {n: r["final_loss"] for n, r in result["mnist"].items()}
    assert final["Adam"] < final["SGD"] and final["AdaGrad"] < final["SGD"], final
    assert {p.name for p in tmp_path.iterdir()} == {
        "optimizers.json", "optimizers-function.png", "optimizers-mnist.png"}  # fmt: skip


def test_he_init_learns_where_std_001_is_stuck(tmp_path, data):
    x, t, _, _ = data
    runs = curves.run_init(tmp_path, x, t, iterations=150, **QUIET)["runs"]
    assert runs["std=0.01"]["final_loss"] > 2.2  # ln 10 = 2.30: no learning yet
    assert runs["He"]["final_loss"] < runs["std=0.01"]["final_loss"] - 0.5


def test_batchnorm_learns_at_scales_where_the_plain_net_does_not(tmp_path, data):
    x, t, _, _ = data
    runs = curves.run_batchnorm(tmp_path, x, t, train_size=600, epochs=10, scales=3, **QUIET)
    mid = runs["runs"][1]  # std 0.01: too small for the plain 6-layer net to start learning
    assert mid["std"] == pytest.approx(1e-2)
    assert mid["batchnorm"][-1] > mid["plain"][-1] + 0.5
    assert len(mid["plain"]) == 11  # before training and after each epoch


def test_weight_decay_narrows_the_train_test_gap(tmp_path, data):
    x, t, xt, tt = data
    runs = curves.run_overfit(tmp_path, x, t, xt, tt, train_size=100, epochs=30, **QUIET)["runs"]
    plain, decay = runs["plain"], runs["weight decay 0.1"]
    assert plain["train"][-1] > plain["test"][-1] + 0.1  # it overfits
    assert decay["gap"] < plain["gap"]


def test_hparams_ranks_trials_and_is_reproducible_by_seed(tmp_path, data):
    x, t, _, _ = data
    args = {"train_size": 300, "trials": 6, "epochs": 30, **QUIET}
    result = curves.run_hparams(tmp_path / "a", x, t, **args)
    vals = [r["val"][-1] for r in result["trials"]]
    assert vals == sorted(vals, reverse=True) and result["val_size"] == 60
    lrs = [r["lr"] for r in result["trials"]]
    assert all(1e-6 <= v <= 1e-2 for v in lrs)
    assert np.median(lrs[:3]) > np.median(lrs[-3:])  # the learning rate is what matters
    again = curves.run_hparams(tmp_path / "b", x, t, **args)
    other = curves.run_hparams(tmp_path / "c", x, t, **{**args, "seed": 1, "epochs": 1})
    text = (tmp_path / "a" / "hparams.json").read_text()
    assert text == (tmp_path / "b" / "hparams.json").read_text() and again == result
    assert other["trials"][0]["lr"] != result["trials"][0]["lr"]


def test_cli_runs_an_experiment_into_its_folder(tmp_path, capsys):
    assert main(["experiment", "activations", "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "activations.json").is_file()
    assert f"output folder: {tmp_path / 'e'}" in capsys.readouterr().out


def test_cli_refuses_a_setting_the_experiment_does_not_take(tmp_path, capsys):
    argv = ["experiment", "gradcheck", "--epochs", "3", "--out", str(tmp_path / "g")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastnet experiment: error: experiment gradcheck does not take epochs "
                   "(it takes: none)"]  # fmt: skip
