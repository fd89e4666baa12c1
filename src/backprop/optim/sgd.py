"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

import numpy as np

from backprop.ops import _kernels
from backprop.optim.optimizer import (
    Optimizer,
    _check_nonnegative,
    _check_unsupported,
    _grad_for_update,
)
from backprop.tensor import _make

__all__ = ["SGD", "sgd"]


def sgd(params: list, grads: list, momentum_buffer_list: list, *, lr: float,
        weight_decay: float = 0.0, momentum: float = 0.0, dampening: float = 0.0,
        nesterov: bool = False, maximize: bool = False) -> None:
    """One SGD update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g:
            if maximize:         g = -g
            if weight_decay:     g = g + weight_decay * p
            if momentum:
                if first step:   b = g
                else:            b = momentum * b + (1 - dampening) * g
                if nesterov:     g = g + momentum * b
                else:            g = b
            p = p - lr * g

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place, ``grads``
            are only read.
        momentum_buffer_list: one buffer (array) per parameter, or None where none exists
            yet; a new buffer is stored into the list (used only when ``momentum != 0``).

    Example::

        p, g = np.ones(3), np.full(3, 0.5)
        bufs = [None]
        sgd([p], [g], bufs, lr=0.1, momentum=0.9)   # p == 0.95; bufs[0] == g
    """
    lr, weight_decay, momentum = float(lr), float(weight_decay), float(momentum)
    damp = 1.0 - float(dampening)
    if momentum != 0 and damp == 1.0 and not (weight_decay or nesterov or maximize):
        _heavy_ball(params, grads, momentum_buffer_list, lr, momentum)
        return
    for i, param in enumerate(params):
        d_p = _grad_for_update(grads[i], param, weight_decay, maximize)
        owned = d_p is not grads[i]  # a temporary of ours we may overwrite
        if momentum != 0:
            buf = momentum_buffer_list[i]
            if buf is None:
                buf = d_p if owned else d_p.copy()
                momentum_buffer_list[i] = buf
                owned = False
            else:
                buf *= momentum
                if damp == 1.0:
                    buf += d_p
                else:
                    scaled = np.multiply(d_p, damp, out=d_p if owned else None)
                    buf += scaled
            if nesterov:
                d_p = np.add(d_p, np.multiply(buf, momentum), out=d_p if owned else None)
                owned = True
            else:
                d_p = buf
                owned = False
        update = np.multiply(d_p, lr, out=d_p if owned else None)
        param -= update


def _heavy_ball(params: list, grads: list, bufs: list, lr: float, momentum: float) -> None:
    """The usual case of :func:`sgd` (momentum, nothing else) in fewer Python steps:
    b = momentum·b + g (b = g at first), p -= lr·b; the same operations in the same order
    as the general loop, so the same bits."""
    for i, param in enumerate(params):
        buf = bufs[i]
        if buf is None:
            buf = bufs[i] = grads[i].copy()
        elif _kernels.usable(param, buf, grads[i]):  # the same bits in one C pass
            _kernels.KERNELS.sgd_momentum(param, buf, grads[i], param.size, lr, momentum)
            continue
        else:
            buf *= momentum
            buf += grads[i]
        param -= np.multiply(buf, lr)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0: plain SGD).
        dampening: scales the new gradient's share of the momentum buffer by
            ``1 - dampening`` (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: ascend the objective instead of descending it.
        foreach, fused: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`sgd`; the state of a parameter is ``"momentum_buffer"`` once
    momentum has been used.

    Example::

        opt = backprop.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        _check_unsupported("SGD", differentiable)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_nonnegative(options, "lr", "learning rate")
        _check_nonnegative(options, "momentum", "momentum value")
        _check_nonnegative(options, "weight_decay", "weight_decay value")
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        momentum = group["momentum"]
        buffers = []
        if momentum != 0:
            for p in tensors:
                buf = self.state[p].get("momentum_buffer")
                buffers.append(None if buf is None else buf._data)
        sgd(params, grads, buffers, lr=group["lr"], weight_decay=group["weight_decay"],
            momentum=momentum, dampening=group["dampening"], nesterov=group["nesterov"],
            maximize=group["maximize"])
        for i, p in enumerate(tensors):
            if momentum != 0:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = _make(buffers[i])
            p._bump_version()
