"""NumPy references for the optimizer updates: torch.optim's single-tensor formulas.

Each function updates its arrays in place, exactly like the kernel of the same name
without ``_ref``, and follows torch's order of operations (``torch/optim/*.py``,
``_single_tensor_*``). Derived scalars (``1 - dampening``, bias corrections) are
computed in Python floats first, as torch does; NumPy then applies them in the arrays'
dtype, so float32 stays float32.
"""

import numpy as np


def sgd_update_ref(
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
) -> None:
    """SGD with optional momentum, dampening, Nesterov and L2 weight decay."""
    g = grad + weight_decay * param if weight_decay != 0 else grad.copy()
    if momentum != 0:
        if first_step:
            momentum_buf[...] = g
        else:
            momentum_buf[...] = momentum_buf * momentum + (1 - dampening) * g
        g = g + momentum * momentum_buf if nesterov else momentum_buf
    param -= lr * g


def adagrad_update_ref(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    lr: float,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float,
    step: int,
) -> None:
    """Adagrad: ``sum += g**2``, ``param -= clr * g / (sqrt(sum) + eps)``."""
    g = grad + weight_decay * param if weight_decay != 0 else grad
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    param -= clr * g / (np.sqrt(state_sum) + eps)


def rmsprop_update_ref(
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
) -> None:
    """RMSprop, optionally centered and with momentum."""
    g = grad + weight_decay * param if weight_decay != 0 else grad
    square_avg[...] = square_avg * alpha + (1 - alpha) * g * g
    if centered:
        grad_avg += (1 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buf[...] = momentum_buf * momentum + g / avg
        param -= lr * momentum_buf
    else:
        param -= lr * g / avg


def adam_update_ref(
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
) -> None:
    """Adam (L2 weight decay) or AdamW (decoupled weight decay), optionally AMSGrad."""
    g = grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            g = grad + weight_decay * param
    exp_avg += (1 - beta1) * (g - exp_avg)
    exp_avg_sq[...] = exp_avg_sq * beta2 + (1 - beta2) * g * g
    second = exp_avg_sq
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    step_size = lr / (1 - beta1**step)
    denom = np.sqrt(second) / (1 - beta2**step) ** 0.5 + eps
    param -= step_size * exp_avg / denom
