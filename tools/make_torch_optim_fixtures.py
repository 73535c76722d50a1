"""Record torch.optim trajectories for tests/fastnet/test_optim.py (needs torch).

Feeds one seeded sequence of random gradients to each torch optimizer configuration
(two float64 parameters, ``STEPS`` steps; on a few steps one parameter has no gradient,
to check that it is skipped) and writes to ``tests/fastnet/data/torch_optim_trajectories.npz``:

- ``init.<i>``: initial value of parameter ``i``;
- ``grads.<i>``: (STEPS, *shape) gradients of parameter ``i``; ``present``: (STEPS, 2) bool,
  False where the gradient is None;
- ``configs``: JSON list of ``{"name", "optimizer", "kwargs"}``;
- ``<name>.traj.<i>``: (STEPS + 1, *shape) values of parameter ``i`` after 0..STEPS steps;
- ``<name>.state.<i>.<key>``: torch's final state of parameter ``i`` (``step`` as float);
- ``defaults``: JSON ``{optimizer: {argument: default}}`` from torch's signatures;
- ``torch_version``: JSON string.

Run from the repository root: ``python tools/make_torch_optim_fixtures.py``.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import numpy as np

try:
    import torch
except ModuleNotFoundError:  # the peer is optional: one line, not a traceback
    print("PyTorch is not installed: pip install torch==2.13.0", file=sys.stderr)
    raise SystemExit(2) from None

OUT = Path(__file__).resolve().parents[1] / "tests/fastnet/data/torch_optim_trajectories.npz"
STEPS = 20
SHAPES = [(3, 4), (5,)]
ABSENT = [(0, 1), (3, 1), (7, 0), (8, 1), (12, 1)]  # (step, parameter) without a gradient
# The arguments fastnet supports, per optimizer (torch's extras such as foreach are left out).
ARGUMENTS = {
    "SGD": ["lr", "momentum", "dampening", "weight_decay", "nesterov"],
    "Adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
    "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay"],
    "AdamW": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
}
CONFIGS = [
    ("sgd_default", "SGD", {}),
    ("sgd_momentum", "SGD", dict(lr=0.05, momentum=0.9)),
    ("sgd_nesterov_wd", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("sgd_dampening_wd", "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("adagrad_default", "Adagrad", {}),
    (
        "adagrad_decay_wd",
        "Adagrad",
        dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2, eps=1e-6),
    ),
    ("rmsprop_default", "RMSprop", {}),
    ("rmsprop_momentum_wd", "RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    (
        "rmsprop_centered_momentum",
        "RMSprop",
        dict(lr=0.01, alpha=0.3, centered=True, momentum=0.5, eps=1e-6),
    ),
    ("adam_default", "Adam", {}),
    (
        "adam_amsgrad_wd",
        "Adam",
        dict(lr=0.05, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.1, eps=1e-6),
    ),
    ("adam_decoupled", "Adam", dict(lr=0.05, weight_decay=0.2, decoupled_weight_decay=True)),
    ("adamw_default", "AdamW", {}),
    ("adamw_amsgrad", "AdamW", dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.3, amsgrad=True)),
]


def defaults() -> dict[str, dict]:
    """torch's default value of each argument fastnet supports."""
    out = {}
    for name, args in ARGUMENTS.items():
        sig = inspect.signature(getattr(torch.optim, name).__init__).parameters
        out[name] = {a: sig[a].default for a in args}
    return out


def run(optimizer: str, kwargs: dict, init: list, grads: list, present: np.ndarray) -> dict:
    """Replay the gradients through one torch optimizer; return its arrays."""
    params = [torch.tensor(x, requires_grad=True) for x in init]
    opt = getattr(torch.optim, optimizer)(params, **kwargs, foreach=False)
    traj = [[x.copy()] for x in init]
    for t in range(STEPS):
        for i, p in enumerate(params):
            p.grad = torch.tensor(grads[i][t]) if present[t, i] else None
        opt.step()
        for i, p in enumerate(params):
            traj[i].append(p.detach().numpy().copy())
    out = {f"traj.{i}": np.stack(x) for i, x in enumerate(traj)}
    for i, p in enumerate(params):
        for key, value in opt.state[p].items():
            out[f"state.{i}.{key}"] = value.detach().numpy().copy()
    return out


def main() -> None:
    rng = np.random.default_rng(2024)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [rng.standard_normal((STEPS, *s)) * rng.uniform(0.1, 3, (STEPS,) + (1,) * len(s))
             for s in SHAPES]  # fmt: skip
    present = np.ones((STEPS, len(SHAPES)), dtype=bool)
    for t, i in ABSENT:
        present[t, i] = False
    arrays = {f"init.{i}": x for i, x in enumerate(init)}
    arrays.update({f"grads.{i}": g for i, g in enumerate(grads)})
    arrays["present"] = present
    for name, optimizer, kwargs in CONFIGS:
        result = run(optimizer, kwargs, init, grads, present)
        arrays.update({f"{name}.{k}": v for k, v in result.items()})
    configs = [{"name": n, "optimizer": o, "kwargs": k} for n, o, k in CONFIGS]
    arrays["configs"] = np.array(json.dumps(configs))
    arrays["defaults"] = np.array(json.dumps(defaults()))
    arrays["torch_version"] = np.array(json.dumps(str(torch.__version__)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, torch {torch.__version__})")


if __name__ == "__main__":
    main()
