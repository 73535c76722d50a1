"""Security: no pickle anywhere (hostile checkpoints are refused without running their
payload), and downloads over https where the mirror offers it, always checksum-verified.
"""

from __future__ import annotations

import ast
import pickle
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

import fastnet
import kernels
from fastnet import checkpoint
from fastnet.cli import main
from fastnet.data import FILES, load_dataset
from fastnet.data import download as dl
from fastnet.errors import CheckpointError, DataError
from fastnet.layers import Affine

# Mirrors that do not offer https, with the reason documented beside MIRRORS.
PLAIN_HTTP = {
    # Zalando's S3 website endpoint; its REST endpoint (https) is listed first.
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}


class Payload:
    """Unpickling this creates the file ``marker`` (what an attacker's code could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def object_array(marker: Path) -> np.ndarray:
    return np.array([Payload(marker), 1.0], dtype=object)


def real_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The entries of a valid checkpoint of a tiny model, as ``checkpoint.save`` writes them."""
    model = Affine(3, 2, rng=np.random.default_rng(0))
    checkpoint.save(folder / "real.npz", model.state_dict(), {}, {"config": {}})
    checkpoint.load(folder / "real.npz")
    with np.load(folder / "real.npz") as npz:
        return {k: npz[k] for k in npz.files}


def hostile_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Checkpoint look-alikes whose loading by pickle would create ``marker``."""
    paths = {
        name: folder / f"{name}.npz"
        for name in ("raw_pickle", "object_entry", "object_meta", "pickle_member")
    }
    paths["npy_object"] = folder / "npy_object.npy"
    paths["raw_pickle"].write_bytes(pickle.dumps(Payload(marker)))
    arrays = real_arrays(folder)
    np.savez(paths["object_entry"], **arrays, **{"model/evil": object_array(marker)})
    np.savez(paths["object_meta"], **{**arrays, "meta": object_array(marker)})
    with zipfile.ZipFile(paths["pickle_member"], "w") as z:
        for name, value in arrays.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, value)
        z.writestr("model/evil.npy", pickle.dumps(Payload(marker)))
    np.save(paths["npy_object"], object_array(marker), allow_pickle=True)
    return paths


HOSTILE = ["raw_pickle", "object_entry", "object_meta", "pickle_member", "npy_object"]
REFUSAL = {
    "raw_pickle": r"not an .npz checkpoint \(a pickle\)",
    "object_entry": "refusing to load: the file contains pickled objects",
    "object_meta": "refusing to load: the file contains pickled objects",
    "pickle_member": r"unexpected entry 'model/evil' \(not an array\)",
    "npy_object": r"not an .npz checkpoint \(a .npy array\)",
}


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload would create; the payload is checked to really create it."""
    path = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Payload(path))).close()
    assert path.exists(), "the test payload does not work"
    path.unlink()
    return path


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_checkpoint_is_refused_without_running_its_payload(name, marker, tmp_path):
    path = hostile_files(tmp_path, marker)[name]
    with pytest.raises(CheckpointError, match=REFUSAL[name]) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "predict", "train --resume"])
@pytest.mark.parametrize("name", HOSTILE)
def test_cli_refuses_hostile_checkpoint_with_exit_2(command, name, marker, tmp_path, capsys):
    path = str(hostile_files(tmp_path, marker)[name])
    argv = {
        "evaluate": ["evaluate", path],
        "predict": ["predict", path, str(tmp_path / "digit.png")],
        "train --resume": ["train", "--resume", path, "--out", str(tmp_path / "out")],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0], err
    assert not marker.exists() and not (tmp_path / "out").exists()


def numpy_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "load" and getattr(node.func.value, "id", "") in ("np", "numpy"):
                yield node


def test_no_pickle_anywhere_in_the_packages():
    sources = [p for pkg in (fastnet, kernels) for p in Path(pkg.__file__).parent.rglob("*.py")]
    loads = 0
    for path in sources:
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"} & {
                    n.split(".")[0] for n in names
                }, f"{path} imports a pickle module"
        for call in numpy_load_calls(tree):
            loads += 1
            kw = {k.arg: k.value for k in call.keywords}
            assert isinstance(kw.get("allow_pickle"), ast.Constant), f"{path}:{call.lineno}"
            assert kw["allow_pickle"].value is False, f"{path}:{call.lineno} allows pickle"
        assert "allow_pickle=True" not in text, path
    assert loads >= 1  # the checkpoint loader was found and checked


def test_mirrors_use_https_except_documented_ones():
    for name, mirrors in dl.MIRRORS.items():
        schemes = [urlparse(url).scheme for url in mirrors]
        assert schemes[0] == "https", f"{name}: the first mirror must be https"
        for url, scheme in zip(mirrors, schemes, strict=True):
            assert scheme == "https" or url in PLAIN_HTTP, f"{url}: not https, not documented"
    assert PLAIN_HTTP <= {url for mirrors in dl.MIRRORS.values() for url in mirrors}
    source = Path(dl.__file__).read_text()
    assert "only http" in source  # the reason stays written beside MIRRORS


def test_every_downloadable_file_has_a_checksum():
    assert dl.MD5.keys() == dl.MIRRORS.keys()
    for name, digests in dl.MD5.items():
        assert sorted(digests) == sorted(FILES), name
        assert all(len(d) == 32 and int(d, 16) >= 0 for d in digests.values()), name


def test_downloads_are_verified_and_named_by_fastnet(tmp_path, monkeypatch):
    """load_dataset passes the published md5 and its own file names, for every mirror."""
    calls = []

    def record(urls, dest, md5, **kwargs):
        calls.append((list(urls), Path(dest), md5))
        raise DataError("offline")

    monkeypatch.setattr(dl, "download_file", record)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # not a copy another test left
    with pytest.raises(DataError):
        load_dataset("fashion-mnist", tmp_path)
    (urls, dest, md5), *_ = calls
    assert urls == [base + FILES[0] for base in dl.MIRRORS["fashion-mnist"]]
    assert dest == tmp_path / "fashion-mnist" / FILES[0]
    assert md5 == dl.MD5["fashion-mnist"][FILES[0]]
