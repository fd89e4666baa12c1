"""NAdam: Adam with Nesterov momentum and a warming-up momentum schedule."""
from __future__ import annotations

import numpy as np

from backprop.optim.adam import _check_adam_options
from backprop.optim.optimizer import (
    Optimizer,
    _check_nonnegative,
    _check_unsupported,
    _ema_square_,
    _grad_for_update,
    _lerp_,
)
from backprop.tensor import Tensor

__all__ = ["NAdam", "nadam"]


def nadam(params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, mu_products: list,
          steps: list, *, lr: float, beta1: float, beta2: float, eps: float,
          weight_decay: float = 0.0, momentum_decay: float = 4e-3,
          decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
    """One NAdam update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g, at its step t (1 for the first update):
            if maximize:                 g = -g
            if weight_decay:
                if decoupled:            p = p * (1 - lr * weight_decay)
                else:                    g = g + weight_decay * p
            mu      = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
            mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
            P = P * mu                                # product of all mu so far
            m = m + (1 - beta1) * (g - m)             # first moment (a lerp)
            v = beta2 * v + (1 - beta2) * g * g       # second moment
            denom = sqrt(v / (1 - beta2**t)) + eps
            p = p - lr * (1 - mu) / (1 - P) * g / denom
            p = p - lr * mu_next / (1 - P * mu_next) * m / denom

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place, ``grads``
            only read.
        exp_avgs, exp_avg_sqs: the moment arrays (m, v), updated in place.
        mu_products: the product P of each parameter (a float, 1.0 before the first
            update); each entry of the list is replaced by its new value.
        steps: the step number t of each parameter, counting this update.

    Example::

        p, g, mu_products = np.zeros(2), np.array([1.0, -1.0]), [1.0]
        nadam([p], [g], [np.zeros(2)], [np.zeros(2)], mu_products, [1], lr=0.1,
              beta1=0.9, beta2=0.999, eps=1e-8)
        # p ≈ [-0.1056, 0.1056]: lr * g, plus the look-ahead momentum term;
        # mu_products[0] ≈ 0.4501
    """
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay, momentum_decay = float(eps), float(weight_decay), float(momentum_decay)
    for i, param in enumerate(params):
        t = steps[i]
        grad = _grad_for_update(grads[i], param, weight_decay, maximize,
                                decoupled=decoupled_weight_decay, lr=lr)
        bias_correction2 = 1.0 - beta2 ** t
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = mu_products[i] * mu
        mu_product_next = mu_product * mu_next
        mu_products[i] = mu_product

        exp_avg, exp_avg_sq = exp_avgs[i], exp_avg_sqs[i]
        scratch = np.empty_like(param)
        _lerp_(exp_avg, grad, 1.0 - beta1, scratch)
        _ema_square_(exp_avg_sq, grad, beta2, scratch)

        denom = np.divide(exp_avg_sq, bias_correction2)
        np.sqrt(denom, out=denom)
        denom += eps
        # p + c * g / denom, then p + c' * m / denom, each in PyTorch's order
        np.multiply(grad, -lr * (1.0 - mu) / (1.0 - mu_product), out=scratch)
        scratch /= denom
        param += scratch
        np.multiply(exp_avg, (-lr * mu_next) / (1.0 - mu_product_next), out=scratch)
        scratch /= denom
        param += scratch


# The Args below repeat Adam's on purpose (as RAdam's, Adamax's): each optimiser's help
# stands alone, as in PyTorch's documentation.
class NAdam(Optimizer):
    """NAdam (Dozat, 2016): Adam whose momentum looks one step ahead, as Nesterov's does.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 2e-3).
        betas: decay rates of the first and second moment averages (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0), or, with
            ``decoupled_weight_decay=True``, decoupled decay as in AdamW.
        momentum_decay: how fast the momentum schedule warms up (default 4e-3).
        decoupled_weight_decay: shrink the weights directly (NAdamW) instead of adding
            the L2 penalty to the gradient.
        maximize: ascend the objective instead of descending it.
        foreach, capturable: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`nadam`. State per parameter: ``"step"`` (an int), ``"mu_product"``
    (a float), ``"exp_avg"`` and ``"exp_avg_sq"``. PyTorch keeps ``mu_product`` in a
    float32 tensor unless its default dtype is float64; backprop keeps it in float64
    always, so float64 runs agree with PyTorch run under ``torch.set_default_dtype(
    torch.float64)`` to rounding, and with default PyTorch to about 1e-9 relative.

    Example::

        opt = backprop.optim.NAdam(model.parameters(), lr=2e-3)
    """

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        _check_unsupported("NAdam", differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_adam_options(options)  # lr, eps, betas, weight_decay: as Adam's
        _check_nonnegative(options, "momentum_decay", "momentum_decay value")

    def load_state_dict(self, state_dict: dict) -> None:
        """As :meth:`Optimizer.load_state_dict`; a ``mu_product`` saved as a tensor (as
        PyTorch saves it) becomes a float."""
        if isinstance(state_dict, dict) and isinstance(state_dict.get("state"), dict):
            state = {}
            for key, value in state_dict["state"].items():
                if isinstance(value, dict) and "mu_product" in value:
                    value = dict(value, mu_product=_as_float(value["mu_product"]))
                state[key] = value
            state_dict = dict(state_dict, state=state)
        super().load_state_dict(state_dict)

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        steps, exp_avgs, exp_avg_sqs = self._state_arrays(tensors, "exp_avg", "exp_avg_sq",
                                                          mu_product=1.0)
        mu_products = [self.state[p]["mu_product"] for p in tensors]
        beta1, beta2 = group["betas"]
        nadam(params, grads, exp_avgs, exp_avg_sqs, mu_products, steps, lr=group["lr"],
              beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
              momentum_decay=group["momentum_decay"],
              decoupled_weight_decay=group["decoupled_weight_decay"],
              maximize=group["maximize"])
        for p, mu_product in zip(tensors, mu_products, strict=True):
            self.state[p]["mu_product"] = mu_product
            p._bump_version()


def _as_float(value) -> float:
    """A one-element tensor, array or number as a Python float."""
    if isinstance(value, Tensor):
        value = value._data
    return float(np.asarray(value, dtype=np.float64).reshape(()))
