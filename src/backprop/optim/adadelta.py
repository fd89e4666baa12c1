"""Adadelta: step sizes from the ratio of running RMS of past updates to that of gradients."""
from __future__ import annotations

import numpy as np

from backprop.optim.optimizer import (
    Optimizer,
    _check_nonnegative,
    _check_unsupported,
    _ema_square_,
    _grad_for_update,
)

__all__ = ["Adadelta", "adadelta"]


def adadelta(params: list, grads: list, square_avgs: list, acc_deltas: list, *, lr: float,
             rho: float, eps: float, weight_decay: float = 0.0, maximize: bool = False) -> None:
    """One Adadelta update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g:
            if maximize:        g = -g
            if weight_decay:    g = g + weight_decay * p
            v = rho * v + (1 - rho) * g * g                 # mean squared gradient
            delta = sqrt(u + eps) / sqrt(v + eps) * g       # u: mean squared update
            u = rho * u + (1 - rho) * delta * delta
            p = p - lr * delta

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place, ``grads``
            only read.
        square_avgs: the running averages v of the squared gradients, updated in place.
        acc_deltas: the running averages u of the squared updates, updated in place.

    Example::

        p, g = np.zeros(2), np.array([1.0, -1.0])
        adadelta([p], [g], [np.zeros(2)], [np.zeros(2)], lr=1.0, rho=0.9, eps=1e-6)
        # p ≈ [-0.00316, 0.00316]: sqrt(eps) / sqrt(0.1 + eps) per weight on the first step
    """
    lr, rho, eps, weight_decay = float(lr), float(rho), float(eps), float(weight_decay)
    for i, param in enumerate(params):
        grad = _grad_for_update(grads[i], param, weight_decay, maximize)
        square_avg, acc_delta = square_avgs[i], acc_deltas[i]
        scratch = np.empty_like(param)
        _ema_square_(square_avg, grad, rho, scratch)

        std = np.add(square_avg, eps)
        np.sqrt(std, out=std)
        delta = np.add(acc_delta, eps)
        np.sqrt(delta, out=delta)
        delta /= std
        delta *= grad

        _ema_square_(acc_delta, delta, rho, scratch)
        # p + (-lr) * delta, in PyTorch's order
        np.multiply(delta, -lr, out=scratch)
        param += scratch


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): an adaptive method whose steps carry the units of the weights.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: scales the update delta before it is applied (default 1.0).
        rho: decay rate of both running averages, in [0, 1] (default 0.9).
        eps: added inside both square roots for numerical stability (default 1e-6).
        weight_decay: L2 penalty added to the gradient (default 0).
        maximize: ascend the objective instead of descending it.
        foreach, capturable: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`adadelta`. State per parameter: ``"step"`` (an int),
    ``"square_avg"`` and ``"acc_delta"``.

    Example::

        opt = backprop.optim.Adadelta(model.parameters(), lr=1.0)
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        _check_unsupported("Adadelta", differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_nonnegative(options, "lr", "learning rate")
        _check_nonnegative(options, "rho", "rho value")
        if not options["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {options['rho']}")
        _check_nonnegative(options, "eps", "epsilon value")
        _check_nonnegative(options, "weight_decay", "weight_decay value")

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        _, square_avgs, acc_deltas = self._state_arrays(tensors, "square_avg", "acc_delta")
        adadelta(params, grads, square_avgs, acc_deltas, lr=group["lr"], rho=group["rho"],
                 eps=group["eps"], weight_decay=group["weight_decay"],
                 maximize=group["maximize"])
        for p in tensors:
            p._bump_version()
