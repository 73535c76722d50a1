"""VGG training-step throughput through fastnet's CUDA kernels, next to PyTorch's on the
same GPU.

The step is composed by hand from ``kernels/<family>/cuda.py``: the book's VGG-style net
(six 3x3 convolutions with ReLU, three 2x2 max pools, Affine 1024->50, ReLU, Affine
50->10; dropout skipped), softmax cross-entropy, backward, then Adam on every parameter.
Data stays on the device; only the loss comes back each step. Before timing, one step's
loss and gradients are compared with PyTorch autograd on the same weights and batch
(TF32 off), when torch imports. Then both are timed, interleaved round by round. From the
repository root (``kernels`` importable: installed, or ``PYTHONPATH=.``)::

    PYTHONPATH=. python tests/gpu/bench_gpu.py [--batch 100] [--steps 30] [--rounds 3]

For a machine with a GPU (``tests/gpu/check.sh`` runs it); not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from numba import cuda

from kernels import _cuda
from kernels.activation import cuda as act
from kernels.affine import cuda as aff
from kernels.conv import cuda as conv
from kernels.optim import cuda as opt
from kernels.pool import cuda as pool
from kernels.softmax_ce import cuda as sce

# The book's DeepConvNet on (N, 1, 28, 28): ("conv", C, OC, padding), ("pool",), ("relu",),
# ("affine", D, M).
VGG = [
    ("conv", 1, 16, 1), ("relu",), ("conv", 16, 16, 1), ("relu",), ("pool",),
    ("conv", 16, 32, 1), ("relu",), ("conv", 32, 32, 2), ("relu",), ("pool",),
    ("conv", 32, 64, 1), ("relu",), ("conv", 64, 64, 1), ("relu",), ("pool",),
    ("affine", 1024, 50), ("relu",), ("affine", 50, 10),
]  # fmt: skip
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)


def init_params(spec, rng: np.random.Generator, dtype) -> list[list[np.ndarray]]:
    """He-initialised weights and small random biases: ``[w, b]`` per layer, [] if none."""
    params = []
    for layer in spec:
        if layer[0] == "conv":
            _, c, oc, _ = layer
            w = rng.standard_normal((oc, c, 3, 3)) * np.sqrt(2 / (9 * c))
            params.append([w.astype(dtype), (0.1 * rng.standard_normal(oc)).astype(dtype)])
        elif layer[0] == "affine":
            _, d, m = layer
            w = rng.standard_normal((d, m)) * np.sqrt(2 / d)
            params.append([w.astype(dtype), (0.1 * rng.standard_normal(m)).astype(dtype)])
        else:
            params.append([])
    return params


class CudaNet:
    """The net on the device: forward, backward and an Adam step through the CUDA kernels."""

    def __init__(self, spec, params: list[list[np.ndarray]]) -> None:
        self.spec = spec
        self.params = [[_cuda.to_device(p) for p in ps] for ps in params]
        self.moments = [[_cuda.zeros(p.shape, p.dtype) for p in ps for _ in "mv"] for ps in params]
        self.t = 0

    def forward(self, x):
        """Logits and the per-layer caches for :meth:`backward`."""
        caches = []
        for layer, ps in zip(self.spec, self.params, strict=True):
            kind = layer[0]
            if kind == "conv":
                caches.append(x)
                x = conv.conv2d_forward(x, *ps, 1, layer[3])
            elif kind == "affine":
                caches.append(x)
                x = aff.affine_forward(x, *ps)
            elif kind == "relu":
                x = act.relu_forward(x)
                caches.append(x)
            else:
                shape = x.shape
                x, indices = pool.maxpool2d_forward(x, 2)
                caches.append((shape, indices))
        return x, caches

    def backward(self, dy, caches) -> list[list]:
        """Gradients ``[dw, db]`` per layer ([] if none), from the logits' gradient."""
        grads = []
        for layer, ps, cache in zip(self.spec[::-1], self.params[::-1], caches[::-1], strict=True):
            kind = layer[0]
            if kind == "conv":
                dy, *g = conv.conv2d_backward(dy, cache, ps[0], 1, layer[3])
            elif kind == "affine":
                dy, *g = aff.affine_backward(dy, cache, ps[0])
            elif kind == "relu":
                dy, g = act.relu_backward(dy, cache), []
            else:
                shape, indices = cache
                dy, g = pool.maxpool2d_backward(dy, indices, shape), []
            grads.append(g)
        return grads[::-1]

    def loss_and_grads(self, x, labels) -> tuple[float, list[list]]:
        logits, caches = self.forward(x)
        loss, probs = sce.softmax_ce_forward(logits, labels)
        return loss, self.backward(sce.softmax_ce_backward(probs, labels), caches)

    def step(self, x, labels) -> float:
        """One training step (Adam); returns the loss."""
        loss, grads = self.loss_and_grads(x, labels)
        self.t += 1
        for ps, gs, ms in zip(self.params, grads, self.moments, strict=True):
            for i, (p, g) in enumerate(zip(ps, gs, strict=True)):
                opt.adam_update(p, g, ms[2 * i], ms[2 * i + 1], None, **ADAM, step=self.t)
        return loss


def torch_net(torch, spec, params, device):
    """The same net in torch with the same weights (Affine weights transposed)."""
    from torch import nn

    layers = []
    for layer, ps in zip(spec, params, strict=True):
        if layer[0] == "conv":
            _, c, oc, pad = layer
            m = nn.Conv2d(c, oc, 3, padding=pad)
            m.weight.data, m.bias.data = (torch.from_numpy(p.copy()) for p in ps)
        elif layer[0] == "affine":
            m = nn.Linear(*layer[1:])
            m.weight.data = torch.from_numpy(ps[0].T.copy())
            m.bias.data = torch.from_numpy(ps[1].copy())
            layers.append(nn.Flatten())
        else:
            m = nn.ReLU() if layer[0] == "relu" else nn.MaxPool2d(2)
        layers.append(m)
    return nn.Sequential(*layers).to(device)


def compare_with_torch(torch, spec, params, x, labels, device) -> float:
    """One step's loss and gradients, CUDA kernels vs torch autograd (TF32 off); returns
    the worst ``max|diff| / max|torch|`` over the loss and all gradients."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    net = CudaNet(spec, params)
    loss, grads = net.loss_and_grads(_cuda.to_device(x), _cuda.to_device(labels))
    tnet = torch_net(torch, spec, params, device)
    tloss = torch.nn.functional.cross_entropy(
        tnet(torch.from_numpy(x).to(device)), torch.from_numpy(labels).to(device)
    )
    tloss.backward()
    tgrads = [[m.weight.grad, m.bias.grad] for m in tnet if hasattr(m, "weight")]
    ours = [g for g in grads if g]
    worst = abs(loss - tloss.item()) / abs(tloss.item())
    kinds = [layer[0] for layer in spec if len(layer) > 1]
    for kind, (dw, db), (tdw, tdb) in zip(kinds, ours, tgrads, strict=True):
        tdw = tdw.T if kind == "affine" else tdw
        for got, expected in ((dw, tdw), (db, tdb)):
            expected = expected.detach().cpu().numpy()
            err = np.abs(got.copy_to_host() - expected).max() / np.abs(expected).max()
            worst = max(worst, err)
    print(
        f"check vs torch: loss {loss:.6f} vs {tloss.item():.6f}, worst relative error {worst:.2e}"
    )
    return worst


def timed(step, sync, steps: int) -> float:
    """Seconds per step over ``steps`` steps (after ``sync``)."""
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    params = init_params(VGG, rng, np.float32)
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch)
    name = cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else name
    print(f"device: {name}  batch {args.batch}  float32")
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not importable: CUDA kernels only")

    if torch is not None and torch.cuda.is_available():
        if compare_with_torch(torch, VGG, params, x, labels, "cuda") > 1e-3:
            print("FAILED: the CUDA step disagrees with torch")
            return 1

    net = CudaNet(VGG, params)
    xd, ld = _cuda.to_device(x), _cuda.to_device(labels)
    t0 = time.perf_counter()
    net.step(xd, ld)
    cuda.synchronize()
    print(f"first step (numba-cuda compiles): {time.perf_counter() - t0:.1f} s")
    candidates = {"fastnet cuda": (lambda: net.step(xd, ld), cuda.synchronize)}
    if torch is not None and torch.cuda.is_available():
        candidates.update(torch_candidates(torch, params, x, labels))
    times = {k: [] for k in candidates}
    for _ in range(args.rounds):
        for name, (step, sync) in candidates.items():
            step()
            times[name].append(timed(step, sync, args.steps))
    base = statistics.median(times["fastnet cuda"])
    for name, ts in times.items():
        t = statistics.median(ts)
        print(
            f"{name:<28} {t * 1e3:8.2f} ms/step  {args.batch / t:10,.0f} img/s  "
            f"{t / base:5.2f}x fastnet's time"
        )
    return 0


def torch_candidates(torch, params, x, labels) -> dict:
    """Timed torch training steps (Adam): fp32 (TF32 off) and torch's default (TF32 convs)."""
    out = {}
    tx, tt = torch.from_numpy(x).cuda(), torch.from_numpy(labels).cuda()
    for name, tf32 in (("torch fp32", False), ("torch default (tf32 conv)", True)):
        tnet = torch_net(torch, VGG, params, "cuda")
        topt = torch.optim.Adam(tnet.parameters(), lr=ADAM["lr"])

        def step(tnet=tnet, topt=topt, tf32=tf32):
            torch.backends.cudnn.allow_tf32 = tf32
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tnet(tx), tt)
            loss.backward()
            topt.step()
            return loss.item()  # one host copy per step, as fastnet's

        out[name] = (step, torch.cuda.synchronize)
    return out


if __name__ == "__main__":
    sys.exit(main())
