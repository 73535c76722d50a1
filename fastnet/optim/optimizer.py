"""The ``Optimizer`` base: parameters, per-parameter state and declared hyper-parameters.

A subclass declares each hyper-parameter once, as an annotated class attribute whose value
is ``hyperparameter(default=..., check=...)``: its name, type, torch's default and valid
range (by keyword: type checkers read a field's ``default`` only by name, PEP 681). The
base turns the declarations into the constructor (a dataclass ``__init__``, so
``inspect.signature`` and ``help`` show torch's signature) and reads them to validate
(``__init__`` and ``load_state_dict``), to write ``state_dict`` and ``repr``. A subclass adds
``state_names``, ``_update`` (one kernel call), ``_required_state`` and, where
hyper-parameters constrain each other, an override of ``_check_hyper``.

Hyper-parameters are public attributes (``opt.lr``, ``opt.betas``, ...); a learning-rate
schedule may change ``opt.lr`` between steps.

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

import numbers
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from fastnet import backend
from fastnet.backend import is_device
from fastnet.module import Parameter

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
elif TYPE_CHECKING:  # type checkers of Python 3.10 code read it from typing_extensions
    from typing_extensions import dataclass_transform
else:  # Python 3.10: the decorator only informs static type checkers

    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls


Hyper = dict[str, Any]
Check = Callable[[str, str, Any], Any]


# -- the declarative spec of a hyper-parameter ---------------------------------------------
@dataclass(frozen=True)
class Range:
    """Check: a real number in ``[low, high)``; never NaN, never a bool.

    Parameters
    ----------
    low : float or None
        Inclusive lower bound; None: any real number.
    high : float or None
        Exclusive upper bound; None: unbounded.
    """

    low: float | None = 0.0
    high: float | None = None

    def __call__(self, owner: str, name: str, value: Any) -> float:
        """Return ``value`` as a float, or raise ValueError naming ``owner`` and ``name``."""
        if self.low is None:
            expected = "a real number (not NaN)"
        elif self.high is None:
            expected = f"a number >= {self.low}"
        else:
            expected = f"a number in [{self.low}, {self.high})"
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
        ok = ok and (self.low is None or self.low <= value)
        ok = ok and (self.high is None or value < self.high)
        if not ok:
            raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
        return float(value)


@dataclass(frozen=True)
class Pair:
    """Check: a tuple or list of two numbers, each in ``[low, high)`` (e.g. Adam's betas)."""

    low: float
    high: float

    def __call__(self, owner: str, name: str, value: Any) -> tuple[float, float]:
        """Return ``value`` as a tuple of two floats, or raise ValueError."""
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(
                f"{owner}: {name} must be a pair of numbers in [{self.low:g}, {self.high:g}), "
                f"got {value!r}"
            )
        item = Range(self.low, self.high)
        first, second = (item(owner, f"{name}[{k}]", v) for k, v in enumerate(value))
        return first, second


@dataclass(frozen=True)
class Flag:
    """Check: a bool (Python or NumPy); 0 and 1 are refused."""

    def __call__(self, owner: str, name: str, value: Any) -> bool:
        """Return ``value`` as a bool, or raise ValueError."""
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{owner}: {name} must be a bool, got {value!r}")
        return bool(value)


@dataclass(frozen=True)
class Fixed:
    """Check: exactly ``value`` (a hyper-parameter that a subclass pins, e.g. AdamW's)."""

    value: bool

    def __call__(self, owner: str, name: str, value: Any) -> bool:
        """Return ``value``, or raise ValueError unless it is the pinned value."""
        if value is not self.value:
            raise ValueError(f"{owner}: {name} must be {self.value!r}")
        return value


NON_NEGATIVE = Range(0.0)
REAL = Range(None)
FLAG = Flag()


def hyperparameter(default: Any, check: Check, *, kw_only: bool = False, init: bool = True) -> Any:
    """Declare a hyper-parameter of an ``Optimizer`` subclass.

    Parameters
    ----------
    default : object
        torch's default (``dataclasses.MISSING``: a required argument).
    check : callable
        ``check(owner, name, value)`` returns the value normalized or raises ValueError:
        ``NON_NEGATIVE``, ``REAL``, ``FLAG``, ``Range(low, high)``, ``Pair(low, high)``,
        ``Fixed(value)``.
    kw_only : bool, default False
        A keyword-only argument of the constructor.
    init : bool, default True
        False: not a constructor argument, always ``default`` (AdamW's
        ``decoupled_weight_decay``), but validated, saved and shown like the others.

    Returns
    -------
    dataclasses.Field
    """
    return field(default=default, init=init, kw_only=kw_only, metadata={"check": check})


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


@dataclass_transform(field_specifiers=(hyperparameter,))
@dataclass(eq=False, repr=False)
class Optimizer:
    """Base class: the parameters, their per-parameter state and the hyper-parameters.

    Each subclass is made a dataclass (identity equality, the ``repr`` below) from its
    ``hyperparameter`` declarations; its constructor takes ``params``, then the
    hyper-parameters in declaration order.

    Parameters
    ----------
    params : iterable of Parameter
        Non-empty, each Parameter once (e.g. ``model.parameters()``).
    lr : float
        Learning rate, ``>= 0``.

    Attributes
    ----------
    params : list of Parameter
    state : list of dict
        Per-parameter state, index-aligned with ``params``.
    """

    #: Names of the per-parameter state entries the optimizer may keep (torch's names).
    state_names: ClassVar[tuple[str, ...]] = ()

    params: Iterable[Parameter]
    lr: float = hyperparameter(default=MISSING, check=NON_NEGATIVE)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(eq=False, repr=False)(cls)

    def __post_init__(self) -> None:
        self.params = _param_list(type(self).__name__, self.params)
        self._set_hyper(self._check_hyper({n: getattr(self, n) for n in self._hyper_names()}))
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    # -- subclass hooks ------------------------------------------------------------------
    def _check_hyper(self, hyper: Hyper) -> Hyper:
        """Validate the hyper-parameters by their declared checks, in declaration order;
        return them normalized. A subclass adds checks that relate several of them."""
        owner = type(self).__name__
        checks = {f.name: f.metadata["check"] for f in self._hyper_fields()}
        return {name: check(owner, name, hyper[name]) for name, check in checks.items()}

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
        out = {f"hyper.{n}": np.array(getattr(self, n)) for n in self._hyper_names()}
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
        names = self._hyper_names()
        hyper_keys = {f"hyper.{n}" for n in names}
        missing = sorted(hyper_keys - set(state))
        unexpected = sorted(k for k in state if k not in hyper_keys and not k.startswith("state."))
        if missing or unexpected:
            raise KeyError(f"{owner}: missing keys {missing}, unexpected keys {unexpected}")
        hyper = self._check_hyper(
            {n: self._hyper_value(owner, n, state[f"hyper.{n}"]) for n in names}
        )
        states = self._param_states(owner, state, hyper)
        self._set_hyper(hyper)
        self.state = states

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyper_names())
        return f"{type(self).__name__}({args})"

    # -- helpers -------------------------------------------------------------------------
    def _hyper_fields(self) -> list[Field]:
        """The ``hyperparameter`` declarations of this class, in declaration order."""
        return [f for f in fields(self) if "check" in f.metadata]

    def _hyper_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._hyper_fields())

    def _set_hyper(self, hyper: Hyper) -> None:
        for name, value in hyper.items():
            setattr(self, name, value)

    def _check_grad(self, i: int, p: Parameter) -> None:
        g: Any = p.grad
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
        n = len(cast("list[Parameter]", self.params))  # a list since __post_init__
        states: list[dict[str, Any]] = [{} for _ in range(n)]
        for key in (k for k in state if k.startswith("state.")):
            index, _, name = key[len("state.") :].partition(".")
            if not (index.isdigit() and int(index) < n) or (name not in self.state_names):
                raise KeyError(
                    f"{owner}: unexpected key {key!r} (expected state.<i>.<name> with "
                    f"i < {n} and name in {self.state_names})"
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
        data = cast("list[Parameter]", self.params)[i].data
        if value.shape != data.shape or value.dtype.kind != "f":
            raise ValueError(
                f"{owner}: {key} must be a float array of shape {data.shape} (params[{i}]), "
                f"got {value.dtype} of shape {value.shape}"
            )
        return backend.to_same_device(np.array(value, dtype=data.dtype), data)
