"""Adam and AdamW (torch.optim.Adam, torch.optim.AdamW): one rule, one kernel."""

from __future__ import annotations

from typing import Any

import kernels.optim as ko
from fastnet.module import Parameter
from fastnet.optim.optimizer import (
    FLAG,
    NON_NEGATIVE,
    Fixed,
    Hyper,
    Optimizer,
    Pair,
    hyperparameter,
)


class Adam(Optimizer):
    """Adam, optionally AMSGrad or with decoupled weight decay (torch.optim.Adam).

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
        Learning rate, ``>= 0``.
    betas : pair of float, default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator, ``>= 0``.
    weight_decay : float, default 0
        ``>= 0``; an L2 penalty on the gradient unless ``decoupled_weight_decay``.
    amsgrad : bool, default False
        Normalize by the running maximum of the second moment estimate.
    decoupled_weight_decay : bool, default False (keyword only)
        Decay the parameter directly, ``param *= 1 - lr * weight_decay`` (AdamW).
    """

    lr: float = hyperparameter(default=1e-3, check=NON_NEGATIVE)
    betas: tuple[float, float] = hyperparameter(default=(0.9, 0.999), check=Pair(0.0, 1.0))
    eps: float = hyperparameter(default=1e-8, check=NON_NEGATIVE)
    weight_decay: float = hyperparameter(default=0, check=NON_NEGATIVE)
    amsgrad: bool = hyperparameter(default=False, check=FLAG)
    decoupled_weight_decay: bool = hyperparameter(default=False, check=FLAG, kw_only=True)

    state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def _required_state(self, hyper: Hyper) -> set[str]:
        names = {"step", "exp_avg", "exp_avg_sq"}
        return names | ({"max_exp_avg_sq"} if hyper["amsgrad"] else set())

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        assert p.grad is not None  # step() updates only the parameters with a gradient
        step = state.get("step", 0) + 1
        ko.adam_update(
            p.data, p.grad, self._buffer(state, "exp_avg", p),
            self._buffer(state, "exp_avg_sq", p),
            self._buffer(state, "max_exp_avg_sq", p) if self.amsgrad else None,
            lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
            weight_decay=self.weight_decay, step=step, amsgrad=self.amsgrad,
            decoupled_weight_decay=self.decoupled_weight_decay,
        )  # fmt: skip
        state["step"] = step


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): ``param *= 1 - lr * weight_decay``.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
    betas : pair of float, default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
    amsgrad : bool, default False
        As in :class:`Adam`; ``decoupled_weight_decay`` is always True.
    """

    weight_decay: float = hyperparameter(default=1e-2, check=NON_NEGATIVE)
    decoupled_weight_decay: bool = hyperparameter(default=True, check=Fixed(True), init=False)
