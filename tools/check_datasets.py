"""Check full copies of MNIST and Fashion-MNIST, and what a short training run reaches on them.

    python tools/check_datasets.py ~/.cache/fastnet   # any folder with mnist/ and fashion-mnist/
    python tools/check_datasets.py /usr/share/datasets --datasets fashion-mnist --no-train

For each dataset in ``ROOT/<name>/`` it checks the shapes, dtypes and value ranges and the
published number of examples per class (the real-data checks that the unit tests cannot
make, since the repository keeps only a 1,000-image Fashion-MNIST excerpt), then trains
the book's SimpleConvNet for one epoch on the first 2,000 training images and checks its
accuracy on the full official test set against a floor. Prints one line per dataset,
``NAME: ok`` or ``NAME: FAILED: what`` (a dataset not found included), and exits 1 if a
check fails.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from fastnet.cli import main as fastnet
from fastnet.data import load_dataset
from fastnet.errors import FastnetError

# Published per-class counts (train, test); Fashion-MNIST is balanced.
LABEL_COUNTS = {
    "mnist": (
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ),
    "fashion-mnist": ([6000] * 10, [1000] * 10),
}
# `fastnet train --model simple --limit 2000 --epochs 1` must beat these test accuracies
# (measured with seed 0: MNIST 86.6%, Fashion-MNIST 77.2%).
ACCURACY_FLOOR = {"mnist": 0.80, "fashion-mnist": 0.70}


def check_data(name: str, root: Path) -> list[str]:
    """Problems found in the full dataset ``root/name`` (empty if none)."""
    (x, t), (xt, tt) = load_dataset(name, root, download=False, log=print)
    problems = []
    for split, images, labels, n, counts in [
        ("train", x, t, 60000, LABEL_COUNTS[name][0]),
        ("test", xt, tt, 10000, LABEL_COUNTS[name][1]),
    ]:
        if images.shape != (n, 1, 28, 28) or images.dtype != np.uint8:
            problems.append(f"{split} images: {images.shape} {images.dtype}")
        if images.min() != 0 or images.max() != 255:
            problems.append(f"{split} images: values {images.min()}..{images.max()}")
        if np.bincount(labels, minlength=10).tolist() != counts:
            problems.append(f"{split} labels: per class {np.bincount(labels).tolist()}")
    return problems


def check_accuracy(name: str, root: Path) -> list[str]:
    """Train SimpleConvNet for one epoch on 2,000 images; a problem if below the floor."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["train", "--dataset", name, "--data-dir", str(root), "--out", f"{tmp}/run"]
        if fastnet([*argv, "--model", "simple", "--limit", "2000", "--epochs", "1"]) != 0:
            return ["fastnet train failed"]
        accuracy = json.loads(Path(f"{tmp}/run/metrics.jsonl").read_text())["test_accuracy"]
    print(f"{name}: test accuracy {accuracy:.4f} (floor {ACCURACY_FLOOR[name]})")
    return [] if accuracy > ACCURACY_FLOOR[name] else [f"test accuracy {accuracy:.4f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder with mnist/ and fashion-mnist/")
    parser.add_argument(
        "--datasets", nargs="+", choices=list(LABEL_COUNTS), default=list(LABEL_COUNTS)
    )
    parser.add_argument("--no-train", action="store_true", help="check the data only")
    args = parser.parse_args()
    failed = False
    for name in args.datasets:
        try:
            problems = check_data(name, args.root)
        except FastnetError as e:  # missing or malformed files: one line, not a traceback
            problems = [str(e).removeprefix(f"{name}: ")]
        if not args.no_train and not problems:
            problems = check_accuracy(name, args.root)
        print(f"{name}: FAILED: {'; '.join(problems)}" if problems else f"{name}: ok")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
