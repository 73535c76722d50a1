"""Bad input: every CLI flag is checked before any work starts (exit 2, one line on stderr,
no traceback); internal errors exit 1; the Python API names what it expected.

Malformed data files are covered by test_data.py; here only their path through the CLI.
"""

from __future__ import annotations

import gzip
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from fastnet import Parameter, checkpoint, init, optim, run
from fastnet.cli import main
from fastnet.config import TrainConfig
from fastnet.data import FILES, random_shift
from fastnet.errors import ConfigError, DataError
from fastnet.layers import (
    Affine,
    BatchNorm2d,
    Conv2d,
    Dropout,
    MaxPool2d,
    ReLU,
    SoftmaxCrossEntropy,
)

SMALL = ["--limit", "240", "--batch-size", "40", "--val-split", "0.25"]


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``fastnet argv`` (argparse's exits included)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A real one-epoch run and hostile or mismatched files beside it."""
    folder = tmp_path_factory.mktemp("bad")
    run = folder / "run"
    assert main(["train", "--out", str(run), *SMALL, "--model", "mlp", "--epochs", "1"]) == 0
    model_state, optim_state, meta = checkpoint.load(run / "checkpoint.npz")

    def variant(name: str, config: dict | None = None, state: dict | None = None) -> Path:
        changed = {**meta, "config": {**meta["config"], **(config or {})}}
        changed["state"] = {**meta["state"], **(state or {})}
        checkpoint.save(folder / name, model_state, optim_state, changed)
        return folder / name

    paths = {
        "run": run,
        "other_model": variant("other_model.npz", {"model": "simple"}),
        "unknown_model": variant("unknown_model.npz", {"model": "resnet"}),
        "bad_lr": variant("bad_lr.npz", {"lr": "fast"}),
        "three_epochs": variant("three_epochs.npz", {"epochs": 3}, {"epoch": 3}),
        "npy": folder / "array.npy",
        "pickle": folder / "pickle.npz",
        "text": folder / "notes.txt",
        "empty": folder / "empty.npz",
    }
    np.save(paths["npy"], np.zeros(3))
    paths["pickle"].write_bytes(pickle.dumps({"weights": [1.0]}))
    paths["text"].write_text("not a checkpoint\n")
    paths["empty"].write_bytes(b"")
    return paths


# (argv with {name} placeholders for files[name] and {tmp}, message matched on stderr)
CLI_CASES = [
    (["train", "--limit", "0"], "--limit: expected a positive integer, got '0'"),
    (["train", "--batch-size", "-5"], "--batch-size: expected a positive integer"),
    (["train", "--epochs", "two"], "--epochs: expected a positive integer, got 'two'"),
    (["train", "--seed", "-1"], "--seed: expected a positive integer"),
    (["train", "--seed", "1.5"], "--seed: expected a positive integer"),
    (["train", "--lr=-0.001"], "--lr: expected a number > 0"),
    (["train", "--lr", "inf"], "--lr: expected a number > 0, got 'inf'"),
    (["train", "--momentum", "1"], r"--momentum: expected a number in \[0, 1\)"),
    (["train", "--weight-decay", "-1"], "--weight-decay: expected a number >= 0"),
    (["train", "--weight-decay", "nan"], "--weight-decay: expected a number >= 0"),
    (["train", "--augment", "9"], "--augment: shift must be an integer from 0 to 8"),
    (["train", "--augment", "-1"], "--augment: expected an integer or a spec like shift=2"),
    (["train", "--threads", "0"], "--threads: expected a positive integer"),
    (["train", "--threads", "4096"], "--threads must be at most"),
    (["train", "--checkpoint-every", "-2"], "--checkpoint-every: expected a positive integer"),
    (["train", "--optimizer", "lbfgs"], "--optimizer: invalid choice: 'lbfgs'"),
    (["train", "--lr-schedule", "poly"], "--lr-schedule: invalid choice: 'poly'"),
    (["train", "--val-split", "0.999"], "val_split 0.999 holds out 240 of 240 images"),
    (["train", "--data-dir", "{text}"], r"--data-dir: .*notes.txt is not a folder"),
    (["train", "--out", "{text}"], r"--out: .*notes.txt is not a writable folder"),
    (["train", "--out", "{text}/run"], r"--out: .*notes.txt is not a writable folder"),
    (["train", "--out", "{run}"], "already holds a checkpoint; use --resume"),
    (["train", "--resume", "{npy}"], r"array.npy: not an .npz checkpoint \(a .npy array\)"),
    (["train", "--resume", "{pickle}"], r"pickle.npz: not an .npz checkpoint \(a pickle\)"),
    (["train", "--resume", "{text}"], r"notes.txt: not an .npz checkpoint \(not a zip"),
    (["train", "--resume", "{empty}"], r"empty.npz: not an .npz checkpoint \(an empty file\)"),
    (["train", "--resume", "{tmp}"], r"checkpoint.npz: no such checkpoint file"),
    (["train", "--resume", "{other_model}"], "other_model.npz: does not fit its model"),
    (["train", "--resume", "{unknown_model}"], "model must be one of vgg, .*, got 'resnet'"),
    (["train", "--resume", "{bad_lr}"], r"not a training checkpoint \(lr must be a finite"),
    (["train", "--resume", "{three_epochs}", "--epochs", "2"], "epochs must be at least 3"),
    (["train", "--resume", "{run}", "--model", "simple"], "--model simple .the checkpoint has mlp"),
    (["train", "--resume", "{run}", "--lr", "0.5", "--seed", "0"], r"--lr 0.5 \(the checkpoint"),
    (["evaluate", "{npy}"], r"array.npy: not an .npz checkpoint \(a .npy array\)"),
    (["evaluate", "{tmp}"], "cannot read the checkpoint"),
    (["evaluate", "{other_model}"], "weights do not fit model 'simple'"),
    (["evaluate", "{unknown_model}"], "not a training checkpoint"),
    (["evaluate", "{run}/checkpoint.npz", "--misclassified", "{tmp}/no/such/dir/x.png"],
     r"--misclassified: .*no/such/dir is not a writable folder"),
    (["evaluate", "{run}/checkpoint.npz", "--data-dir", "{text}"], "--data-dir: .* not a folder"),
    (["predict", "{run}/checkpoint.npz", "{tmp}/missing.png"], "missing.png: not a readable"),
    (["predict", "--top", "0", "{run}/checkpoint.npz", "x.png"], "--top: expected a positive"),
    (["plot", "{text}"], "not a run folder"),
    (["fit"], "invalid choice: 'fit'"),
    ([], "the following arguments are required: COMMAND"),
]  # fmt: skip


@pytest.mark.parametrize("argv, match", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_bad_flag_exits_2_with_one_line_before_any_work(argv, match, files, tmp_path, capsys):
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    argv = [a.format(**names) for a in argv]
    out = tmp_path / "out"
    if argv[:1] == ["train"] and "--resume" not in argv:  # the case's own flags come last
        argv[1:1] = ["--out", str(out), *SMALL]
    before = {p.name: p.stat().st_mtime_ns for p in files["run"].iterdir()}
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert len(err) == 1, err
    assert re.search(match, err[0]), err[0]
    assert "Traceback" not in err[0]
    assert not out.exists(), "work started before the input was checked"
    assert {p.name: p.stat().st_mtime_ns for p in files["run"].iterdir()} == before


def fake_dataset(folder: Path, rng: np.random.Generator) -> None:
    """Four tiny valid gzipped IDX files under ``folder / "mnist"``."""
    (folder / "mnist").mkdir(parents=True)
    for name, n in zip(FILES, (8, 8, 4, 4), strict=True):
        shape = (n, 28, 28) if "images" in name else (n,)
        data = rng.integers(0, 10, size=shape, dtype=np.uint8)
        header = (0x800 + len(shape)).to_bytes(4, "big")
        header += b"".join(d.to_bytes(4, "big") for d in shape)
        (folder / "mnist" / name).write_bytes(gzip.compress(header + data.tobytes()))


CORRUPT = {
    "truncated": (lambda b: gzip.compress(gzip.decompress(b)[:-3]), "truncated: header declares"),
    "wrong magic": (lambda b: gzip.compress(b"\1\2\3\4" + gzip.decompress(b)[4:]), "magic"),
    "not gzip": (lambda b: gzip.decompress(b), "named .gz but is not gzip-compressed"),
    "empty": (lambda b: b"", "file is empty"),
    "no images": (lambda b: gzip.compress(bytes.fromhex("00000803 00000000 0000001c 0000001c")),
                  r"holds no images \(its header declares N = 0\)"),
}  # fmt: skip


@pytest.mark.parametrize("corrupt, match", CORRUPT.values(), ids=CORRUPT)
def test_malformed_data_file_exits_2_naming_it(corrupt, match, tmp_path, rng, capsys):
    fake_dataset(tmp_path, rng)
    path = tmp_path / "mnist" / FILES[0]
    path.write_bytes(corrupt(path.read_bytes()))
    argv = ["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--dry-run"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1, err
    assert str(path) in err[0] and re.search(match, err[0]), err[0]


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_exits_1_with_a_short_message_or_the_traceback(debug, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in fastnet")

    monkeypatch.setattr(run, "fit", broken)
    argv = ["--debug"] * debug + ["train", "--dry-run", "--out", "unused"]
    code, err = run_cli(argv, capsys)
    assert code == 1
    if debug:
        assert err[0].startswith("Traceback") and err[-1] == "RuntimeError: a bug in fastnet"
    else:
        assert err == [
            "fastnet train: internal error: RuntimeError: a bug in fastnet "
            "(run with --debug for the traceback)"
        ]


# ---------------------------------------------------------------- Python API

X = np.zeros((2, 3, 8, 8), np.float32)
P = [Parameter(np.ones(2))]

API_CASES = [
    (lambda: Conv2d(3, 4, 3, weight_init=None), "Conv2d: weight_init must be 'he', 'xavier'"),
    (lambda: Conv2d(3, 4, 3, weight_init=[0.1]), "weight_init must be 'he', 'xavier' or a float"),
    (lambda: Conv2d(3, 4, 3, weight_init=np.nan), "std must be a finite number > 0, got nan"),
    (lambda: Conv2d(3, 4, 3, rng=7), "Conv2d: rng must be a numpy.random.Generator or None"),
    (lambda: Conv2d(3, 4.0, 3), "out_channels must be a positive integer, got 4.0"),
    (lambda: Conv2d(3, 4, 3, padding=-1), "padding must be >= 0"),
    (lambda: Affine(True, 4), "in_features must be a positive integer, got True"),
    (lambda: Affine(3, 4, dtype=np.float16), "dtype must be float32 or float64, got float16"),
    (lambda: Dropout(None), r"Dropout: p must be in \[0, 1\], got None"),
    (lambda: Dropout("0.5"), r"p must be in \[0, 1\], got '0.5'"),
    (lambda: Dropout(np.nan), r"p must be in \[0, 1\], got nan"),
    (lambda: BatchNorm2d(0), "num_features must be a positive integer"),
    (lambda: BatchNorm2d(3, eps=-1e-5), "eps must be a finite number >= 0"),
    (lambda: BatchNorm2d(3, momentum=np.inf), "momentum must be a finite number"),
    (lambda: init.he((2, 2), 0, np.random.default_rng()), "fan_in must be a positive integer"),
    (lambda: Conv2d(3, 4, 3)(X.astype(np.float64)), "same float dtype, got x=float64, w=float32"),
    (lambda: Conv2d(2, 4, 3)(X), r"with C = 3 \(the channels of x\)"),
    (lambda: Conv2d(3, 4, 3)(X.astype(np.int32)), "x must be float32 or float64"),
    (lambda: Conv2d(3, 4, 3)(X.tolist()), r"x must be a numpy array \(N, C, H, W\), got list"),
    (lambda: Conv2d(3, 4, 9)(X), "kernel .* must be non-empty and fit the padded input"),
    (lambda: Affine(10, 4)(np.ones((2, 9), np.float32)), r"w must have shape \(D, M\)"),
    (lambda: BatchNorm2d(4)(X), r"gamma must have shape \(C,\) = \(3,\)"),
    (lambda: BatchNorm2d(3)(X[:1, :, 0, :]), r"x must have shape \(N, C, H, W\)"),
    (lambda: MaxPool2d(2)(X[0]), r"x must have shape \(N, C, H, W\) \(4-d\)"),
    (lambda: MaxPool2d(2, padding=2)(X), "padding must be at most half of kernel_size"),
    (lambda: ReLU()(np.ones(3, int)), "relu_forward: x must be float32 or float64"),
    (lambda: SoftmaxCrossEntropy()(np.ones((2, 3), np.float32), np.array([0.0, 1.0])),
     r"labels must be an integer numpy array \(N,\)"),
    (lambda: SoftmaxCrossEntropy()(np.ones((2, 3), np.float32), np.array([0, 3])),
     r"labels must be in \[0, K\) = \[0, 3\), got 3"),
    (lambda: SoftmaxCrossEntropy()(np.ones((2, 3), np.float32), np.array([0])),
     r"labels must have shape \(N,\) = \(2,\), got \(1,\)"),
    (lambda: optim.Adam(p for p in []), "Adam: got an empty parameter list"),
    (lambda: optim.SGD([Parameter([1.0, 2.0])]), r"params\[0\].data must be a float32 or float64"),
    (lambda: optim.SGD([Parameter(np.ones(2, int))]), "array, got int64"),
    (lambda: optim.Adam(P, lr=None), "Adam: lr must be a number >= 0.0, got None"),
    (lambda: optim.Adam(P, eps=np.nan), "eps must be a number >= 0.0, got nan"),
    (lambda: optim.Adam(P, weight_decay=np.nan), "weight_decay must be a number >= 0.0"),
    (lambda: optim.Adagrad(P, lr_decay=np.nan), "lr_decay must be a number >= 0.0, got nan"),
    (lambda: optim.RMSprop(P, alpha=np.nan), "alpha must be a number >= 0.0, got nan"),
    (lambda: optim.SGD(P, momentum="0.9"), "momentum must be a number >= 0.0, got '0.9'"),
    (lambda: random_shift(X, -1, np.random.default_rng()), "max_shift must be an integer >= 0"),
    (lambda: random_shift(X[0], 2, np.random.default_rng()), r"x must be an array \(N, C, H, W\)"),
    (lambda: TrainConfig(lr="0.1").validate(), "lr must be a finite number > 0, got '0.1'"),
    (lambda: TrainConfig(lr=np.nan).validate(), "lr must be a finite number > 0, got nan"),
    (lambda: TrainConfig(model=["mlp"]).validate(), "model must be one of vgg"),
    (lambda: TrainConfig(momentum=None).validate(), r"momentum must be in \[0, 1\)"),
    (lambda: TrainConfig(val_split=np.nan).validate(), "val_split must be a fraction"),
    (lambda: TrainConfig(batch_size=True).validate(), "batch_size must be an integer"),
    (lambda: TrainConfig(data_dir=3).validate(), "data_dir must be a path or None"),
]  # fmt: skip


@pytest.mark.parametrize("make, match", API_CASES)
def test_api_rejects_bad_input_naming_the_expected_value(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_config_errors_are_fastnet_errors_and_value_errors():
    with pytest.raises(ConfigError) as err:
        TrainConfig(epochs=0).validate()
    assert isinstance(err.value, ValueError)
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------- images for predict


def _png(mode: str, size: tuple[int, int]):
    """A writer of a blank ``mode`` PNG: a 1-bit or palette one compresses to kilobytes."""

    def write(path: Path) -> None:
        from PIL import Image

        Image.new(mode, size).save(path)

    return write


def _truncated_png(path: Path) -> None:
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(noise).save(path)  # 28 x 28 bytes of noise do not compress
    path.write_bytes(path.read_bytes()[:400])  # the header and half the pixel data


def _lab_tiff(path: Path) -> None:
    from PIL import Image

    Image.new("LAB", (28, 28)).save(path, format="TIFF")  # no conversion from LAB to grey


LIMIT = 1000  # PIL.Image.MAX_IMAGE_PIXELS in the cases that lower it

# (file name, writer, lower the limit to LIMIT, message matched on stderr)
IMAGE_CASES = {
    "bomb 15000x15000": ("bomb.png", _png("1", (15_000, 15_000)), False,
                         r"too large \(more than 89,478,485 pixels"),
    "over twice the limit": ("big.png", _png("P", (100, 100)), True,
                             r"too large \(more than 1,000 pixels"),
    "over the limit": ("big.png", _png("P", (40, 40)), True, r"too large \(more than 1,000"),
    "truncated": ("cut.png", _truncated_png, False, r"not a readable image \(.*truncated"),
    "text": ("text.png", lambda p: p.write_text("not an image\n"), False,
             r"not a readable image \(not in an image format Pillow knows\)"),
    "empty": ("empty.png", lambda p: p.write_bytes(b""), False,
              r"not a readable image \(an empty file\)"),
    "LAB mode": ("lab.tif", _lab_tiff, False, r"not a readable image \(conversion from LAB"),
}  # fmt: skip


@pytest.mark.parametrize("name, write, lower, match", IMAGE_CASES.values(), ids=IMAGE_CASES)
def test_predict_on_a_bad_image_exits_2_naming_it(
    name, write, lower, match, files, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("PIL")
    from PIL import Image

    path = tmp_path / name
    write(path)
    if lower:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)
    code, err = run_cli(["predict", str(files["run"] / "checkpoint.npz"), str(path)], capsys)
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith(f"fastnet predict: error: {path}: "), err[0]
    assert re.search(match, err[0]), err[0]
