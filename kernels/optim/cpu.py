"""Numba kernels for the optimizer updates: in place, on flat C-contiguous arrays.

Kernels take the raw hyper-parameters; the scalars derived from them (``1 - dampening``,
bias corrections) are computed in float64 first, as torch does in Python, then cast to the
parameter dtype so that float32 updates stay float32. ``step`` arrives as a float (as in
torch, where it is a float tensor). Elements are independent: no races in the parallel
loop. Unused state arrays (e.g. no momentum) arrive empty and are never touched.
"""

import numpy as np
from numba import prange

from kernels._jit import kernel


@kernel
def sgd_update(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    t = param.dtype.type
    lr_, mom, damp, wd = t(lr), t(momentum), t(1 - dampening), t(weight_decay)
    for i in prange(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + wd * param[i]
        if momentum != 0:
            b = g if first_step else buf[i] * mom + damp * g
            buf[i] = b
            g = g + mom * b if nesterov else b
        param[i] = param[i] - lr_ * g


@kernel
def adagrad_update(param, grad, state_sum, lr, lr_decay, weight_decay, eps, step):
    t = param.dtype.type
    clr_, wd, eps_ = t(lr / (1 + (step - 1) * lr_decay)), t(weight_decay), t(eps)
    for i in prange(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + wd * param[i]
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = param[i] - clr_ * g / (np.sqrt(s) + eps_)


@kernel
def rmsprop_update(
    param, grad, square_avg, buf, grad_avg, lr, alpha, eps, weight_decay, momentum, centered
):
    t = param.dtype.type
    lr_, a, oma, eps_ = t(lr), t(alpha), t(1 - alpha), t(eps)
    wd, mom = t(weight_decay), t(momentum)
    for i in prange(param.size):
        g = grad[i]
        if weight_decay != 0:
            g = g + wd * param[i]
        sq = square_avg[i] * a + oma * g * g
        square_avg[i] = sq
        if centered:
            ga = grad_avg[i] + oma * (g - grad_avg[i])
            grad_avg[i] = ga
            sq = sq - ga * ga
        avg = np.sqrt(sq) + eps_
        if momentum > 0:
            b = buf[i] * mom + g / avg
            buf[i] = b
            param[i] = param[i] - lr_ * b
        else:
            param[i] = param[i] - lr_ * g / avg


@kernel
def adam_update(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_sq,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    step,
    amsgrad,
    decoupled,
):
    t = param.dtype.type
    omb1, b2, omb2, eps_, wd = t(1 - beta1), t(beta2), t(1 - beta2), t(eps), t(weight_decay)
    decay, step_size = t(1 - lr * weight_decay), t(lr / (1 - beta1**step))
    bc2_sqrt = t((1 - beta2**step) ** 0.5)
    for i in prange(param.size):
        g = grad[i]
        if weight_decay != 0:
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
        param[i] = param[i] - step_size * m / (np.sqrt(v) / bc2_sqrt + eps_)
