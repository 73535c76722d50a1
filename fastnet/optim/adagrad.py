"""Adagrad (torch.optim.Adagrad)."""

from __future__ import annotations

from typing import Any

import kernels.optim as ko
from fastnet.module import Parameter
from fastnet.optim.optimizer import NON_NEGATIVE, Hyper, Optimizer, hyperparameter


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad).

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-2
        Learning rate, ``>= 0``.
    lr_decay : float, default 0
        ``>= 0``; the step ``t`` uses ``lr / (1 + (t - 1) * lr_decay)``.
    weight_decay : float, default 0
        L2 penalty, ``>= 0``.
    initial_accumulator_value : float, default 0
        Start of the sum of squared gradients, ``>= 0``.
    eps : float, default 1e-10
        Added to the denominator, ``>= 0``.
    """

    lr: float = hyperparameter(default=1e-2, check=NON_NEGATIVE)
    lr_decay: float = hyperparameter(default=0, check=NON_NEGATIVE)
    weight_decay: float = hyperparameter(default=0, check=NON_NEGATIVE)
    initial_accumulator_value: float = hyperparameter(default=0, check=NON_NEGATIVE)
    eps: float = hyperparameter(default=1e-10, check=NON_NEGATIVE)

    state_names = ("step", "sum")

    def _required_state(self, hyper: Hyper) -> set[str]:
        return {"step", "sum"}

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        assert p.grad is not None  # step() updates only the parameters with a gradient
        step = state.get("step", 0) + 1
        state_sum = self._buffer(state, "sum", p, self.initial_accumulator_value)
        ko.adagrad_update(
            p.data, p.grad, state_sum, lr=self.lr, lr_decay=self.lr_decay,
            weight_decay=self.weight_decay, eps=self.eps, step=step,
        )  # fmt: skip
        state["step"] = step
