"""Record a small PyTorch network's outputs and gradients for fastnet's port test.

Run once with torch installed (``pip install torch==2.13.0``):

    python tools/make_torch_layer_fixtures.py

It writes ``tests/fastnet/data/torch_layers.npz``, used by ``tests/fastnet/test_torch_port.py``
to check that the same weights give the same outputs and gradients in fastnet. torch is
never needed at test time.
"""

import sys
from pathlib import Path

import numpy as np

try:
    import torch
    from torch import nn
except ModuleNotFoundError:  # the peer is optional: one line, not a traceback
    print("PyTorch is not installed: pip install torch==2.13.0", file=sys.stderr)
    raise SystemExit(2) from None

OUT = Path(__file__).resolve().parents[1] / "tests" / "fastnet" / "data" / "torch_layers.npz"


def main() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 3, (2, 3), stride=(1, 2), padding=(1, 2)),
        nn.Sigmoid(),
        nn.AvgPool2d(2, stride=1, padding=1),
        nn.Flatten(),
        nn.Linear(3 * 5 * 4, 6),
        nn.BatchNorm1d(6, momentum=0.3),
        nn.ReLU(),
        nn.Linear(6, 5),
    ).double()
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((5, 2, 7, 9)), requires_grad=True)
    labels = torch.tensor(rng.integers(0, 5, 5))
    record = {f"init.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}
    net.train()
    logits = net(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    record.update(
        x=x.detach().numpy(),
        labels=labels.numpy(),
        train_logits=logits.detach().numpy(),
        loss=np.array(loss.item()),
        dx=x.grad.numpy(),
    )
    record.update({f"grad.{k}": p.grad.numpy() for k, p in net.named_parameters()})
    record.update({f"after.{k}": v.detach().numpy() for k, v in net.state_dict().items()})
    net.eval()
    with torch.no_grad():
        record["eval_logits"] = net(x).numpy()
    record = {k: v for k, v in record.items() if "num_batches_tracked" not in k}
    np.savez_compressed(OUT, **record)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, torch {torch.__version__})")


if __name__ == "__main__":
    main()
