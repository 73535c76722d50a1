"""fastnet.data: IDX reader, dataset location, download (local HTTP server), batches."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    FASHION_SUBSET,
    FASHION_TRAIN,
    fashion_subset_arrays,
    idx_bytes,
)

from fastnet.cli import main
from fastnet.data import (
    FILES,
    cache_dir,
    dataset_dir,
    default_data_dir,
    download_dataset,
    download_file,
    iterate_batches,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    locate_dataset,
    random_shift,
    read_idx,
    sources,
)
from fastnet.data import download as dl
from fastnet.errors import DataError

# md5 of the bundled MNIST files, as listed by the README of the folder they were copied
# from: the test images and all labels are the official files, the training images not.
BUNDLED_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "train-images-idx3-ubyte.gz": "a0800b9e8c812b9e45b911451b965316",
}
# Published per-class counts of MNIST (train, test).
MNIST_LABEL_COUNTS = (
    [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
)
# The Fashion-MNIST subset: md5 of its two .gz files, and its per-class label counts,
# counted with NumPy on the full official test labels when the subset was cut.
FASHION_SUBSET_MD5 = {
    "t10k-images-idx3-ubyte.gz": "8e1f33d4ab7fade6d90b280b17f7f486",
    "t10k-labels-idx1-ubyte.gz": "210b34e2494daf787b849e7ac4431892",
}
FASHION_SUBSET_COUNTS = [107, 105, 111, 93, 115, 87, 97, 95, 95, 95]


# ---------------------------------------------------------------- helpers


def fake_arrays(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n, dtype=np.uint8)


def fake_files(rng: np.random.Generator, n_train: int = 7, n_test: int = 3) -> dict[str, bytes]:
    """The four gzipped IDX files of a tiny dataset, by standard file name."""
    arrays = [*fake_arrays(rng, n_train), *fake_arrays(rng, n_test)]
    return {f: gzip.compress(idx_bytes(a)) for f, a in zip(FILES, arrays, strict=True)}


def write_files(folder: Path, files: dict[str, bytes], raw: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if raw:
            name, data = name.removesuffix(".gz"), gzip.decompress(data)
        (folder / name).write_bytes(data)


def decoded(files: dict[str, bytes], name: str) -> np.ndarray:
    """Decode one fake file with NumPy alone (header length from its ndim byte)."""
    data = gzip.decompress(files[name])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- the bundled MNIST


def test_bundled_mnist_files_have_the_listed_md5():
    folder = Path(sources.__file__).resolve().parent / "mnist"  # inside the package
    assert sources.BUNDLED["mnist"] == folder
    assert sorted(os.listdir(folder)) == sorted(FILES)
    for name in FILES:
        assert md5((folder / name).read_bytes()) == BUNDLED_MD5[name], name
    official = [name for name in FILES if dl.MD5["mnist"][name] == BUNDLED_MD5[name]]
    assert sorted(official) == sorted(set(FILES) - {"train-images-idx3-ubyte.gz"})


def test_bundled_mnist_is_read_by_default_and_says_so():
    lines = []
    (x, t), (xt, tt) = load_dataset("mnist", download=False, log=lines.append)
    assert lines == [f"data: mnist from {sources.BUNDLED['mnist']} ({sources.BUNDLED_NOTE})"]
    for images, labels, n, counts in [(x, t, 60000, 0), (xt, tt, 10000, 1)]:
        assert images.shape == (n, 1, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert images.min() == 0 and images.max() == 255
        assert images.flags.writeable and images.flags.c_contiguous
        np.testing.assert_array_equal(np.bincount(labels), MNIST_LABEL_COUNTS[counts])


def test_bundled_mnist_batches_match_book_conversion():
    _, (xt, tt) = load_dataset("mnist", download=False)
    batches = list(iterate_batches(xt, tt, 4096, shuffle=False))
    assert [len(b[0]) for b in batches] == [4096, 4096, 1808]
    x0, t0 = batches[0]
    assert x0.dtype == np.float32 and x0.shape == (4096, 1, 28, 28)
    np.testing.assert_array_equal(x0, xt[:4096].astype(np.float32) / 255.0)
    np.testing.assert_array_equal(t0, tt[:4096])


def test_bundled_mnist_book_options():
    (x, t), (xt, tt) = load_mnist(download=False, flatten=True, one_hot_label=True)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert x.dtype == xt.dtype == np.float32
    assert 0.0 == x.min() and x.max() == 1.0
    assert t.shape == (60000, 10) and t.dtype == np.float32
    np.testing.assert_array_equal(t.sum(axis=1), 1)
    np.testing.assert_array_equal(np.bincount(tt.argmax(axis=1)), MNIST_LABEL_COUNTS[1])


def test_mnist_never_downloads(tmp_path, monkeypatch):
    """An empty --data-dir and an empty cache: MNIST still loads, from the bundled copy."""

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(dl, "download_file", no_network)
    located = locate_dataset("mnist", tmp_path / "empty")
    assert located.folder == sources.BUNDLED["mnist"]
    assert not (tmp_path / "empty").exists()


# ---------------------------------------------------------------- the real Fashion-MNIST subset


def test_fashion_subset_is_the_recorded_excerpt():
    assert sorted(os.listdir(FASHION_SUBSET)) == sorted([*FASHION_SUBSET_MD5, "NOTICE"])
    for name, digest in FASHION_SUBSET_MD5.items():
        assert md5((FASHION_SUBSET / name).read_bytes()) == digest, name
        assert (FASHION_SUBSET / name).stat().st_size < 500_000
    images, labels = fashion_subset_arrays()
    assert images.shape == (1000, 28, 28) and labels.shape == (1000,)
    np.testing.assert_array_equal(np.bincount(labels), FASHION_SUBSET_COUNTS)
    np.testing.assert_array_equal(read_idx(FASHION_SUBSET / "t10k-images-idx3-ubyte.gz"), images)


def test_fashion_mnist_from_the_debian_package_folder(fashion_root, monkeypatch):
    folder = fashion_root / "fashion-mnist"
    monkeypatch.setitem(sources.SYSTEM, "fashion-mnist", folder)
    lines = []
    (x, t), (xt, tt) = load_dataset("fashion-mnist", download=False, log=lines.append)
    assert lines == [f"data: fashion-mnist from {folder} ({sources.SYSTEM_NOTE})"]
    images, labels = fashion_subset_arrays()
    assert x.shape == (FASHION_TRAIN, 1, 28, 28) and xt.shape == (1000 - FASHION_TRAIN, 1, 28, 28)
    np.testing.assert_array_equal(x[:, 0], images[:FASHION_TRAIN])
    np.testing.assert_array_equal(tt, labels[FASHION_TRAIN:])


# ---------------------------------------------------------------- book options on a tiny dataset


@pytest.mark.parametrize(
    "loader,name", [(load_mnist, "mnist"), (load_fashion_mnist, "fashion-mnist")]
)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [True, False])
def test_book_options(tmp_path, rng, loader, name, normalize, flatten, one_hot_label):
    files = fake_files(rng)
    write_files(tmp_path / name, files)
    (x, t), (xt, tt) = loader(
        tmp_path, download=False, normalize=normalize, flatten=flatten, one_hot_label=one_hot_label
    )
    images = decoded(files, FILES[0]).reshape(7, 1, 28, 28)
    labels = decoded(files, FILES[1]).astype(np.int64)
    assert x.shape == ((7, 784) if flatten else (7, 1, 28, 28))
    assert xt.shape[0] == 3
    expected_x = images.astype(np.float32) / 255.0 if normalize else images
    np.testing.assert_array_equal(x, expected_x.reshape(x.shape))
    assert x.dtype == (np.float32 if normalize else np.uint8)
    expected_t = np.eye(10, dtype=np.float32)[labels] if one_hot_label else labels
    np.testing.assert_array_equal(t, expected_t)
    assert t.dtype == expected_t.dtype


# ---------------------------------------------------------------- location


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTNET_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_data_dir() == cache_dir() == tmp_path / "home" / ".cache" / "fastnet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_data_dir() == tmp_path / "home" / ".cache" / "fastnet"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == cache_dir() == tmp_path / "xdg" / "fastnet"
    monkeypatch.setenv("FASTNET_DATA_DIR", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    assert cache_dir() == tmp_path / "xdg" / "fastnet"
    assert dataset_dir("fashion-mnist") == tmp_path / "data" / "fashion-mnist"
    assert dataset_dir("mnist", tmp_path / "x") == tmp_path / "x" / "mnist"


# Where a complete fake copy is put ("given", "env", "cache", "system"), and what else
# holds a copy that must lose to it: the first complete folder in the lookup order wins.
LOOKUP = [
    ("mnist", "given", ["env", "cache"], "the folder given"),
    ("mnist", "env", ["cache"], "$FASTNET_DATA_DIR"),
    ("mnist", "cache", [], "the user cache"),
    ("fashion-mnist", "given", ["cache", "system"], "the folder given"),
    ("fashion-mnist", "cache", ["system"], "the user cache"),
    ("fashion-mnist", "system", [], sources.SYSTEM_NOTE),
]


@pytest.mark.parametrize("name,winner,losers,origin", LOOKUP)
def test_lookup_order(tmp_path, rng, monkeypatch, name, winner, losers, origin):
    roots = {where: tmp_path / where for where in ("given", "env", "cache", "system")}
    folders = {where: root / name for where, root in roots.items()}
    folders["cache"] = roots["cache"] / "fastnet" / name
    folders["system"] = roots["system"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(roots["cache"]))
    monkeypatch.setitem(sources.SYSTEM, "fashion-mnist", folders["system"])
    if winner == "env" or "env" in losers:
        monkeypatch.setenv("FASTNET_DATA_DIR", str(roots["env"]))
    files = fake_files(rng)
    write_files(folders[winner], files)
    for where in losers:
        write_files(folders[where], fake_files(rng, n_train=5))
    data_dir = roots["given"] if winner == "given" else None
    located = locate_dataset(name, data_dir, download=False)
    assert located.folder == folders[winner] and located.origin == origin
    assert located.paths == tuple(folders[winner] / f for f in FILES)
    (x, _), (_, tt) = load_dataset(name, data_dir, download=False)
    np.testing.assert_array_equal(x.reshape(-1), decoded(files, FILES[0]))
    np.testing.assert_array_equal(tt, decoded(files, FILES[3]))


def test_incomplete_folders_are_passed_over(tmp_path, rng, monkeypatch):
    """Three of four files in the folder given and in the cache: the bundled MNIST is read."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    files = fake_files(rng)
    del files[FILES[3]]
    write_files(tmp_path / "given" / "mnist", files)
    write_files(tmp_path / "xdg" / "fastnet" / "mnist", files)
    located = locate_dataset("mnist", tmp_path / "given", download=False)
    assert located.folder == sources.BUNDLED["mnist"]


def test_env_folder_and_raw_names(monkeypatch, tmp_path, rng):
    files = fake_files(rng)
    write_files(tmp_path / "mnist", files, raw=True)
    monkeypatch.setenv("FASTNET_DATA_DIR", str(tmp_path))
    (x, t), (xt, tt) = load_dataset("mnist", download=False)
    np.testing.assert_array_equal(x.reshape(-1), decoded(files, FILES[0]))
    np.testing.assert_array_equal(tt, decoded(files, FILES[3]))
    assert x.dtype == np.uint8 and t.dtype == np.int64 and x.shape == (7, 1, 28, 28)


def test_unknown_dataset_rejected(tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset 'cifar10'"):
        load_dataset("cifar10", tmp_path)


def test_missing_files_without_download(tmp_path, rng):
    files = fake_files(rng)
    del files[FILES[2]]
    write_files(tmp_path / "fashion-mnist", files)
    folder = re.escape(str(tmp_path / "fashion-mnist"))
    with pytest.raises(DataError, match=rf"missing t10k-images-idx3-ubyte.gz in {folder}") as err:
        load_dataset("fashion-mnist", tmp_path, download=False)
    message = str(err.value)
    assert all(f in message for f in FILES)
    assert str(cache_dir() / "fashion-mnist") in message  # where else it looked
    assert str(sources.SYSTEM["fashion-mnist"]) in message and "dataset-fashion-mnist" in message


# ---------------------------------------------------------------- malformed files


def truncated(data: bytes) -> bytes:
    return gzip.compress(gzip.decompress(data)[:-10])


def too_long(data: bytes) -> bytes:
    return gzip.compress(gzip.decompress(data) + b"\0")


def short_header(data: bytes) -> bytes:
    return gzip.compress(gzip.decompress(data)[:10])


def bad_magic(data: bytes) -> bytes:
    return gzip.compress(b"\x12\x34\x56\x78" + gzip.decompress(data)[4:])


def not_gzip(data: bytes) -> bytes:
    return gzip.decompress(data)


def cut_gzip(data: bytes) -> bytes:
    return data[: len(data) // 2]


def empty(data: bytes) -> bytes:
    return b""


def gzip_of_nothing(data: bytes) -> bytes:
    return gzip.compress(b"")


def labels_as_images(data: bytes) -> bytes:
    return gzip.compress(idx_bytes(np.zeros(7, np.uint8)))


def wrong_dims(data: bytes) -> bytes:
    return gzip.compress(idx_bytes(np.zeros((7, 27, 28), np.uint8)))


def fewer_labels(data: bytes) -> bytes:
    return gzip.compress(idx_bytes(np.zeros(6, np.uint8)))


def label_out_of_range(data: bytes) -> bytes:
    return gzip.compress(idx_bytes(np.full(7, 10, np.uint8)))


MALFORMED = [
    (0, truncated, r"truncated: header declares shape \(7, 28, 28\) of uint8 \(5488 data bytes\)"),
    (1, too_long, r"too long: .* \(7 data bytes\), but the file holds 8 data bytes"),
    (0, short_header, r"truncated header: 3 dims need 16 bytes, the file holds 10"),
    (2, bad_magic, r"wrong magic number 0x12345678 .*not an IDX file"),
    (0, labels_as_images, r"wrong magic number 0x00000801 .* expected 0x00000803 \(uint8, 3"),
    (0, wrong_dims, r"wrong dimensions: expected images \(N, 28, 28\), found \(7, 27, 28\)"),
    (1, fewer_labels, r"count mismatch: .* holds 7 images but .* holds 6 labels"),
    (1, label_out_of_range, r"label values must be in 0..9, found 10"),
    (3, not_gzip, r"named .gz but is not gzip-compressed"),
    (0, cut_gzip, r"truncated gzip stream"),
    (3, empty, r"file is empty"),
    (1, gzip_of_nothing, r"empty after gzip decompression"),
]


@pytest.mark.parametrize("which,corrupt,message", MALFORMED, ids=[m[1].__name__ for m in MALFORMED])
def test_malformed_file_named_in_error(tmp_path, rng, which, corrupt, message):
    files = fake_files(rng)
    name = FILES[which]
    files[name] = corrupt(files[name])
    write_files(tmp_path / "mnist", files)
    with pytest.raises(DataError, match=message) as err:
        load_dataset("mnist", tmp_path, download=False)
    assert str(tmp_path / "mnist" / name) in str(err.value)


@pytest.mark.parametrize("dtype", [np.uint8, ">i4", ">f8"])
@pytest.mark.parametrize("compress", [gzip.compress, bytes], ids=["gz", "raw"])
def test_read_idx_types_round_trip(tmp_path, rng, dtype, compress):
    array = (rng.standard_normal((2, 3, 5)) * 100).astype(dtype)
    path = tmp_path / "a.idx"
    path.write_bytes(compress(idx_bytes(array)))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere.gz: file not found"):
        read_idx(tmp_path / "nothere.gz")


# ---------------------------------------------------------------- downloads from 127.0.0.1


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, mode)``; mode "drop" cuts the body in half."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body, mode = self.server.routes.get(self.path, (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Disposition", 'attachment; filename="../escaped.gz"')
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "drop" else body)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def httpd():
    """A real HTTP server on 127.0.0.1 in a thread, shared by the download tests."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def server(httpd, monkeypatch):
    """The server's base URL and its (emptied) routes; proxies bypassed."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    httpd.routes.clear()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd.routes


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_download_success_ignores_server_file_name(server, tmp_path):
    base, routes = server
    body = os.urandom(200_000)
    routes["/m/f.gz"] = (body, "ok")
    folder = tmp_path / "d"
    folder.mkdir()
    assert (
        download_file([base + "/m/f.gz"], folder / "f.gz", md5(body), timeout=5) == folder / "f.gz"
    )
    assert (folder / "f.gz").read_bytes() == body
    assert listing(folder) == ["f.gz"] and listing(tmp_path) == ["d"]


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, routes = server
    routes["/m/f.gz"] = (b"tampered", "ok")
    with pytest.raises(DataError, match=r"could not download f.gz .*\n.*/m/f.gz: md5 mismatch"):
        download_file([base + "/m/f.gz"], tmp_path / "f.gz", md5(b"original"), timeout=5)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("first", ["404", "drop", "bad_md5", "refused"])
def test_download_falls_back_to_next_mirror(server, tmp_path, closed_port_url, first):
    base, routes = server
    body = os.urandom(100_000)
    routes["/b/f.gz"] = (body, "ok")
    if first == "drop":
        routes["/a/f.gz"] = (body, "drop")
    elif first == "bad_md5":
        routes["/a/f.gz"] = (body[1:], "ok")
    first_url = closed_port_url + "f.gz" if first == "refused" else base + "/a/f.gz"
    download_file([first_url, base + "/b/f.gz"], tmp_path / "f.gz", md5(body), timeout=5)
    assert (tmp_path / "f.gz").read_bytes() == body
    assert listing(tmp_path) == ["f.gz"]


def test_download_dropped_connection_leaves_nothing(server, tmp_path):
    base, routes = server
    body = os.urandom(100_000)
    routes["/m/f.gz"] = (body, "drop")
    with pytest.raises(DataError, match=r"connection closed after 50000 of 100000 bytes"):
        download_file([base + "/m/f.gz"], tmp_path / "f.gz", md5(body), timeout=5)
    assert listing(tmp_path) == []


def test_download_progress_bar(server, tmp_path, capsys):
    base, routes = server
    body = os.urandom(300_000)
    routes["/f.gz"] = (body, "ok")
    download_file([base + "/f.gz"], tmp_path / "f.gz", md5(body), progress=True, timeout=5)
    err = capsys.readouterr().err
    assert err.startswith("\r" + base + "/f.gz [") and "100% 0.3/0.3 MB" in err


def test_load_dataset_downloads_missing_files(server, tmp_path, rng, monkeypatch):
    base, routes = server
    files = fake_files(rng)
    write_files(tmp_path / "fashion-mnist", {FILES[1]: files[FILES[1]]})  # already present
    for name, data in files.items():
        routes["/second/" + name] = (data, "ok")
    monkeypatch.setitem(dl.MIRRORS, "fashion-mnist", (base + "/first/", base + "/second"))
    monkeypatch.setitem(dl.MD5, "fashion-mnist", {k: md5(v) for k, v in files.items()})
    (x, t), (xt, tt) = load_dataset("fashion-mnist", tmp_path, progress=False)
    assert listing(tmp_path / "fashion-mnist") == sorted(FILES)
    np.testing.assert_array_equal(xt.reshape(-1), decoded(files, FILES[2]))
    np.testing.assert_array_equal(t, decoded(files, FILES[1]))


def test_load_dataset_no_mirror_reachable(server, tmp_path, closed_port_url, monkeypatch):
    base, _ = server
    monkeypatch.setitem(dl.MIRRORS, "fashion-mnist", (closed_port_url, base + "/nothing/"))
    folder = tmp_path / "cache" / "fashion-mnist"
    with pytest.raises(
        DataError, match=r"(?s)No mirror worked \(offline\?\). Put these four"
    ) as err:
        load_dataset("fashion-mnist", tmp_path / "cache", progress=False)
    message = str(err.value)
    assert str(folder) in message and all(f in message for f in FILES)
    assert "HTTP Error 404" in message and closed_port_url in message
    assert "install Debian's dataset-fashion-mnist package" in message
    assert listing(tmp_path) == []  # the folders it created are removed


@pytest.fixture
def official(server, rng, monkeypatch) -> dict[str, bytes]:
    """Fake "official" Fashion-MNIST files served at the second mirror (the first is down),
    with their md5 as the published ones."""
    base, routes = server
    files = fake_files(rng)
    for name, data in files.items():
        routes["/second/" + name] = (data, "ok")
    monkeypatch.setitem(dl.MIRRORS, "fashion-mnist", (base + "/first/", base + "/second"))
    monkeypatch.setitem(dl.MD5, "fashion-mnist", {k: md5(v) for k, v in files.items()})
    return files


def test_download_dataset_keeps_verified_files_and_replaces_others(official, server, tmp_path):
    _, routes = server
    folder = tmp_path / "fashion-mnist"
    write_files(folder, {FILES[0]: official[FILES[0]], FILES[1]: b"not the official file"})
    del routes["/second/" + FILES[0]]  # kept: fetching it again would fail
    lines = []
    assert download_dataset("fashion-mnist", tmp_path, progress=False, log=lines.append) == folder
    assert listing(folder) == sorted(FILES)
    for name, data in official.items():
        assert (folder / name).read_bytes() == data, name
    assert [line.split()[2] for line in lines] == [
        "already",
        "downloaded",
        "downloaded",
        "downloaded",
    ]
    assert all(
        line.startswith(f"fashion-mnist: {f} ") for line, f in zip(lines, FILES, strict=True)
    )


def test_cli_download_into_the_cache(official, capsys):
    assert main(["download", "fashion-mnist"]) == 0
    folder = cache_dir() / "fashion-mnist"
    assert listing(folder) == sorted(FILES)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"fashion-mnist: the four official files are in {folder}"
    )
    located = locate_dataset("fashion-mnist", download=False)
    assert located.folder == folder and located.origin == "the user cache"


def test_cli_download_offline_exits_2_and_leaves_nothing(server, closed_port_url, tmp_path,
                                                         monkeypatch, capsys):  # fmt: skip
    monkeypatch.setitem(dl.MIRRORS, "mnist", (closed_port_url,))
    assert main(["download", "mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnet download: error: mnist: could not download ")
    assert "No mirror worked (offline?)" in err
    assert listing(tmp_path) == []  # no empty mnist/ left behind


def test_a_failed_download_keeps_the_folders_that_were_there(server, closed_port_url, tmp_path,
                                                              monkeypatch):  # fmt: skip
    """Only the folders it created go: not the root given, nor a dataset folder that was
    there, nor a verified file already in it."""
    monkeypatch.setitem(dl.MIRRORS, "mnist", (closed_port_url,))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "notes.txt").write_text("mine")
    with pytest.raises(DataError):
        download_dataset("mnist", tmp_path, progress=False)
    assert listing(tmp_path) == ["mnist"] and listing(tmp_path / "mnist") == ["notes.txt"]
    (tmp_path / "mnist" / "notes.txt").unlink()
    with pytest.raises(DataError):
        download_dataset("mnist", tmp_path / "new" / "root", progress=False)
    assert listing(tmp_path) == ["mnist"]  # new/root/mnist removed, the empty mnist/ kept


# ---------------------------------------------------------------- batches


@pytest.fixture
def indexed() -> tuple[np.ndarray, np.ndarray]:
    """Image i is filled with i, label i is i % 10: pairing and order are visible."""
    n = 23
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 2, 3))
    return images.copy(), np.arange(n, dtype=np.uint8) % 10


@pytest.mark.parametrize("drop_last,sizes", [(False, [5, 5, 5, 5, 3]), (True, [5, 5, 5, 5])])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_in_order(indexed, drop_last, sizes, dtype):
    images, labels = indexed
    before = images.copy(), labels.copy()
    batches = list(
        iterate_batches(images, labels, 5, shuffle=False, drop_last=drop_last, dtype=dtype)
    )
    assert [len(x) for x, _ in batches] == sizes
    x = np.concatenate([b[0] for b in batches])
    t = np.concatenate([b[1] for b in batches])
    assert x.dtype == dtype and x.shape == (sum(sizes), 1, 2, 3) and t.dtype == np.int64
    np.testing.assert_array_equal(x, images[: len(x)].astype(dtype) / dtype(255))
    np.testing.assert_array_equal(t, labels[: len(t)])
    np.testing.assert_array_equal(images, before[0])
    np.testing.assert_array_equal(labels, before[1])


def test_batches_shuffled_reproducible(indexed):
    images, labels = indexed

    def epoch(seed: int) -> tuple[np.ndarray, np.ndarray]:
        batches = iterate_batches(images, labels, 4, shuffle=True, rng=np.random.default_rng(seed))
        x, t = zip(*batches, strict=True)
        return np.concatenate(x)[:, 0, 0, 0], np.concatenate(t)

    x, t = epoch(1)
    ids = np.rint(x * 255).astype(np.int64)
    np.testing.assert_array_equal(np.sort(ids), np.arange(23))  # each example once
    assert not np.array_equal(ids, np.arange(23))
    np.testing.assert_array_equal(t, ids % 10)  # image and label stay paired
    np.testing.assert_array_equal(epoch(1)[0], x)
    assert not np.array_equal(epoch(2)[0], x)


BAD_BATCH_ARGS = [
    (dict(images=np.zeros((4, 1, 2, 2), np.float32)), DataError, r"images must be a uint8"),
    (dict(labels=np.zeros(4, np.float32)), DataError, r"labels must be an integer array \(N,\)"),
    (dict(labels=np.zeros(3, np.int64)), DataError, r"4 images but 3 labels"),
    (dict(batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    (dict(batch_size=2.0), ValueError, r"batch_size must be an int"),
    (dict(shuffle=True), ValueError, r"shuffle=True needs rng"),
    (dict(dtype=np.int32), ValueError, r"dtype must be float32 or float64, got int32"),
]


@pytest.mark.parametrize("change,error,message", BAD_BATCH_ARGS)
def test_batches_bad_arguments(change, error, message):
    args = dict(images=np.zeros((4, 1, 2, 2), np.uint8), labels=np.zeros(4, np.int64))
    args |= dict(batch_size=2, shuffle=False) | change
    with pytest.raises(error, match=message):
        iterate_batches(**args)


# ---------------------------------------------------------------- augmentation


def test_random_shift_translates_each_image_within_bounds(rng):
    x = rng.random((64, 1, 9, 11)).astype(np.float32) + 1  # no zeros inside an image
    y = random_shift(x, 2, np.random.default_rng(5))
    assert y.shape == x.shape and y.dtype == x.dtype
    for xi, yi in zip(x, y, strict=True):
        rows, cols = np.nonzero(yi[0])
        dy, dx = rows.min() or -(9 - 1 - rows.max()), cols.min() or -(11 - 1 - cols.max())
        assert abs(dy) <= 2 and abs(dx) <= 2
        src = xi[0, max(0, -dy) : 9 - max(0, dy), max(0, -dx) : 11 - max(0, dx)]
        np.testing.assert_array_equal(
            yi[0, max(0, dy) : 9 - max(0, -dy), max(0, dx) : 11 - max(0, -dx)], src
        )
    shifts = {(int(np.argmax(yi[0].any(axis=1))), int(np.argmax(yi[0].any(axis=0)))) for yi in y}
    assert len(shifts) > 5  # shifts vary per image
    np.testing.assert_array_equal(y, random_shift(x, 2, np.random.default_rng(5)))
    assert random_shift(x, 0, rng) is x
