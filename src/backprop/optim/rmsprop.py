"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

import numpy as np

from backprop.optim.optimizer import (
    Optimizer,
    _check_nonnegative,
    _check_unsupported,
    _ema_square_,
    _grad_for_update,
    _lerp_,
)
from backprop.tensor import _make

__all__ = ["RMSprop", "rmsprop"]


def rmsprop(params: list, grads: list, square_avgs: list, grad_avgs: list,
            momentum_buffer_list: list, *, lr: float, alpha: float, eps: float,
            weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
            maximize: bool = False) -> None:
    """One RMSprop update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g:
            if maximize:        g = -g
            if weight_decay:    g = g + weight_decay * p
            v = alpha * v + (1 - alpha) * g * g            # mean square
            if centered:
                a = a + (1 - alpha) * (g - a)              # mean gradient (a lerp)
                denom = sqrt(v - a * a) + eps
            else:
                denom = sqrt(v) + eps
            if momentum > 0:
                b = momentum * b + g / denom
                p = p - lr * b
            else:
                p = p - lr * g / denom

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place.
        square_avgs: the mean squares v, updated in place.
        grad_avgs: the mean gradients a (used when ``centered``).
        momentum_buffer_list: the momentum buffers b (used when ``momentum > 0``).

    Example::

        p, g, v = np.zeros(2), np.array([2.0, -2.0]), np.zeros(2)
        rmsprop([p], [g], [v], [], [], lr=0.01, alpha=0.99, eps=1e-8)
        # p ≈ [-0.1, 0.1]: the first step is lr / sqrt(1 - alpha) in size
    """
    lr, alpha, eps = float(lr), float(alpha), float(eps)
    weight_decay, momentum = float(weight_decay), float(momentum)
    for i, param in enumerate(params):
        grad = _grad_for_update(grads[i], param, weight_decay, maximize)
        square_avg = square_avgs[i]
        scratch = np.empty_like(param)
        _ema_square_(square_avg, grad, alpha, scratch)

        avg = np.empty_like(param)
        if centered:
            grad_avg = grad_avgs[i]
            _lerp_(grad_avg, grad, 1.0 - alpha, scratch)
            np.multiply(grad_avg, grad_avg, out=avg)
            np.subtract(square_avg, avg, out=avg)
            np.sqrt(avg, out=avg)
        else:
            np.sqrt(square_avg, out=avg)
        avg += eps

        if momentum > 0:
            buf = momentum_buffer_list[i]
            buf *= momentum
            np.divide(grad, avg, out=scratch)
            buf += scratch
            np.multiply(buf, lr, out=scratch)
            param -= scratch
        else:
            # p + (-lr) * g / denom, evaluated in PyTorch's order
            np.multiply(grad, -lr, out=scratch)
            scratch /= avg
            param += scratch


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), optionally centered and with momentum.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the mean square (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by the variance (mean square minus squared mean) instead of
            the mean square.
        maximize: ascend the objective instead of descending it.
        foreach, capturable: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`rmsprop`. State per parameter: ``"step"``, ``"square_avg"``,
    ``"momentum_buffer"`` (momentum > 0) and ``"grad_avg"`` (centered).

    Example::

        opt = backprop.optim.RMSprop(model.parameters(), lr=0.01, momentum=0.9)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        _check_unsupported("RMSprop", differentiable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_nonnegative(options, "lr", "learning rate")
        _check_nonnegative(options, "eps", "epsilon value")
        _check_nonnegative(options, "momentum", "momentum value")
        _check_nonnegative(options, "weight_decay", "weight_decay value")
        _check_nonnegative(options, "alpha", "alpha value")

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        momentum, centered = group["momentum"], group["centered"]
        square_avgs, grad_avgs, buffers = [], [], []
        for p in tensors:
            state = self._lazy_state(p, "square_avg")
            # Buffers for options switched on after the first step start from zero too.
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = _make(np.zeros_like(p._data))
            if centered and "grad_avg" not in state:
                state["grad_avg"] = _make(np.zeros_like(p._data))
            square_avgs.append(state["square_avg"]._data)
            if momentum > 0:
                buffers.append(state["momentum_buffer"]._data)
            if centered:
                grad_avgs.append(state["grad_avg"]._data)
        rmsprop(params, grads, square_avgs, grad_avgs, buffers, lr=group["lr"],
                alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
                momentum=momentum, centered=centered, maximize=group["maximize"])
        for p in tensors:
            p._bump_version()
