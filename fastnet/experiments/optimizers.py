"""``optimizers``: SGD, Momentum, Nesterov, AdaGrad, RMSprop and Adam on the book's 2-D
function ``f(x, y) = x^2 / 20 + y^2`` (trajectories from (-7, 2), book 6.1.7) and on MNIST
with the book's 5-layer MLP (loss curves, book 6.1.8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fastnet import optim
from fastnet.experiments._common import Log, losses_of, pyplot, save_figure, save_json, smooth
from fastnet.models import mlp
from fastnet.module import Parameter

# name -> (optimizer, learning rate on the 2-D function, learning rate on MNIST): the
# book's rates (RMSprop and Nesterov: the book's class defaults on MNIST, 0.1 on f).
OPTIMIZERS = {
    "SGD": (lambda p, lr: optim.SGD(p, lr=lr), 0.95, 0.01),
    "Momentum": (lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9), 0.1, 0.01),
    "Nesterov": (lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, nesterov=True), 0.1, 0.01),
    "AdaGrad": (lambda p, lr: optim.Adagrad(p, lr=lr), 1.5, 0.01),
    "RMSprop": (lambda p, lr: optim.RMSprop(p, lr=lr), 0.1, 0.01),
    "Adam": (lambda p, lr: optim.Adam(p, lr=lr), 0.3, 0.001),
}

F = TypeVar("F", float, np.ndarray)  # f takes numbers or arrays (a grid, for the contours)


def f(x: F, y: F) -> F:
    """The book's function ``x^2 / 20 + y^2``: 20 times steeper in y than in x."""
    return x**2 / 20 + y**2


def trajectory(name: str, steps: int = 30, start: tuple[float, float] = (-7.0, 2.0)) -> list:
    """The points ``(x, y)`` that optimizer ``name`` visits on :func:`f` (float64)."""
    make, lr, _ = OPTIMIZERS[name]
    p = Parameter(np.array(start, np.float64))
    opt = make([p], lr)
    points = [p.data.tolist()]
    for _ in range(steps):
        p.grad = np.array([p.data[0] / 10, 2 * p.data[1]])
        opt.step()
        points.append(p.data.tolist())
    return points


def run(
    out: Path,
    data: tuple | None,
    *,
    seed: int = 0,
    steps: int = 30,
    iterations: int = 2000,
    batch_size: int = 128,
    log: Log = print,
) -> dict:
    """Both parts; ``data`` is ``(x_train float32 (N, 1, 28, 28), t_train)``, or None to
    do the 2-D function only.

    Returns
    -------
    ``{"function": {name: {"points", "final_f"}}, "mnist": {name: {"losses", ...}}}``, also
    in ``out/optimizers.json``; figures ``optimizers-function.png``, ``optimizers-mnist.png``.
    """
    plt = pyplot()
    function = {}
    for name in OPTIMIZERS:
        points = trajectory(name, steps)
        function[name] = {"lr": OPTIMIZERS[name][1], "points": points, "final_f": f(*points[-1])}
        log(f"optimizers: {name:<8} on f, {steps} steps: f = {function[name]['final_f']:.3g}")
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), layout="constrained")
    gx, gy = np.meshgrid(np.linspace(-10, 10, 200), np.linspace(-5, 5, 200))
    for ax, (name, r) in zip(axes.flat, function.items(), strict=True):
        ax.contour(gx, gy, f(gx, gy), levels=np.geomspace(0.1, 30, 12), cmap="Greys")
        pts = np.array(r["points"])
        ax.plot(pts[:, 0], pts[:, 1], "o-", color="tab:red", ms=3, label=f"{steps} steps")
        ax.plot(0, 0, "+", color="black", ms=10, label="minimum")
        ax.set(title=f"{name} (lr {r['lr']})", xlabel="x", ylabel="y")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    save_figure(fig, out / "optimizers-function.png")
    result = {"seed": seed, "steps": steps, "function": function}
    if data is not None:
        x, t = data
        curves: dict[str, dict[str, Any]] = {}
        for k, (name, (make, _, lr)) in enumerate(OPTIMIZERS.items()):
            model = mlp(np.random.default_rng([seed, 0]))
            losses = losses_of(
                model,
                make(model.parameters(), lr),
                x,
                t,
                iterations=iterations,
                batch_size=batch_size,
                rng=np.random.default_rng([seed, 1, k]),
            )
            curves[name] = {"lr": lr, "losses": losses, "final_loss": float(np.mean(losses[-100:]))}
            log(
                f"optimizers: {name:<8} on MNIST, {iterations} iterations: mean loss of the "
                f"last 100 {curves[name]['final_loss']:.4f}"
            )
        result.update(iterations=iterations, batch_size=batch_size, mnist=curves)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, r in curves.items():
            ax.plot(smooth(r["losses"]), label=f"{name} (lr {r['lr']})")
        ax.set(xlabel="iteration", ylabel="training loss (moving average of 20)", ylim=(0, 1.5))
        ax.legend()
        save_figure(fig, out / "optimizers-mnist.png")
    save_json(result, out / "optimizers.json")
    return result
