"""Cut the small real Fashion-MNIST excerpt that the test suite keeps in the repository.

    python tools/make_fashion_mnist_subset.py /usr/share/datasets/fashion-mnist

reads ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` from the folder given
(the official files, or Debian's ``dataset-fashion-mnist`` copy: same IDX content) and
writes their first ``--count`` (1,000) images and labels, as gzipped IDX files with the
header's count changed, into ``tests/fastnet/data/fashion-mnist-t10k-1000/``. The gzip
stream is written with mtime 0, so the output is the same bytes on every run. Fashion-MNIST
is Copyright (c) 2017 Zalando SE, MIT licence (see fastnet/data/NOTICE).
"""

import argparse
import gzip
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fastnet" / "data" / "fashion-mnist-t10k-1000"
FILES = {"t10k-images-idx3-ubyte.gz": 28 * 28, "t10k-labels-idx1-ubyte.gz": 1}


def head(idx: bytes, count: int, item_bytes: int) -> bytes:
    """The first ``count`` items of an uncompressed IDX file, with its header's count set."""
    ndim = idx[3]
    header_bytes = 4 + 4 * ndim
    total = int.from_bytes(idx[4:8], "big")
    if count > total:
        raise SystemExit(f"asked for {count} items, the file holds {total}")
    header = idx[:4] + count.to_bytes(4, "big") + idx[8:header_bytes]
    return header + idx[header_bytes : header_bytes + count * item_bytes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder with the Fashion-MNIST test files")
    parser.add_argument("--count", type=int, default=1000, help="items to keep")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, item_bytes in FILES.items():
        idx = gzip.decompress((args.source / name).read_bytes())
        data = gzip.compress(head(idx, args.count, item_bytes), compresslevel=9, mtime=0)
        (OUT / name).write_bytes(data)
        print(f"wrote {OUT / name} ({len(data):,} bytes)")


if __name__ == "__main__":
    main()
