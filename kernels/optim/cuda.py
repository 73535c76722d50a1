"""numba-cuda kernels for the optimizer updates (torch.optim's single-tensor formulas), in
place on device arrays.

Same formulas and order of operations as ``kernels.optim.cpu``: the scalars derived from
the hyper-parameters (``1 - dampening``, bias corrections) are computed on the host in
float64, as torch does in Python, then passed in the parameter dtype, so float32 updates
stay float32. Elements are independent (one thread each, grid-stride). Unused state
(``None``) is replaced by a 0-size device array and never touched.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from kernels import _cuda


@cuda.jit
def _sgd(param, grad, buf, lr, momentum, damp, wd, use_wd, use_momentum, nesterov, first):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i]
        if use_wd:
            g = g + wd * param[i]
        if use_momentum:
            b = g if first else buf[i] * momentum + damp * g
            buf[i] = b
            g = g + momentum * b if nesterov else b
        param[i] = param[i] - lr * g


@cuda.jit
def _adagrad(param, grad, state_sum, clr, wd, use_wd, eps):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i]
        if use_wd:
            g = g + wd * param[i]
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = param[i] - clr * g / (math.sqrt(s) + eps)


@cuda.jit
def _rmsprop(param, grad, square_avg, buf, grad_avg, consts, use_wd, use_momentum, centered):
    lr, alpha, oma, eps, wd, momentum = consts
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i]
        if use_wd:
            g = g + wd * param[i]
        sq = square_avg[i] * alpha + oma * g * g
        square_avg[i] = sq
        if centered:
            ga = grad_avg[i] + oma * (g - grad_avg[i])
            grad_avg[i] = ga
            sq = sq - ga * ga
        avg = math.sqrt(sq) + eps
        if use_momentum:
            b = buf[i] * momentum + g / avg
            buf[i] = b
            param[i] = param[i] - lr * b
        else:
            param[i] = param[i] - lr * g / avg


@cuda.jit
def _adam(param, grad, exp_avg, exp_avg_sq, max_sq, consts, use_wd, amsgrad, decoupled):
    omb1, b2, omb2, eps, wd, decay, step_size, bc2_sqrt = consts
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i]
        if use_wd:
            if decoupled:
                param[i] = param[i] * decay
            else:
                g = g + wd * param[i]
        m = exp_avg[i] + omb1 * (g - exp_avg[i])
        exp_avg[i] = m
        v = exp_avg_sq[i] * b2 + omb2 * g * g
        exp_avg_sq[i] = v
        if amsgrad:
            v = max(max_sq[i], v)
            max_sq[i] = v
        param[i] = param[i] - step_size * m / (math.sqrt(v) / bc2_sqrt + eps)


def _flat(param, *states):
    """Flat views of ``param`` and its states (``None`` -> a 0-size array)."""
    empty = _cuda.empty(0, param.dtype)
    return [_cuda.flat(a) if a is not None else empty for a in (param, *states)]


def _consts(param, *values: float) -> tuple:
    """The scalars in the parameter dtype."""
    t = np.dtype(param.dtype).type
    return tuple(t(v) for v in values)


def sgd_update(
    param, grad, momentum_buf, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
    nesterov=False, first_step,
):  # fmt: skip
    """SGD step in place on the device (torch.optim.SGD); see ``kernels.optim.sgd_update``.

    Parameters
    ----------
    param : device array, float32 or float64, any shape, updated in place
    grad : device array, param's shape and dtype
    momentum_buf : device array like ``param`` (updated in place), or None without momentum
    lr, momentum, dampening, weight_decay : float
    nesterov, first_step : bool
    """
    p, g, buf = _flat(param, grad, momentum_buf)
    consts = _consts(param, lr, momentum, 1 - dampening, weight_decay)
    flags = (weight_decay != 0, momentum != 0, bool(nesterov), bool(first_step))
    _sgd[_cuda.grid(p.size)](p, g, buf, *consts, *flags)


def adagrad_update(param, grad, state_sum, *, lr, lr_decay=0.0, weight_decay=0.0, eps, step):
    """Adagrad step in place on the device (torch.optim.Adagrad); see
    ``kernels.optim.adagrad_update``.

    Parameters
    ----------
    param : device array, float32 or float64, any shape, updated in place
    grad : device array, param's shape and dtype
    state_sum : device array like ``param``, updated in place
    lr, lr_decay, weight_decay, eps : float
    step : int, this update's 1-based count
    """
    p, g, acc = _flat(param, grad, state_sum)
    clr, wd, eps_ = _consts(param, lr / (1 + (step - 1) * lr_decay), weight_decay, eps)
    _adagrad[_cuda.grid(p.size)](p, g, acc, clr, wd, weight_decay != 0, eps_)


def rmsprop_update(
    param, grad, square_avg, momentum_buf, grad_avg, *, lr, alpha, eps, weight_decay=0.0,
    momentum=0.0, centered=False,
):  # fmt: skip
    """RMSprop step in place on the device (torch.optim.RMSprop); see
    ``kernels.optim.rmsprop_update``.

    Parameters
    ----------
    param : device array, float32 or float64, any shape, updated in place
    grad : device array, param's shape and dtype
    square_avg : device array like ``param``, updated in place
    momentum_buf : device array like ``param`` (updated in place), or None without momentum
    grad_avg : device array like ``param`` (updated in place), or None unless centered
    lr, alpha, eps, weight_decay, momentum : float
    centered : bool
    """
    p, g, sq, buf, avg = _flat(param, grad, square_avg, momentum_buf, grad_avg)
    consts = _consts(param, lr, alpha, 1 - alpha, eps, weight_decay, momentum)
    flags = (weight_decay != 0, momentum > 0, bool(centered))
    _rmsprop[_cuda.grid(p.size)](p, g, sq, buf, avg, consts, *flags)


def adam_update(
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, lr, beta1, beta2, eps,
    weight_decay=0.0, step, amsgrad=False, decoupled_weight_decay=False,
):  # fmt: skip
    """Adam or AdamW step in place on the device (torch.optim.Adam / AdamW); see
    ``kernels.optim.adam_update``.

    Parameters
    ----------
    param : device array, float32 or float64, any shape, updated in place
    grad : device array, param's shape and dtype
    exp_avg, exp_avg_sq : device arrays like ``param``, updated in place
    max_exp_avg_sq : device array like ``param`` (updated in place), or None without amsgrad
    lr, beta1, beta2, eps, weight_decay : float
    step : int, this update's 1-based count
    amsgrad, decoupled_weight_decay : bool
    """
    p, g, m, v, vmax = _flat(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    step = float(step)
    consts = _consts(
        param, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, 1 - lr * weight_decay,
        lr / (1 - beta1**step), (1 - beta2**step) ** 0.5,
    )  # fmt: skip
    flags = (weight_decay != 0, bool(amsgrad), bool(decoupled_weight_decay))
    _adam[_cuda.grid(p.size)](p, g, m, v, vmax, consts, *flags)
