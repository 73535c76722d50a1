"""Every model, exported to ONNX, in onnxruntime on the real MNIST test set: same outputs?

Run with onnx and onnxruntime installed (``pip install 'fastnet[onnx]' onnxruntime``)::

    python tools/onnx_accuracy.py DATA_DIR [--limit 6000] [--epochs 1]

For each model in ``fastnet models`` it trains a short run (``--limit`` training images,
``--epochs``; a trained net has confident, well-separated logits, unlike a fresh one), then
runs the 10,000 test images through four paths: the eager model (``model.eval()(x)``), the
inference plan, onnxruntime on the exported file, and the file loaded back into fastnet.
It prints each path's accuracy, how many predictions differ from the eager model's, and the
largest logit difference relative to the largest logit. Exit status 1 if an accuracy differs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder holding mnist/ (e.g. ~/.cache/fastnet)")
    parser.add_argument("--limit", type=int, default=6000, help="training images per model")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:  # a peer that is not installed: one line, not a traceback
        print(f"not installed: pip install {' '.join(missing)}", file=sys.stderr)
        return 2

    import onnxruntime as ort

    from fastnet import checkpoint, inference, models, onnx
    from fastnet.config import TrainConfig
    from fastnet.data import load_dataset
    from fastnet.run import fit

    _, (x_test, t_test) = load_dataset("mnist", args.data_dir)
    images = x_test.astype(np.float32) / 255
    same = True
    print(f"{len(t_test)} MNIST test images; each model trained on {args.limit} images for "
          f"{args.epochs} epoch(s)")  # fmt: skip
    print(
        "| model | eager acc | plan acc | onnxruntime acc | loaded acc | predictions "
        "differing (plan, ort, loaded) | max logit diff / max logit (plan, ort, loaded) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models.MODELS:
            out = Path(tmp) / name
            config = TrainConfig(model=name, data_dir=args.data_dir, limit=args.limit,
                                 epochs=args.epochs, seed=args.seed)  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):  # the training log
                fit(config, out, progress=False)
            model = models.build(name, np.random.default_rng(0))
            model.load_state_dict(checkpoint.load(out / "best.npz")[0])
            model.eval()
            onnx.export(model, out / "model.onnx")
            session = ort.InferenceSession(str(out / "model.onnx"),
                                           providers=["CPUExecutionProvider"])  # fmt: skip
            paths = {
                "eager": model,
                "plan": inference.compile(model),
                "ort": lambda x, s=session: s.run(None, {"input": x})[0],
                "loaded": onnx.load(out / "model.onnx"),
            }
            batches = [images[i : i + 500] for i in range(0, len(images), 500)]
            logits = {k: np.concatenate([f(b) for b in batches]) for k, f in paths.items()}
            preds = {k: v.argmax(axis=1) for k, v in logits.items()}
            acc = {k: float(np.mean(p == t_test)) for k, p in preds.items()}
            scale = float(np.abs(logits["eager"]).max())
            others = ("plan", "ort", "loaded")
            differ = ", ".join(str(int(np.sum(preds[k] != preds["eager"]))) for k in others)
            diff = ", ".join(f"{np.abs(logits[k] - logits['eager']).max() / scale:.1e}"
                             for k in others)  # fmt: skip
            print(f"| {name} | " + " | ".join(f"{acc[k]:.4f}" for k in paths)
                  + f" | {differ} | {diff} |")  # fmt: skip
            same &= len(set(acc.values())) == 1
    print("accuracies identical" if same else "ACCURACIES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
