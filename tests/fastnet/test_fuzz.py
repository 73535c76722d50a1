"""Property-based tests: random and mutated bytes fed to the IDX reader, the checkpoint
loader and the ONNX loader either load or raise fastnet's own error type (a FastnetError),
never anything else.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnet import checkpoint, optim
from fastnet import onnx as fonnx
from fastnet.data import read_idx
from fastnet.data.idx import IMAGES_MAGIC
from fastnet.errors import FastnetError
from fastnet.layers import (
    Affine,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    MaxPool2d,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
)
from fastnet.module import Sequential

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def valid_idx() -> bytes:
    """A small valid IDX images file (uint8, 3 x 4 x 5), written without the reader."""
    images = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    dims = b"".join(d.to_bytes(4, "big") for d in images.shape)
    return IMAGES_MAGIC.to_bytes(4, "big") + dims + images.tobytes()


@pytest.fixture(scope="module")
def real_checkpoint(folder: Path) -> bytes:
    """The bytes of a real checkpoint: a tiny Affine model after one Adam step."""
    rng = np.random.default_rng(0)
    model = Affine(3, 2, rng=rng)
    opt = optim.Adam(model.parameters())
    loss_fn = SoftmaxCrossEntropy()
    loss_fn(model(rng.random((4, 3), dtype=np.float32)), np.array([0, 1, 1, 0]))
    model.backward(loss_fn.backward())
    opt.step()
    path = folder / "real.npz"
    checkpoint.save(path, model.state_dict(), opt.state_dict(), {"epoch": 1, "config": {}})
    checkpoint.load(path)  # it is valid
    return path.read_bytes()


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random edits: flipped, overwritten, inserted or deleted bytes,
    or cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(0, len(out) - 1)))
        if op == "flip" and out:
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[i] = draw(st.integers(0, 255))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[i : i + draw(st.integers(1, 8))]
        else:
            del out[i:]
    return bytes(out)


def read_or_fail_cleanly(read, path: Path, data: bytes) -> None:
    """``read(path)`` either succeeds or raises a FastnetError; anything else fails."""
    path.write_bytes(data)
    try:
        read(path)
    except FastnetError as e:
        assert str(path) in str(e), f"the message does not name the file: {e}"


IDX = valid_idx()
IDX_FORMS = {"raw": IDX, "gzip": gzip.compress(IDX, mtime=0)}


@pytest.mark.parametrize("form", IDX_FORMS)
@FUZZ
@given(data=st.data())
def test_mutated_idx_files_load_or_raise_data_error(folder, form, data):
    mutated = data.draw(mutations(IDX_FORMS[form]))
    name = "images.idx.gz" if form == "gzip" else "images.idx"
    read_or_fail_cleanly(lambda p: read_idx(p, magic=IMAGES_MAGIC), folder / name, mutated)


@FUZZ
@given(raw=st.binary(max_size=64), gz=st.booleans())
def test_random_bytes_as_idx_load_or_raise_data_error(folder, raw, gz):
    read_or_fail_cleanly(read_idx, folder / ("random.gz" if gz else "random"), raw)


@pytest.fixture(scope="module")
def real_npy() -> bytes:
    """A valid .npy file (not a checkpoint: a loader must not take it for an .npz)."""
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float32).reshape(2, 3))
    return buffer.getvalue()


@pytest.mark.parametrize("source", ["real_checkpoint", "real_npy"])
@FUZZ
@given(data=st.data())
def test_mutated_checkpoints_load_or_raise_checkpoint_error(folder, request, source, data):
    mutated = data.draw(mutations(request.getfixturevalue(source)))
    read_or_fail_cleanly(checkpoint.load, folder / "mutated.npz", mutated)


# Starts of random checkpoint candidates: none, zip, .npy, pickle.
MAGICS = [b"", b"PK\x03\x04", b"\x93NUMPY\x01\x00", b"\x80\x04"]


@FUZZ
@given(raw=st.tuples(st.sampled_from(MAGICS), st.binary(max_size=64)).map(b"".join))
def test_random_bytes_as_checkpoint_load_or_raise_checkpoint_error(folder, raw):
    read_or_fail_cleanly(checkpoint.load, folder / "random.npz", raw)


@pytest.fixture(scope="module")
def real_onnx(folder: Path) -> bytes:
    """The bytes of a small exported model with every kind of node the loader reads."""
    rng = np.random.default_rng(0)
    model = Sequential(
        Conv2d(1, 2, 3, padding=1, rng=rng), BatchNorm2d(2), ReLU(), MaxPool2d(2),
        AvgPool2d(3, 1, 1), Flatten(), Affine(18, 3, rng=rng), Sigmoid(),
    )  # fmt: skip
    path = folder / "real.onnx"
    fonnx.export(model, path, input_shape=(1, 6, 6))
    fonnx.load(path)  # it is valid
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_mutated_onnx_files_load_or_raise_onnx_error(folder, real_onnx, data):
    read_or_fail_cleanly(fonnx.load, folder / "mutated.onnx", data.draw(mutations(real_onnx)))


@FUZZ
@given(raw=st.binary(max_size=96))
def test_random_bytes_as_onnx_load_or_raise_onnx_error(folder, raw):
    read_or_fail_cleanly(fonnx.load, folder / "random.onnx", raw)
