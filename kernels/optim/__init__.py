"""Optimizer updates, fused and in place: SGD, Adagrad, RMSprop, Adam and AdamW.

One call updates one parameter array and its state arrays in place, following
torch.optim's single-tensor formulas (``torch/optim/*.py``), so that the same gradients
give the same parameter trajectory as the torch optimizer. ``param``, ``grad`` and the
state arrays share one shape (any) and one float dtype; ``param`` and the state arrays
must be C-contiguous and writeable (they are updated in place), ``grad`` is only read.

Keyword arguments follow one rule: the hyper-parameters that switch a term off by
default (``momentum``, ``dampening``, ``weight_decay``, ``lr_decay``, ``nesterov``,
``centered``, ``amsgrad``, ``decoupled_weight_decay``) default to off; the others
(``lr``, ``alpha``, ``beta1``, ``beta2``, ``eps``) and the step count are required, so
that torch's defaults live in one place, ``fastnet.optim``. Hyper-parameter ranges are
validated there too; these wrappers validate the arrays and ``step``.
"""

from __future__ import annotations

import numpy as np

from kernels import _checks
from kernels.optim import cpu

ANY = "(...)"


def _grad(op: str, grad: np.ndarray, param: np.ndarray) -> np.ndarray:
    """Check ``grad`` against ``param`` and return it flat (copied if not contiguous)."""
    flat = _checks.float_array(op, "grad", grad, ANY).reshape(-1)  # (0-d comes back 1-d)
    _checks.same_dtype(op, param=param, grad=grad)
    _checks.shape_is(op, "grad", grad, param.shape, "param.shape")
    return flat


def _inplace(op: str, name: str, a: np.ndarray, param: np.ndarray | None = None) -> np.ndarray:
    """Check an array updated in place (against ``param`` if given) and return a flat view."""
    _checks.float_array(op, name, a, ANY)
    host = not _checks.is_device(a)  # float_array checked a device array's contiguity
    if host and not a.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (it is updated in place)")
    if host and not a.flags.writeable:
        raise ValueError(f"{op}: {name} must be writeable (it is updated in place)")
    if param is not None:
        _checks.same_dtype(op, param=param, **{name: a})
        _checks.shape_is(op, name, a, param.shape, "param.shape")
    return a.reshape(-1)


def _param_grad(op: str, param: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check ``param`` (updated in place) and ``grad`` against it; return both flat."""
    return _inplace(op, "param", param), _grad(op, grad, param)


def _optional(
    op: str, name: str, a: np.ndarray | None, param: np.ndarray, needed: bool, when: str
) -> np.ndarray:
    """Like ``_inplace`` for state that only some settings use; ``None`` -> empty array."""
    if a is not None:
        return _inplace(op, name, a, param)
    if needed:
        raise ValueError(f"{op}: {name} (shape param.shape = {param.shape}) is required {when}")
    return np.empty(0, param.dtype)


def _step(op: str, step: int) -> float:
    """Check the 1-based step count and return it as a float (torch keeps a float step)."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"{op}: step must be an int >= 1 (1 on the first update), got {step!r}")
    return float(step)


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buf: np.ndarray | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    first_step: bool,
    parallel: bool = True,
) -> None:
    """SGD step in place (torch.optim.SGD).

    ``g = grad + weight_decay * param``; with momentum, ``buf = g`` on the first step,
    else ``buf = momentum * buf + (1 - dampening) * g``, then ``g = g + momentum * buf``
    (Nesterov) or ``g = buf``; finally ``param -= lr * g``.

    Parameters
    ----------
    param : ndarray, float32 or float64, any shape
        Updated in place.
    grad : ndarray, same shape and dtype as ``param``
    momentum_buf : ndarray, same shape and dtype as ``param``, or None
        Updated in place; required when ``momentum != 0``, ignored otherwise.
    lr, momentum, dampening, weight_decay : float
    nesterov : bool
    first_step : bool
        True on the first update with momentum: the buffer is initialized to ``g``
        (its previous content is ignored).
    parallel : bool
        Use the multi-threaded variant.
    """
    op = "sgd_update"
    flat, g = _param_grad(op, param, grad)
    buf = _optional(op, "momentum_buf", momentum_buf, param, momentum != 0, "when momentum != 0")
    if impl := _checks.cuda_impl(op, "optim", param=param, grad=grad, momentum_buf=momentum_buf):
        return impl.sgd_update(
            param, grad, momentum_buf, lr=lr, momentum=momentum, dampening=dampening,
            weight_decay=weight_decay, nesterov=nesterov, first_step=first_step,
        )  # fmt: skip
    cpu.sgd_update(
        flat, g, buf, float(lr), float(momentum), float(dampening), float(weight_decay),
        bool(nesterov), bool(first_step), parallel=parallel,
    )  # fmt: skip


def adagrad_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    lr: float,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float,
    step: int,
    parallel: bool = True,
) -> None:
    """Adagrad step in place (torch.optim.Adagrad).

    ``g = grad + weight_decay * param``, ``clr = lr / (1 + (step - 1) * lr_decay)``,
    ``state_sum += g * g``, ``param -= clr * g / (sqrt(state_sum) + eps)``.

    Parameters
    ----------
    param : ndarray, float32 or float64, any shape
        Updated in place.
    grad : ndarray, same shape and dtype as ``param``
    state_sum : ndarray, same shape and dtype as ``param``
        Sum of squared gradients, updated in place (torch starts it at
        ``initial_accumulator_value``).
    lr, lr_decay, weight_decay, eps : float
    step : int
        This update's 1-based count for this parameter.
    parallel : bool
        Use the multi-threaded variant.
    """
    op = "adagrad_update"
    flat, g = _param_grad(op, param, grad)
    acc = _inplace(op, "state_sum", state_sum, param)
    t = _step(op, step)
    if impl := _checks.cuda_impl(op, "optim", param=param, grad=grad, state_sum=state_sum):
        return impl.adagrad_update(
            param, grad, state_sum, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            eps=eps, step=step,
        )  # fmt: skip
    cpu.adagrad_update(
        flat, g, acc, float(lr), float(lr_decay), float(weight_decay), float(eps),
        t, parallel=parallel,
    )  # fmt: skip


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    momentum_buf: np.ndarray | None,
    grad_avg: np.ndarray | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    parallel: bool = True,
) -> None:
    """RMSprop step in place (torch.optim.RMSprop).

    ``g = grad + weight_decay * param``, ``square_avg = alpha * square_avg + (1 - alpha) * g**2``;
    centered: ``grad_avg += (1 - alpha) * (g - grad_avg)`` and
    ``avg = sqrt(square_avg - grad_avg**2) + eps``, else ``avg = sqrt(square_avg) + eps``;
    with momentum ``buf = momentum * buf + g / avg``, ``param -= lr * buf``, else
    ``param -= lr * g / avg``.

    Parameters
    ----------
    param : ndarray, float32 or float64, any shape
        Updated in place.
    grad : ndarray, same shape and dtype as ``param``
    square_avg : ndarray, same shape and dtype as ``param``
        Updated in place (starts at zero).
    momentum_buf : ndarray like ``param``, or None
        Updated in place (starts at zero); required when ``momentum > 0``.
    grad_avg : ndarray like ``param``, or None
        Updated in place (starts at zero); required when ``centered``.
    lr, alpha, eps, weight_decay, momentum : float
    centered : bool
    parallel : bool
        Use the multi-threaded variant.
    """
    op = "rmsprop_update"
    flat, g = _param_grad(op, param, grad)
    sq = _inplace(op, "square_avg", square_avg, param)
    buf = _optional(op, "momentum_buf", momentum_buf, param, momentum > 0, "when momentum > 0")
    avg = _optional(op, "grad_avg", grad_avg, param, bool(centered), "when centered")
    state = dict(square_avg=square_avg, momentum_buf=momentum_buf, grad_avg=grad_avg)
    if impl := _checks.cuda_impl(op, "optim", param=param, grad=grad, **state):
        return impl.rmsprop_update(
            param, grad, *state.values(), lr=lr, alpha=alpha, eps=eps,
            weight_decay=weight_decay, momentum=momentum, centered=centered,
        )  # fmt: skip
    cpu.rmsprop_update(
        flat, g, sq, buf, avg, float(lr), float(alpha), float(eps), float(weight_decay),
        float(momentum), bool(centered), parallel=parallel,
    )  # fmt: skip


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    step: int,
    amsgrad: bool = False,
    decoupled_weight_decay: bool = False,
    parallel: bool = True,
) -> None:
    """Adam or AdamW step in place (torch.optim.Adam / torch.optim.AdamW).

    Weight decay is L2 (``g = grad + weight_decay * param``) or, decoupled (AdamW),
    ``param *= 1 - lr * weight_decay``. Then ``exp_avg += (1 - beta1) * (g - exp_avg)``,
    ``exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g**2``, with AMSGrad
    ``max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)`` used in its place, and
    ``param -= lr / (1 - beta1**step) * exp_avg / (sqrt(v) / sqrt(1 - beta2**step) + eps)``.

    Parameters
    ----------
    param : ndarray, float32 or float64, any shape
        Updated in place.
    grad : ndarray, same shape and dtype as ``param``
    exp_avg, exp_avg_sq : ndarray, same shape and dtype as ``param``
        First and second moment estimates, updated in place (start at zero).
    max_exp_avg_sq : ndarray like ``param``, or None
        Running maximum of ``exp_avg_sq``, updated in place (starts at zero); required
        when ``amsgrad``.
    lr, beta1, beta2, eps, weight_decay : float
    step : int
        This update's 1-based count for this parameter (bias corrections).
    amsgrad, decoupled_weight_decay : bool
    parallel : bool
        Use the multi-threaded variant.
    """
    op = "adam_update"
    flat, g = _param_grad(op, param, grad)
    m = _inplace(op, "exp_avg", exp_avg, param)
    v = _inplace(op, "exp_avg_sq", exp_avg_sq, param)
    vmax = _optional(op, "max_exp_avg_sq", max_exp_avg_sq, param, bool(amsgrad), "when amsgrad")
    t = _step(op, step)
    state = dict(exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, max_exp_avg_sq=max_exp_avg_sq)
    if impl := _checks.cuda_impl(op, "optim", param=param, grad=grad, **state):
        return impl.adam_update(
            param, grad, *state.values(), lr=lr, beta1=beta1, beta2=beta2, eps=eps,
            weight_decay=weight_decay, step=step, amsgrad=amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
        )  # fmt: skip
    cpu.adam_update(
        flat, g, m, v, vmax, float(lr), float(beta1), float(beta2), float(eps),
        float(weight_decay), t, bool(amsgrad), bool(decoupled_weight_decay),
        parallel=parallel,
    )  # fmt: skip
