"""Optimizers with torch.optim's names, defaults, validation and formulas.

``SGD``, ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW`` follow torch.optim (single
parameter group): fed the same gradients, a fastnet optimizer and the torch optimizer
follow the same parameter trajectory. Each ``step()`` is one fused, in-place
``kernels.optim`` call per parameter; parameters whose ``grad`` is None are skipped, and
each parameter keeps its own state (and step count), as in torch. Large parameters use the
multi-threaded kernel variant (the size rule is ``kernels._jit.Kernel``'s).

Hyper-parameters are public attributes (``opt.lr``, ``opt.betas``, ...), validated in
``__init__`` and ``load_state_dict``; a learning-rate schedule may change ``opt.lr``
between steps.

``state_dict()`` is flat, numeric arrays only, so it round-trips through ``np.savez`` and
``np.load(..., allow_pickle=False)``; it always holds host arrays, and the state of
parameters on the GPU lives there too (``load_state_dict`` uploads it):

- ``"hyper.<name>"``: each hyper-parameter (0-d float or bool array; ``betas``: shape (2,));
- ``"state.<i>.<name>"``: state of the parameter at index ``i`` of ``params``, with torch's
  names (``momentum_buffer``, ``sum``, ``square_avg``, ``grad_avg``, ``exp_avg``,
  ``exp_avg_sq``, ``max_exp_avg_sq``: arrays shaped like the parameter; ``step``: 0-d
  int64). A parameter that was never updated has no entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any, ClassVar

import numpy as np

import kernels.optim as ko
from fastnet import backend
from fastnet.backend import is_device
from fastnet.module import Parameter

Hyper = dict[str, Any]


def _param_list(owner: str, params: Iterable[Parameter]) -> list[Parameter]:
    """Return ``params`` as a list of distinct Parameters, or raise."""
    if isinstance(params, Parameter) or not isinstance(params, Iterable):
        raise TypeError(
            f"{owner}: params must be an iterable of Parameter, got {type(params).__name__}"
        )
    params = list(params)
    if not params:
        raise ValueError(f"{owner}: got an empty parameter list")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{owner}: params[{i}] must be a Parameter, got {type(p).__name__}")
        array = isinstance(p.data, np.ndarray) or is_device(p.data)
        if not array or p.data.dtype not in (np.float32, np.float64):
            got = getattr(p.data, "dtype", type(p.data).__name__)
            raise TypeError(
                f"{owner}: params[{i}].data must be a float32 or float64 array, got {got}"
            )
    if len({id(p) for p in params}) != len(params):
        raise ValueError(f"{owner}: params contains the same Parameter more than once")
    return params


def _real(
    owner: str, name: str, value: Any, low: float | None = 0.0, high: float | None = None
) -> float:
    """Return ``value`` as a float in ``[low, high)`` (NaN never passes), or raise."""
    if low is None:
        expected = "a real number (not NaN)"
    else:
        expected = f"a number >= {low}" if high is None else f"a number in [{low}, {high})"
    ok = isinstance(value, Real) and not isinstance(value, bool) and value == value
    ok = ok and (low is None or low <= value) and (high is None or value < high)
    if not ok:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return float(value)


def _flag(owner: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool, or raise unless it is one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {name} must be a bool, got {value!r}")
    return bool(value)


class Optimizer:
    """Base class: the parameters, their per-parameter state and the hyper-parameters.

    Parameters
    ----------
    params : iterable of Parameter
        Non-empty, each Parameter once (e.g. ``model.parameters()``).
    lr : float
        Learning rate, ``>= 0``.
    **hyper
        The subclass's other hyper-parameters, set as attributes of the same name.

    Attributes
    ----------
    params : list of Parameter
    state : list of dict
        Per-parameter state, index-aligned with ``params``.
    """

    #: Names of the per-parameter state entries the optimizer may keep (torch's names).
    state_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Iterable[Parameter], lr: float, **hyper: Any) -> None:
        self.params = _param_list(type(self).__name__, params)
        self._hyper_names = ("lr", *hyper)
        self._set_hyper(self._check_hyper({"lr": lr, **hyper}))
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    # -- subclass hooks ------------------------------------------------------------------
    def _check_hyper(self, hyper: Hyper) -> Hyper:
        """Validate the hyper-parameters (torch's ranges); return them normalized."""
        return {"lr": _real(type(self).__name__, "lr", hyper["lr"])}

    def _required_state(self, hyper: Hyper) -> set[str]:
        """State names that an updated parameter must have under ``hyper``."""
        return set()

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        """Update ``p.data`` and ``state`` in place from ``p.grad`` (one kernel call)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    # -- public API ----------------------------------------------------------------------
    def step(self) -> None:
        """Update every parameter that has a gradient; those with ``grad is None`` are skipped.

        Raises
        ------
        ValueError
            A gradient that is not an array of the parameter's shape and dtype.
        """
        for i, (p, state) in enumerate(zip(self.params, self.state, strict=True)):
            if p.grad is not None:
                self._check_grad(i, p)
                self._update(p, state)

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to None (torch's default ``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the hyper-parameters and the per-parameter state (see module docs)."""
        out = {f"hyper.{n}": np.array(getattr(self, n)) for n in self._hyper_names}
        for i, state in enumerate(self.state):
            out.update(
                {f"state.{i}.{name}": np.array(backend.to_host(v)) for name, v in state.items()}
            )
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the hyper-parameters and the state by those of ``state``.

        Parameters
        ----------
        state : mapping of str to ndarray
            As returned by ``state_dict`` (e.g. an ``np.load`` result) of the same
            optimizer class over parameters of the same shapes; arrays are copied into
            each parameter's dtype. Nothing changes if any check fails.

        Raises
        ------
        KeyError
            Missing or unexpected keys (e.g. the state of another optimizer class).
        ValueError
            Invalid hyper-parameters, a state array whose shape
            differs from its parameter's, or a parameter's state lacking entries.
        """
        owner = f"{type(self).__name__}.load_state_dict"
        hyper_keys = {f"hyper.{n}" for n in self._hyper_names}
        missing = sorted(hyper_keys - set(state))
        unexpected = sorted(k for k in state if k not in hyper_keys and not k.startswith("state."))
        if missing or unexpected:
            raise KeyError(f"{owner}: missing keys {missing}, unexpected keys {unexpected}")
        hyper = self._check_hyper(
            {n: self._hyper_value(owner, n, state[f"hyper.{n}"]) for n in self._hyper_names}
        )
        states = self._param_states(owner, state, hyper)
        self._set_hyper(hyper)
        self.state = states

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyper_names)
        return f"{type(self).__name__}({args})"

    # -- helpers -------------------------------------------------------------------------
    def _set_hyper(self, hyper: Hyper) -> None:
        for name, value in hyper.items():
            setattr(self, name, value)

    def _check_grad(self, i: int, p: Parameter) -> None:
        g = p.grad
        array = isinstance(g, np.ndarray) or is_device(g)
        if not (array and g.shape == p.data.shape and g.dtype == p.data.dtype):
            got = f"shape {g.shape}, {g.dtype}" if array else type(g).__name__
            raise ValueError(
                f"{type(self).__name__}.step: params[{i}] ({p.name!r}) has shape "
                f"{p.data.shape}, {p.data.dtype}; its grad must match, got {got}"
            )

    @staticmethod
    def _buffer(state: dict[str, Any], name: str, p: Parameter, fill: float = 0.0) -> np.ndarray:
        """``state[name]``, created filled with ``fill`` on first use (on p's device)."""
        if name not in state:
            state[name] = backend.full_like(p.data, fill)
        return state[name]

    def _hyper_value(self, owner: str, name: str, value: np.ndarray) -> Any:
        """A hyper-parameter read back from its array (shape checked, type checked later)."""
        value = np.asarray(value)
        expected = np.shape(getattr(self, name))
        if value.shape != expected or value.dtype.kind not in "biuf":
            raise ValueError(
                f"{owner}: hyper.{name} must be a number array of shape {expected}, "
                f"got {value.dtype} of shape {value.shape}"
            )
        return value.item() if value.ndim == 0 else tuple(value.tolist())

    def _param_states(
        self, owner: str, state: Mapping[str, np.ndarray], hyper: Hyper
    ) -> list[dict[str, Any]]:
        """The ``state.<i>.<name>`` entries of ``state``, checked and copied."""
        states: list[dict[str, Any]] = [{} for _ in self.params]
        for key in (k for k in state if k.startswith("state.")):
            index, _, name = key[len("state.") :].partition(".")
            if not (index.isdigit() and int(index) < len(self.params)) or (
                name not in self.state_names
            ):
                raise KeyError(
                    f"{owner}: unexpected key {key!r} (expected state.<i>.<name> with "
                    f"i < {len(self.params)} and name in {self.state_names})"
                )
            states[int(index)][name] = self._state_value(owner, key, name, state[key], int(index))
        required = self._required_state(hyper)
        for i, s in enumerate(states):
            if s and not required <= s.keys():
                raise ValueError(f"{owner}: params[{i}] lacks state {sorted(required - s.keys())}")
        return states

    def _state_value(self, owner: str, key: str, name: str, value: np.ndarray, i: int) -> Any:
        value = np.asarray(value)
        if name == "step":
            if (
                value.shape != ()
                or value.dtype.kind not in "iuf"
                or not (value >= 0 and value == np.floor(value))
            ):
                raise ValueError(f"{owner}: {key} must be a 0-d integer >= 0, got {value!r}")
            return int(value)
        data = self.params[i].data
        if value.shape != data.shape or value.dtype.kind != "f":
            raise ValueError(
                f"{owner}: {key} must be a float array of shape {data.shape} (params[{i}]), "
                f"got {value.dtype} of shape {value.shape}"
            )
        return backend.to_same_device(np.array(value, dtype=data.dtype), data)


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

    state_names = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params, lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov,
        )  # fmt: skip

    def _check_hyper(self, hyper: Hyper) -> Hyper:
        o = type(self).__name__
        out = {
            **super()._check_hyper(hyper),
            "momentum": _real(o, "momentum", hyper["momentum"]),
            "dampening": _real(o, "dampening", hyper["dampening"], low=None),
            "weight_decay": _real(o, "weight_decay", hyper["weight_decay"]),
            "nesterov": _flag(o, "nesterov", hyper["nesterov"]),
        }
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(f"{o}: nesterov=True requires momentum > 0 and dampening == 0")
        return out

    def _required_state(self, hyper: Hyper) -> set[str]:
        return {"momentum_buffer"} if hyper["momentum"] != 0 else set()

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
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

    state_names = ("step", "sum")

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params, lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps,
        )  # fmt: skip

    def _check_hyper(self, hyper: Hyper) -> Hyper:
        o = type(self).__name__
        names = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")
        return {**super()._check_hyper(hyper), **{n: _real(o, n, hyper[n]) for n in names}}

    def _required_state(self, hyper: Hyper) -> set[str]:
        return {"step", "sum"}

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        step = state.get("step", 0) + 1
        state_sum = self._buffer(state, "sum", p, self.initial_accumulator_value)
        ko.adagrad_update(
            p.data, p.grad, state_sum, lr=self.lr, lr_decay=self.lr_decay,
            weight_decay=self.weight_decay, eps=self.eps, step=step,
        )  # fmt: skip
        state["step"] = step


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

    state_names = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params, lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered,
        )  # fmt: skip

    def _check_hyper(self, hyper: Hyper) -> Hyper:
        o = type(self).__name__
        names = ("alpha", "eps", "weight_decay", "momentum")
        out = {**super()._check_hyper(hyper), **{n: _real(o, n, hyper[n]) for n in names}}
        return {**out, "centered": _flag(o, "centered", hyper["centered"])}

    def _required_state(self, hyper: Hyper) -> set[str]:
        names = {"step", "square_avg"}
        names |= {"momentum_buffer"} if hyper["momentum"] > 0 else set()
        return names | ({"grad_avg"} if hyper["centered"] else set())

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        step = state.get("step", 0) + 1
        ko.rmsprop_update(
            p.data, p.grad, self._buffer(state, "square_avg", p),
            self._buffer(state, "momentum_buffer", p) if self.momentum > 0 else None,
            self._buffer(state, "grad_avg", p) if self.centered else None,
            lr=self.lr, alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
            momentum=self.momentum, centered=self.centered,
        )  # fmt: skip
        state["step"] = step


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

    state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        decoupled_weight_decay: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
        )  # fmt: skip

    def _check_hyper(self, hyper: Hyper) -> Hyper:
        o = type(self).__name__
        betas = hyper["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{o}: betas must be a pair of numbers in [0, 1), got {betas!r}")
        return {
            **super()._check_hyper(hyper),
            "betas": tuple(_real(o, f"betas[{k}]", b, high=1.0) for k, b in enumerate(betas)),
            "eps": _real(o, "eps", hyper["eps"]),
            "weight_decay": _real(o, "weight_decay", hyper["weight_decay"]),
            "amsgrad": _flag(o, "amsgrad", hyper["amsgrad"]),
            "decoupled_weight_decay": _flag(
                o, "decoupled_weight_decay", hyper["decoupled_weight_decay"]
            ),
        }

    def _required_state(self, hyper: Hyper) -> set[str]:
        names = {"step", "exp_avg", "exp_avg_sq"}
        return names | ({"max_exp_avg_sq"} if hyper["amsgrad"] else set())

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
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
        As in :class:`Adam`.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)

    def _check_hyper(self, hyper: Hyper) -> Hyper:
        if hyper["decoupled_weight_decay"] is not True:
            raise ValueError("AdamW: decoupled_weight_decay must be True")
        return super()._check_hyper(hyper)
