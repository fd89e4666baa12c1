"""Adagrad: per-weight step sizes that shrink with the sum of past squared gradients."""
from __future__ import annotations

import numpy as np

from backprop.optim.optimizer import (
    Optimizer,
    _check_nonnegative,
    _check_unsupported,
    _grad_for_update,
)
from backprop.tensor import _make

__all__ = ["Adagrad", "adagrad"]


def adagrad(params: list, grads: list, state_sums: list, steps: list, *, lr: float,
            weight_decay: float = 0.0, lr_decay: float = 0.0, eps: float = 1e-10,
            maximize: bool = False) -> None:
    """One Adagrad update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g, at its step t (1 for the first update):
            if maximize:        g = -g
            if weight_decay:    g = g + weight_decay * p
            clr = lr / (1 + (t - 1) * lr_decay)
            s = s + g * g
            p = p - clr * g / (sqrt(s) + eps)

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place.
        state_sums: the running sums of squared gradients, updated in place.
        steps: the step number t of each parameter, counting this update.

    Example::

        p, g, s = np.zeros(2), np.array([3.0, -3.0]), np.zeros(2)
        adagrad([p], [g], [s], [1], lr=0.1)    # p ≈ [-0.1, 0.1]
    """
    lr, weight_decay, lr_decay, eps = float(lr), float(weight_decay), float(lr_decay), float(eps)
    for i, param in enumerate(params):
        grad = _grad_for_update(grads[i], param, weight_decay, maximize)
        clr = lr / (1 + (steps[i] - 1) * lr_decay)
        state_sum = state_sums[i]
        squared = np.multiply(grad, grad)
        state_sum += squared
        std = np.sqrt(state_sum, out=squared)
        std += eps
        # p + (-clr) * g / std, evaluated in PyTorch's order
        update = np.multiply(grad, -clr, out=grad if grad is not grads[i] else None)
        update /= std
        param += update


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): large steps for rarely-updated weights, small for busy ones.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-2).
        lr_decay: learning rate decay per step (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        initial_accumulator_value: starting value of the sums of squares (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: ascend the objective instead of descending it.
        foreach, fused: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`adagrad`. As in PyTorch, the state (``"step"`` and ``"sum"``)
    is created when the optimizer is built, not at the first step.

    Example::

        opt = backprop.optim.Adagrad(model.parameters(), lr=0.01)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False, fused=None):
        _check_unsupported("Adagrad", differentiable)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _check_options(self, options: dict) -> None:
        _check_nonnegative(options, "lr", "learning rate")
        _check_nonnegative(options, "lr_decay", "lr_decay value")
        _check_nonnegative(options, "weight_decay", "weight_decay value")
        _check_nonnegative(options, "initial_accumulator_value",
                           "initial_accumulator_value value")
        _check_nonnegative(options, "eps", "epsilon value")

    def _init_state(self, p, group: dict) -> dict:
        state = self.state[p]
        state["step"] = 0
        state["sum"] = _make(np.full_like(p._data, float(group["initial_accumulator_value"])))
        return state

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        sums, steps = [], []
        for p in tensors:
            state = self.state[p]
            if not state:  # a group added after construction
                state = self._init_state(p, group)
            state["step"] += 1
            steps.append(state["step"])
            sums.append(state["sum"]._data)
        adagrad(params, grads, sums, steps, lr=group["lr"], weight_decay=group["weight_decay"],
                lr_decay=group["lr_decay"], eps=group["eps"], maximize=group["maximize"])
        for p in tensors:
            p._bump_version()
