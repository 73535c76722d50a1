"""Train a fastnet model's twin in PyTorch: the same initial weights, batches and recipe.

Run with torch installed (``pip install torch==2.13.0``)::

    python tools/torch_calibration.py --model vgg-bn --dataset fashion-mnist --epochs 20

The torch net (``twin``, also used by ``asv_benchmarks/compare_torch.py``) gets fastnet's
initial weights (Affine weights transposed into Linear's layout) and fastnet's shuffled
batches (the same seeded generator as ``fastnet train``); Adam 1e-3 with the cosine
schedule per epoch, batch 100, as ``fastnet train``'s defaults. Only the dropout masks
differ. It prints the test accuracy after each epoch, to compare with a fastnet run's
``metrics.jsonl``.
"""

import argparse
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ModuleNotFoundError:  # the peer is optional: one line, not a traceback
    print("PyTorch is not installed: pip install torch==2.13.0", file=sys.stderr)
    raise SystemExit(2) from None

from fastnet import models
from fastnet.config import TrainConfig
from fastnet.data import iterate_batches, load_dataset
from fastnet.run import lr_at


def twin(net) -> nn.Sequential:
    """``net`` (conv, batch norm, ReLU, max pool, flatten, affine, dropout) in torch."""
    layers = []
    for m in net:
        kind = type(m).__name__
        if kind in ("Conv2d", "Affine"):
            w = torch.from_numpy(m.weight.data.copy())
            if kind == "Conv2d":
                oc, c, kh, kw = m.weight.data.shape
                layer = nn.Conv2d(c, oc, (kh, kw), stride=m.stride, padding=m.padding)
            else:
                layer, w = nn.Linear(*m.weight.data.shape), w.T.contiguous()
            layer.weight.data, layer.bias.data = w, torch.from_numpy(m.bias.data.copy())
        elif kind == "BatchNorm2d":
            layer = nn.BatchNorm2d(m.weight.data.shape[0])
        elif kind == "MaxPool2d":
            layer = nn.MaxPool2d(m.kernel_size, m.stride)
        elif kind == "Dropout":
            layer = nn.Dropout(m.p)
        else:
            layer = {"ReLU": nn.ReLU, "Flatten": nn.Flatten}[kind]()
        layers.append(layer)
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default=None, help="as fastnet train --data-dir")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs)
    tnet = twin(models.build(config.model, np.random.default_rng([config.seed, 0])))
    opt = torch.optim.Adam(tnet.parameters(), lr=config.lr)
    (x_train, t_train), (x_test, t_test) = load_dataset(config.dataset, args.data_dir)
    x_train, t_train = x_train[: args.limit], t_train[: args.limit]
    shuffle = np.random.default_rng([config.seed, 2])
    x_eval = torch.from_numpy(x_test.astype(np.float32).reshape(-1, 1, 28, 28) / 255)
    for epoch in range(config.epochs):
        for group in opt.param_groups:
            group["lr"] = lr_at(config, epoch)
        tnet.train()
        start = time.perf_counter()
        for x, t in iterate_batches(x_train, t_train, config.batch_size, shuffle=True, rng=shuffle):
            opt.zero_grad()
            F.cross_entropy(tnet(torch.from_numpy(x)), torch.from_numpy(t)).backward()
            opt.step()
        seconds = time.perf_counter() - start
        tnet.eval()
        with torch.no_grad():
            pred = torch.cat([tnet(x).argmax(1) for x in torch.split(x_eval, 500)])
        accuracy = float(np.mean(pred.numpy() == t_test))
        print(f"epoch {epoch + 1}/{config.epochs}  test acc {accuracy:.4f}  {seconds:.1f} s")


if __name__ == "__main__":
    main()
