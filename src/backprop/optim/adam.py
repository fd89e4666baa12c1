"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

import numpy as np

from backprop.ops import _kernels
from backprop.optim.optimizer import (
    Optimizer,
    _check_nonnegative,
    _check_unsupported,
    _ema_square_,
    _grad_for_update,
    _lerp_,
)
from backprop.tensor import _make

__all__ = ["Adam", "AdamW", "adam", "adamw"]


def adam(params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list,
         steps: list, *, lr: float, beta1: float, beta2: float, eps: float,
         weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
         decoupled_weight_decay: bool = False) -> None:
    """One Adam update of each array in ``params``, in place (PyTorch's algorithm)::

        for each parameter p with gradient g, at its step t (1 for the first update):
            if maximize:                 g = -g
            if weight_decay:
                if decoupled (AdamW):    p = p * (1 - lr * weight_decay)
                else:                    g = g + weight_decay * p
            m = m + (1 - beta1) * (g - m)             # first moment (a lerp)
            v = beta2 * v + (1 - beta2) * g * g       # second moment
            if amsgrad:  v_max = max(v_max, v);  v_hat = v_max
            else:        v_hat = v
            denom = sqrt(v_hat) / sqrt(1 - beta2**t) + eps
            p = p - lr / (1 - beta1**t) * m / denom

    Args:
        params, grads: lists of NumPy arrays; ``params`` are updated in place, ``grads``
            only read.
        exp_avgs, exp_avg_sqs: the moment arrays (m, v), updated in place.
        max_exp_avg_sqs: the running maxima of v (used when ``amsgrad``).
        steps: the step number t of each parameter, counting this update.

    Example::

        p, g = np.zeros(2), np.array([1.0, -1.0])
        m, v = np.zeros(2), np.zeros(2)
        adam([p], [g], [m], [v], [], [1], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
        # p ≈ [-0.1, 0.1]: Adam's first step moves each weight by about lr
    """
    lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
    eps, weight_decay = float(eps), float(weight_decay)
    for i, param in enumerate(params):
        grad = _grad_for_update(grads[i], param, weight_decay, maximize,
                                decoupled=decoupled_weight_decay, lr=lr)
        exp_avg, exp_avg_sq = exp_avgs[i], exp_avg_sqs[i]
        t = steps[i]
        bias_correction1 = 1.0 - beta1 ** t
        bias_correction2 = 1.0 - beta2 ** t
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if not amsgrad and _kernels.usable(param, exp_avg, exp_avg_sq, grad):
            # the same operations in the same order (so the same bits), in one C pass
            _kernels.KERNELS.adam_step(param, exp_avg, exp_avg_sq, grad, param.size,
                                       1.0 - beta1, beta2, step_size, bias_correction2_sqrt,
                                       eps)
            continue
        scratch = np.empty_like(param)
        _lerp_(exp_avg, grad, 1.0 - beta1, scratch)
        _ema_square_(exp_avg_sq, grad, beta2, scratch)
        if amsgrad:
            np.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=max_exp_avg_sqs[i])
            second = max_exp_avg_sqs[i]
        else:
            second = exp_avg_sq
        denom = grad if grad is not grads[i] else np.empty_like(param)  # reuse a temporary
        np.sqrt(second, out=denom)
        denom /= bias_correction2_sqrt
        denom += eps
        # p + (-step_size) * m / denom, evaluated in PyTorch's order
        np.multiply(exp_avg, -step_size, out=scratch)
        scratch /= denom
        param += scratch


def adamw(params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, max_exp_avg_sqs: list,
          steps: list, *, lr: float, beta1: float, beta2: float, eps: float,
          weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False) -> None:
    """One AdamW update: :func:`adam` with decoupled weight decay
    (``p = p * (1 - lr * weight_decay)`` before the Adam step, outside the moments)."""
    adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr=lr, beta1=beta1,
         beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
         decoupled_weight_decay=True)


def _check_adam_options(options: dict) -> None:
    """Adam's checks of lr, eps, betas and weight_decay (its variants share them)."""
    _check_nonnegative(options, "lr", "learning rate")
    _check_nonnegative(options, "eps", "epsilon value")
    betas = options["betas"]
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), "
                         f"got {betas!r}") from None
    for i, beta in enumerate((beta1, beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    _check_nonnegative(options, "weight_decay", "weight_decay value")


class Adam(Optimizer):
    """Adam: per-weight step sizes from running averages of the gradient and its square.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment averages (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0), or, with
            ``decoupled_weight_decay=True``, decoupled decay as in AdamW.
        amsgrad: use the maximum of past second moments (AMSGrad).
        maximize: ascend the objective instead of descending it.
        foreach, fused, capturable: accepted for PyTorch compatibility; the update is the same.

    The update is :func:`adam`. State per parameter: ``"step"`` (an int), ``"exp_avg"``,
    ``"exp_avg_sq"`` and, with amsgrad, ``"max_exp_avg_sq"``.

    Example::

        opt = backprop.optim.Adam(model.parameters(), lr=0.001)
    """

    _decoupled = False  # AdamW sets True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False):
        _check_unsupported(type(self).__name__, differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay or self._decoupled)
        super().__init__(params, defaults)

    def _check_options(self, options: dict) -> None:
        _check_adam_options(options)

    def _step_group(self, group: dict) -> None:
        tensors, params, grads = self._params_with_grad(group)
        if not tensors:
            return
        amsgrad = group["amsgrad"]
        steps, exp_avgs, exp_avg_sqs = self._state_arrays(tensors, "exp_avg", "exp_avg_sq")
        max_exp_avg_sqs = []
        if amsgrad:
            for p in tensors:
                state = self.state[p]
                if "max_exp_avg_sq" not in state:  # first update, or amsgrad switched on later
                    state["max_exp_avg_sq"] = _make(np.zeros_like(p._data))
                max_exp_avg_sqs.append(state["max_exp_avg_sq"]._data)
        beta1, beta2 = group["betas"]
        adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr=group["lr"],
             beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
             amsgrad=amsgrad, maximize=group["maximize"],
             decoupled_weight_decay=self._decoupled or group["decoupled_weight_decay"])
        for p in tensors:
            p._bump_version()


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` each step).

    Same arguments as :class:`Adam`, with ``weight_decay`` defaulting to 1e-2. The decay
    shrinks the weights directly instead of entering the moment averages, so it is not
    rescaled by Adam's per-weight step sizes (Loshchilov & Hutter, 2019).

    Example::

        opt = backprop.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         differentiable=differentiable)
