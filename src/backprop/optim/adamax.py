"""Adamax: Adam with the infinity norm in place of the root mean square."""
from __future__ import annotations

import numpy as np

from backprop.optim.adam import _check_adam_options
from backprop.optim.optimizer import Optimizer, _check_unsupported, _grad_for_update, _lerp_

__all__ = ["Adamax", "adamax"]


def adamax(params: list, grads: list, exp_avgs: list, exp_infs: list, steps: list, *,
           lr: float, beta1: float, beta2: float, eps: float, weight_decay: float = 0.0,
           maximize: bool = False) -> None:
    """One Adamax update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g, at its step t (1 for the first update):
            if maximize:        g = -g
            if weight_decay:    g = g + weight_decay * p
            m = m + (1 - beta1) * (g - m)              # first moment (a lerp)
            u = max(beta2 * u, |g| + eps)              # exponentially weighted inf-norm
            p = p - lr / (1 - beta1**t) * m / u

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place, ``grads``
            only read.
        exp_avgs, exp_infs: the first moments m and the norms u, updated in place.
        steps: the step number t of each parameter, counting this update.

    Example::

        p, g = np.zeros(2), np.array([3.0, -3.0])
        adamax([p], [g], [np.zeros(2)], [np.zeros(2)], [1], lr=0.1, beta1=0.9,
               beta2=0.999, eps=1e-8)
        # p ≈ [-0.1, 0.1]: the first step moves each weight by lr
    """
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay = float(eps), float(weight_decay)
    for i, param in enumerate(params):
        grad = _grad_for_update(grads[i], param, weight_decay, maximize)
        exp_avg, exp_inf = exp_avgs[i], exp_infs[i]
        scratch = np.empty_like(param)
        _lerp_(exp_avg, grad, 1.0 - beta1, scratch)
        exp_inf *= beta2
        np.abs(grad, out=scratch)
        scratch += eps
        np.maximum(exp_inf, scratch, out=exp_inf)

        clr = lr / (1.0 - beta1 ** steps[i])
        # p + (-clr) * m / u, evaluated in PyTorch's order
        np.multiply(exp_avg, -clr, out=scratch)
        scratch /= exp_inf
        param += scratch


# The Args below repeat Adam's on purpose (as NAdam's, RAdam's): each optimiser's help
# stands alone, as in PyTorch's documentation.
class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2015, section 7.1): Adam scaled by a running max of |g|.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 2e-3).
        betas: decay rates of the first moment and of the infinity norm
            (default (0.9, 0.999)).
        eps: added to |g| for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        maximize: ascend the objective instead of descending it.
        foreach, capturable: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`adamax`. State per parameter: ``"step"`` (an int),
    ``"exp_avg"`` and ``"exp_inf"``.

    Example::

        opt = backprop.optim.Adamax(model.parameters(), lr=2e-3)
    """

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False):
        _check_unsupported("Adamax", differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_adam_options(options)  # the same checks, in the same order, as Adam's

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        steps, exp_avgs, exp_infs = self._state_arrays(tensors, "exp_avg", "exp_inf")
        beta1, beta2 = group["betas"]
        adamax(params, grads, exp_avgs, exp_infs, steps, lr=group["lr"], beta1=beta1,
               beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
               maximize=group["maximize"])
        for p in tensors:
            p._bump_version()
