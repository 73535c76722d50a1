"""SGD, optionally with momentum or Nesterov momentum (torch.optim.SGD)."""

from __future__ import annotations

from typing import Any

import kernels.optim as ko
from fastnet import backend
from fastnet.module import Parameter
from fastnet.optim.optimizer import FLAG, NON_NEGATIVE, REAL, Hyper, Optimizer, hyperparameter


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum (torch.optim.SGD).

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
        Learning rate, ``>= 0``.
    momentum : float, default 0
        ``>= 0``; the momentum buffer starts as the first gradient.
    dampening : float, default 0
        Dampening of the momentum (any number).
    weight_decay : float, default 0
        L2 penalty, ``>= 0``.
    nesterov : bool, default False
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.
    """

    lr: float = hyperparameter(default=1e-3, check=NON_NEGATIVE)
    momentum: float = hyperparameter(default=0, check=NON_NEGATIVE)
    dampening: float = hyperparameter(default=0, check=REAL)
    weight_decay: float = hyperparameter(default=0, check=NON_NEGATIVE)
    nesterov: bool = hyperparameter(default=False, check=FLAG)

    state_names = ("momentum_buffer",)

    def _check_hyper(self, hyper: Hyper) -> Hyper:
        out = super()._check_hyper(hyper)
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(
                f"{type(self).__name__}: nesterov=True requires momentum > 0 and dampening == 0"
            )
        return out

    def _required_state(self, hyper: Hyper) -> set[str]:
        return {"momentum_buffer"} if hyper["momentum"] != 0 else set()

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        assert p.grad is not None  # step() updates only the parameters with a gradient
        buf = state.get("momentum_buffer")
        first_step = buf is None
        if first_step and self.momentum != 0:
            buf = backend.full_like(p.data, 0)
        ko.sgd_update(
            p.data, p.grad, buf, lr=self.lr, momentum=self.momentum, dampening=self.dampening,
            weight_decay=self.weight_decay, nesterov=self.nesterov, first_step=first_step,
        )  # fmt: skip
        if buf is not None:
            state["momentum_buffer"] = buf
