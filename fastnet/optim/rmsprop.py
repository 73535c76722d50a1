"""RMSprop, optionally centered and with momentum (torch.optim.RMSprop)."""

from __future__ import annotations

from typing import Any

import kernels.optim as ko
from fastnet.module import Parameter
from fastnet.optim.optimizer import FLAG, NON_NEGATIVE, Hyper, Optimizer, hyperparameter


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (torch.optim.RMSprop).

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-2
        Learning rate, ``>= 0``.
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average, ``>= 0``.
    eps : float, default 1e-8
        Added to the denominator, ``>= 0``.
    weight_decay : float, default 0
        L2 penalty, ``>= 0``.
    momentum : float, default 0
        ``>= 0``.
    centered : bool, default False
        Normalize by the estimated variance of the gradient instead of its second moment.
    """

    lr: float = hyperparameter(default=1e-2, check=NON_NEGATIVE)
    alpha: float = hyperparameter(default=0.99, check=NON_NEGATIVE)
    eps: float = hyperparameter(default=1e-8, check=NON_NEGATIVE)
    weight_decay: float = hyperparameter(default=0, check=NON_NEGATIVE)
    momentum: float = hyperparameter(default=0, check=NON_NEGATIVE)
    centered: bool = hyperparameter(default=False, check=FLAG)

    state_names = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def _required_state(self, hyper: Hyper) -> set[str]:
        names = {"step", "square_avg"}
        names |= {"momentum_buffer"} if hyper["momentum"] > 0 else set()
        return names | ({"grad_avg"} if hyper["centered"] else set())

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        assert p.grad is not None  # step() updates only the parameters with a gradient
        step = state.get("step", 0) + 1
        ko.rmsprop_update(
            p.data, p.grad, self._buffer(state, "square_avg", p),
            self._buffer(state, "momentum_buffer", p) if self.momentum > 0 else None,
            self._buffer(state, "grad_avg", p) if self.centered else None,
            lr=self.lr, alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
            momentum=self.momentum, centered=self.centered,
        )  # fmt: skip
        state["step"] = step
