"""RAdam: Adam with the variance of its adaptive step size rectified early in training."""
from __future__ import annotations

import numpy as np

from backprop.optim.adam import _check_adam_options
from backprop.optim.optimizer import (
    Optimizer,
    _check_unsupported,
    _ema_square_,
    _grad_for_update,
    _lerp_,
)

__all__ = ["RAdam", "radam"]


# The docstring's first lines mirror nadam()'s and adam()'s: each update function writes its
# whole algorithm out (DESIGN: the algorithm in the docstring).
def radam(params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, steps: list, *,
          lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.0,
          decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
    """One RAdam update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g, at its step t (1 for the first update):
            if maximize:                 g = -g
            if weight_decay:
                if decoupled:            p = p * (1 - lr * weight_decay)
                else:                    g = g + weight_decay * p
            m = m + (1 - beta1) * (g - m)             # first moment (a lerp)
            v = beta2 * v + (1 - beta2) * g * g       # second moment
            m_hat = m / (1 - beta1**t)
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
            if rho_t > 5:    # the variance of the adaptive rate is tractable
                r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                p = p - lr * m_hat * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r
            else:            # too early: plain momentum SGD
                p = p - lr * m_hat

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place, ``grads``
            only read.
        exp_avgs, exp_avg_sqs: the moment arrays (m, v), updated in place.
        steps: the step number t of each parameter, counting this update.

    Example::

        p, g = np.zeros(2), np.array([1.0, -1.0])
        radam([p], [g], [np.zeros(2)], [np.zeros(2)], [1], lr=0.1, beta1=0.9,
              beta2=0.999, eps=1e-8)
        # p == [-0.1, 0.1]: the first steps are SGD with momentum
    """
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay = float(eps), float(weight_decay)
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    for i, param in enumerate(params):
        t = steps[i]
        grad = _grad_for_update(grads[i], param, weight_decay, maximize,
                                decoupled=decoupled_weight_decay, lr=lr)
        exp_avg, exp_avg_sq = exp_avgs[i], exp_avg_sqs[i]
        scratch = np.empty_like(param)
        _lerp_(exp_avg, grad, 1.0 - beta1, scratch)
        _ema_square_(exp_avg_sq, grad, beta2, scratch)

        bias_correction1 = 1.0 - beta1 ** t
        bias_correction2 = 1.0 - beta2 ** t
        rho_t = rho_inf - 2 * t * (beta2 ** t) / bias_correction2
        # m_hat * lr [* adaptive * rect], multiplied left to right as PyTorch does
        np.divide(exp_avg, bias_correction1, out=scratch)
        scratch *= lr
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = np.sqrt(exp_avg_sq)
            adaptive += eps
            np.divide(bias_correction2 ** 0.5, adaptive, out=adaptive)
            scratch *= adaptive
            scratch *= rect
        param -= scratch


# The Args below repeat Adam's on purpose (as NAdam's, Adamax's): each optimiser's help
# stands alone, as in PyTorch's documentation.
class RAdam(Optimizer):
    """RAdam (Liu et al., 2020): Adam that starts as momentum SGD until its variance
    estimate is reliable, then rectifies the adaptive step.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment averages (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0), or, with
            ``decoupled_weight_decay=True``, decoupled decay as in AdamW.
        decoupled_weight_decay: shrink the weights directly (RAdamW) instead of adding
            the L2 penalty to the gradient.
        maximize: ascend the objective instead of descending it.
        foreach, capturable: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`radam`. State per parameter: ``"step"`` (an int), ``"exp_avg"``
    and ``"exp_avg_sq"``.

    Example::

        opt = backprop.optim.RAdam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        _check_unsupported("RAdam", differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_adam_options(options)  # the same checks, in the same order, as Adam's

    # mirrors Adamax._step_group and NAdam's: the plumbing is Optimizer's (_params_with_grad,
    # _state_arrays); the update function and the state it keeps differ.
    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        steps, exp_avgs, exp_avg_sqs = self._state_arrays(tensors, "exp_avg", "exp_avg_sq")
        beta1, beta2 = group["betas"]
        radam(params, grads, exp_avgs, exp_avg_sqs, steps, lr=group["lr"], beta1=beta1,
              beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
              decoupled_weight_decay=group["decoupled_weight_decay"],
              maximize=group["maximize"])
        for p in tensors:
            p._bump_version()
