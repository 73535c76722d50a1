"""The fastnet command line: train, resume, evaluate, predict, plot, models, bad input."""

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnet import checkpoint, config
from fastnet.cli import COMPILE_NOTICE, build_parser, main
from fastnet.data import load_dataset, sources

SMALL = ["--limit", "240", "--batch-size", "40", "--val-split", "0.25"]


def train(out: Path, *extra: str) -> int:
    return main(["train", "--out", str(out), *SMALL, *extra])


@pytest.fixture(scope="module")
def simple_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "simple"
    assert train(out, "--model", "simple", "--epochs", "2") == 0
    return out


def test_train_writes_the_run_folder(simple_run):
    assert sorted(p.name for p in simple_run.iterdir()) == [
        "best.npz", "checkpoint.npz", "config.json", "metrics.jsonl",
    ]  # fmt: skip
    saved = json.loads((simple_run / "config.json").read_text())
    assert saved["model"] == "simple" and saved["limit"] == 240
    assert saved["processes"] == 1  # beside the configuration: one process trained
    lines = (simple_run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0 <= r["val_accuracy"] <= 1 and r["images_per_s"] > 0 for r in records)
    assert all(r["processes"] == 1 and r["eval_seconds"] > 0 for r in records)
    model_state, optim_state, meta = checkpoint.load(simple_run / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2 and "0.weight" in model_state
    assert any(k.startswith("state.") for k in optim_state)


@pytest.mark.parametrize("model", ["vgg", "mlp"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(model, tmp_path):
    args = (
        "--model",
        model,
        "--optimizer",
        "momentum",
        "--lr",
        "0.01",
        "--seed",
        "3",
        "--augment",
        "2",
    )
    assert train(tmp_path / "full", *args, "--epochs", "2") == 0
    assert train(tmp_path / "part", *args, "--epochs", "1") == 0
    assert main(["train", "--resume", str(tmp_path / "part"), "--epochs", "2"]) == 0
    full, _, _ = checkpoint.load(tmp_path / "full" / "checkpoint.npz")
    part, _, meta = checkpoint.load(tmp_path / "part" / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2
    for name, value in full.items():
        np.testing.assert_array_equal(part[name], value, err_msg=name)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_train_accuracy_is_measured_in_eval_mode_on_a_sample_of_the_training_images(
    tmp_path, monkeypatch, capsys
):
    """Not the running accuracy of the steps (augmented images, dropout on): that one is
    ``running_train_accuracy``. The sample is the first ``TRAIN_SAMPLE`` training images."""
    from fastnet.loop import evaluate
    from fastnet.run import make_model, trainer

    monkeypatch.setattr(trainer, "TRAIN_SAMPLE", 150)
    out = tmp_path / "run"
    argv = ["--model", "vgg", "--limit", "200", "--batch-size", "50", "--epochs", "1"]
    assert main(["train", "--out", str(out), *argv, "--augment", "2", "--threads", "1"]) == 0
    record = json.loads((out / "metrics.jsonl").read_text())
    model_state, _, meta = checkpoint.load(out / "checkpoint.npz")
    model = make_model(config.TrainConfig(**meta["config"]), np.random.default_rng(0))
    model.load_state_dict(model_state)
    (x, t), _ = load_dataset("mnist")
    accuracy, _ = evaluate(model, x[:150], t[:150])
    assert record["train_accuracy"] == accuracy
    assert record["running_train_accuracy"] != accuracy  # dropout and augmentation on
    line = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 1/1 ")]
    assert f"  train acc {accuracy:.4f}  test acc {record['test_accuracy']:.4f}  " in line[-1]


def test_resume_with_other_epochs_says_how_the_schedule_changes(tmp_path, capsys):
    """``--epochs`` re-spreads the cosine schedule of a run stopped after 2 of 20 epochs."""
    out = tmp_path / "run"
    assert train(out, "--model", "mlp", "--epochs", "2") == 0
    model_state, optim_state, meta = checkpoint.load(out / "checkpoint.npz")
    meta["config"]["epochs"] = 20
    checkpoint.save(out / "checkpoint.npz", model_state, optim_state, meta)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    note = ("--epochs 3 changes the run from 20 to 3 epochs: the cosine schedule is re-spread "
            "over 3 epochs (epoch 3 at lr 2.5e-04 instead of 9.8e-04)")  # fmt: skip
    assert note in lines
    assert lines.index(note) < min(i for i, line in enumerate(lines) if line.startswith("epoch"))
    assert main(["train", "--resume", str(out), "--epochs", "4"]) == 0
    assert "--epochs 4 changes the run from 3 to 4 epochs: the cosine schedule is re-spread " in (
        capsys.readouterr().out
    )


def test_a_bad_fastnet_isa_is_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTNET_ISA", "bogus")
    assert train(tmp_path / "run", "--model", "vgg", "--epochs", "1") == 2
    assert capsys.readouterr().err.splitlines() == [
        "fastnet train: error: FASTNET_ISA must be one of avx512, avx2, neon, generic (or "
        "unset), got 'bogus'"]  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_dropout_rate_is_saved_and_resume_refuses_another(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--model", "vgg-bn", "--dropout", "0.25", "--epochs", "1") == 0
    assert json.loads((out / "config.json").read_text())["dropout"] == 0.25
    assert main(["train", "--resume", str(out), "--dropout", "0.5", "--epochs", "2"]) == 2
    assert "--dropout 0.5 (the checkpoint has 0.25)" in capsys.readouterr().err


def test_evaluate_prints_accuracy_and_confusion_matrix(simple_run, tmp_path, capsys):
    png = tmp_path / "wrong.png"
    assert main(["evaluate", str(simple_run / "best.npz"), "--misclassified", str(png)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "confusion matrix" in out
    assert [line for line in out.splitlines() if line.startswith("data: ")] == [
        f"data: mnist from {sources.BUNDLED['mnist']} ({sources.BUNDLED_NOTE})"
    ]
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    rows = [line.split() for line in lines[header + 2 : header + 12]]
    matrix = np.array([[int(v) for v in row[1:]] for row in rows])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    _, (_, t_test) = load_dataset("mnist")
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(t_test, minlength=10))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_reads_black_on_white_images_of_any_size(simple_run, tmp_path, capsys):
    from PIL import Image

    _, (x_test, t_test) = load_dataset("mnist")
    model_state, _, _ = checkpoint.load(simple_run / "best.npz")
    paths = []
    for i in range(3):
        big = Image.fromarray(255 - x_test[i, 0]).resize((84, 70))  # dark ink, light paper
        paths.append(tmp_path / f"digit{i}.png")
        big.save(paths[-1])
    assert main(["predict", str(simple_run / "best.npz"), *map(str, paths), "--top", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line != COMPILE_NOTICE]
    assert len(lines) == 3
    for line, path in zip(lines, paths, strict=True):
        assert line.startswith(f"{path}: ")
        probs = [float(tok.strip("()")) for tok in line.split()[2::2]]
        assert len(probs) == 2 and probs[0] >= probs[1] and 0 <= probs[0] <= 1


def test_plot_writes_curves_and_filters(simple_run):
    assert main(["plot", str(simple_run)]) == 0
    for name in ("curves.png", "filters.png"):
        assert (simple_run / name).read_bytes()[:4] == b"\x89PNG"


def test_models_lists_models_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    counts = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out.splitlines()}
    assert "`" not in out and ":class:" not in out  # plain text, not reST
    assert "vgg-bn     124,000 parameters  vgg with BatchNorm2d after each convolution." in out
    # The book's DeepConvNet: six 3x3 convolutions, Affine 1024x50 and 50x10.
    convs = [(1, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    vgg = sum(c * oc * 9 + oc for c, oc in convs) + 1024 * 50 + 50 + 50 * 10 + 10
    assert counts == {
        "vgg": vgg,
        "vgg-bn": vgg + 2 * sum(oc for _, oc in convs),
        "simple": 30 * 25 + 30 + 4320 * 100 + 100 + 100 * 10 + 10,
        "mlp": 784 * 100 + 100 + 3 * (100 * 100 + 100) + 100 * 10 + 10,
    }


def test_dry_run_writes_nothing(tmp_path, capsys):
    assert train(tmp_path / "dry", "--dry-run") == 0
    assert "dry run" in capsys.readouterr().out
    assert not (tmp_path / "dry").exists()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--batch-size", "0"], "--batch-size: expected a positive integer"),
        (["train", "--epochs", "-3"], "--epochs: expected a positive integer"),
        (["train", "--lr", "0"], "--lr: expected a number > 0"),
        (["train", "--lr", "nan"], "--lr: expected a number > 0"),
        (["train", "--lr", "-1e-3"], "--lr: expected a number > 0, got '-1e-3'"),
        (["train", "--lr", "-.5E+2"], "--lr: expected a number > 0, got '-.5E\\+2'"),
        (["train", "--weight-decay", "-inf"], "--weight-decay: expected a number >= 0"),
        (["train", "--seed", "-1"], "--seed: expected a positive integer, got '-1'"),
        (["train", "--val-split", "1"], r"--val-split: expected a number in \[0, 1\)"),
        (["train", "--model", "resnet"], "--model: invalid choice: 'resnet'"),
        (["train", "--dropout", "1"], r"--dropout: expected a number in \[0, 1\)"),
        (["train", "--model", "mlp", "--dropout", "0.1"], "dropout must be None for model 'mlp'"),
        (["train", "--dataset", "cifar"], "--dataset: invalid choice"),
        (["train", "--resume", "/nonexistent/ckpt.npz"], "does not exist"),
        (["evaluate", "/nonexistent.npz"], "no such checkpoint file"),
        (["plot", "/"], "not a run folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, match, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.search(match, err[0]), err[0]


def test_resume_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, weights=np.zeros(3))
    assert main(["train", "--resume", str(bogus)]) == 2
    assert "not a fastnet checkpoint" in capsys.readouterr().err


def test_out_folder_with_a_checkpoint_is_not_overwritten(simple_run, capsys):
    before = (simple_run / "checkpoint.npz").read_bytes()
    assert train(simple_run, "--model", "simple") == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert (simple_run / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("module", ["matplotlib", "PIL"])
def test_missing_plot_extra_is_a_clear_error(module, simple_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail
    argv = {
        "matplotlib": ["plot", str(simple_run)],
        "PIL": ["predict", str(simple_run / "best.npz"), str(tmp_path / "x.png")],
    }[module]
    assert main(argv) == 2
    assert f"needs {module.replace('PIL', 'Pillow')}: pip install 'fastnet[plot]'" in (
        capsys.readouterr().err
    )


def test_simple_net_learns_mnist_in_one_short_epoch(tmp_path):
    """The issue's quick end-to-end check: PyTorch's same setup gets 84-86% here."""
    out = tmp_path / "simple"
    argv = ["train", "--out", str(out), "--model", "simple"]
    assert main([*argv, "--limit", "2000", "--epochs", "1"]) == 0
    record = json.loads((out / "metrics.jsonl").read_text())
    assert record["test_accuracy"] > 0.80, record


def test_train_says_once_which_copy_of_the_data_it_reads(tmp_path, capsys):
    assert train(tmp_path / "run", "--model", "mlp", "--epochs", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("data: ")] == [
        f"data: mnist from {sources.BUNDLED['mnist']} ({sources.BUNDLED_NOTE})"
    ]
    assert not [line for line in out if "process" in line]  # one process: nothing said of it


def test_simple_net_learns_the_real_fashion_mnist_subset(fashion_root, tmp_path, capsys):
    """800 real Fashion-MNIST training images, 3 epochs: 78% of the other 200 here (chance
    is 10%; PyTorch's SimpleConvNet gets about as much from so few images)."""
    out = tmp_path / "fashion"
    argv = ["train", "--dataset", "fashion-mnist", "--data-dir", str(fashion_root)]
    argv += ["--out", str(out), "--model", "simple", "--epochs", "3", "--batch-size", "40"]
    assert main(argv) == 0
    assert f"data: fashion-mnist from {fashion_root / 'fashion-mnist'} (the folder given)" in (
        capsys.readouterr().out.splitlines()
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["test_accuracy"] > 0.70, records[-1]


def option_blocks(help_text: str) -> dict[str, str]:
    """The help text of each option, keyed by its first flag, whitespace collapsed."""
    blocks: dict[str, list[str]] = {}
    flag = None
    for line in help_text.splitlines():
        match = re.match(r"^  (-[-\w]+)", line)
        if match:
            flag = match.group(1)
            blocks[flag] = [line[match.end() :]]
        elif flag and line.startswith("    "):
            blocks[flag].append(line)
        else:
            flag = None
    return {k: " ".join(" ".join(v).split()) for k, v in blocks.items()}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert all(choice.help for choice in sub._choices_actions)  # the command list
    return {"fastnet": parser, **sub.choices}


@pytest.mark.parametrize("name", list(subcommands()))
def test_help_describes_every_option_and_shows_its_real_default_once(name):
    parser = subcommands()[name]
    blocks = option_blocks(parser.format_help())
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        if not action.option_strings:
            continue
        flag = action.option_strings[0]
        text = blocks[flag]
        assert action.help.split()[0] in text, f"{name} {flag}: help not shown: {text}"
        assert "default: None" not in text, f"{name} {flag}: {text}"
        assert text.count("default") <= 1, f"{name} {flag}: {text}"
        default = action.default
        if not (default is None or default is False or default is argparse.SUPPRESS):
            assert f"(default: {default})" in text, f"{name} {flag}: {text}"
    if name == "train":
        assert "(default: 20;" in blocks["--epochs"]  # TrainConfig's, not the parser's None
        assert "(default: the book's 0.5)" in blocks["--dropout"]


def test_parser_takes_its_defaults_and_choices_from_the_config():
    parsers = subcommands()
    train = {action.dest: action for action in parsers["train"]._actions}
    fields = [field.name for field in dataclasses.fields(config.TrainConfig)]
    assert set(fields) <= train.keys()  # every field of a run has its flag
    for name in fields:
        expected = None if name == "epochs" else config.default(name)  # None: see its help
        assert train[name].default == expected, name
    choices = {
        "model": config.MODELS,
        "dataset": config.DATASETS,
        "optimizer": config.OPTIMIZERS,
        "lr_schedule": config.LR_SCHEDULES,
        "dtype": config.DTYPES,
    }
    for name, names in choices.items():
        assert tuple(train[name].choices) == names, name
    for command in ("train", "evaluate", "predict"):
        (device,) = [a for a in parsers[command]._actions if a.dest == "device"]
        assert tuple(device.choices) == config.DEVICES and device.default in config.DEVICES
    (dataset,) = [a for a in parsers["download"]._actions if a.dest == "dataset"]
    assert tuple(dataset.choices) == config.DATASETS
