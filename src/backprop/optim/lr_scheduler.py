"""Learning-rate schedules, with PyTorch's names and stepping semantics.

A scheduler changes ``group["lr"]`` of an optimizer's parameter groups. Building it
performs the first step (epoch 0) and records each group's starting rate as
``group["initial_lr"]``; after that, call ``scheduler.step()`` once per epoch (or per
batch, for per-step schedules such as :class:`OneCycleLR`), *after*
``optimizer.step()``::

    opt = backprop.optim.SGD(params, lr=0.1)
    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(...)    # calls opt.step()
        sched.step()            # lr: 0.1 for epochs 0-29, 0.01 for 30-59, ...

The recommended recipe: linear warmup, then cosine decay
---------------------------------------------------------
Starting at the full learning rate can throw a freshly initialised network (and Adam's
not yet meaningful second-moment estimates) somewhere bad; ramping the rate up over the
first few hundred steps, then letting it fall along a half cosine to (nearly) zero, is
the schedule most modern training runs use. Build it from PyTorch's own pieces::

    warmup = LinearLR(opt, start_factor=1 / (warmup_steps + 1), total_iters=warmup_steps)
    decay = CosineAnnealingLR(opt, T_max=total_steps - warmup_steps, eta_min=min_lr)
    sched = SequentialLR(opt, [warmup, decay], milestones=[warmup_steps])

or with the one-line helper :func:`warmup_cosine` (backprop's own; PyTorch has none),
stepping the scheduler after every optimizer step.

Departures from PyTorch: ``state_dict()`` writes MultiStepLR's milestones as a sorted
list (not a ``Counter``) so that every scheduler state is plain JSON-friendly data; the
learning rates are plain floats (no tensor learning rates).
"""
from __future__ import annotations

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Any

from backprop._checks import is_real
from backprop.optim.optimizer import Optimizer

__all__ = [
    "LRScheduler", "_LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR",
    "CosineAnnealingLR", "LinearLR", "SequentialLR", "OneCycleLR", "ReduceLROnPlateau",
    "MultiplicativeLR", "ConstantLR", "PolynomialLR", "CosineAnnealingWarmRestarts", "CyclicLR",
    "ChainedScheduler", "warmup_cosine",
]


def _check_optimizer(optimizer, name: str) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: {type(optimizer).__name__} is not an Optimizer")


def _per_group(name: str, optimizer: Optimizer, value) -> list:
    """One value per parameter group: a list/tuple of that length, or one value repeated."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have the same length as optimizer.param_groups: "
                             f"{name} has {len(value)} values, param_groups has {n}")
        return list(value)
    return [value] * n


def _lr_lambdas(name: str, optimizer: Optimizer, lr_lambda) -> list:
    """LambdaLR's and MultiplicativeLR's functions: one per parameter group, given as a
    list of that length or as one function for every group."""
    n = len(optimizer.param_groups)
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != n:
            raise ValueError(f"{name}: expected {n} lr_lambdas (one per param group), but got "
                             f"{len(lr_lambda)}")
        return list(lr_lambda)
    return [lr_lambda] * n


def _check_saved(op: str, what: str, saved: list, have: list) -> None:
    """A saved state holds one entry for each of ``have`` (a state of another schedule
    would otherwise load in part)."""
    if len(saved) != len(have):
        raise ValueError(f"{op}: the state holds {len(saved)} {what}, but this scheduler has "
                         f"{len(have)}")


class LRScheduler:
    """Base class of learning-rate schedulers.

    A subclass implements ``get_lr()``: the rates of the epoch ``self.last_epoch``,
    usually computed from the current ``group["lr"]`` (a recursive form, which composes
    with other schedulers) and optionally ``_get_closed_form_lr()`` from ``base_lrs``.

    Args:
        optimizer: the optimizer whose ``group["lr"]`` values this scheduler sets.
        last_epoch: index of the last epoch; -1 (default) starts a new schedule. A
            value >= 0 resumes one and needs ``"initial_lr"`` in every group.

    Attributes:
        base_lrs: each group's ``initial_lr``.
        last_epoch: the epoch whose rates are in the optimizer now.
    """

    _is_initial = False  # True during the step made by the constructor
    _get_lr_called_within_step = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified in "
                                   f"param_groups[{i}] when resuming a scheduler with "
                                   f"last_epoch={last_epoch}; load the optimizer's state first, "
                                   f"or use last_epoch=-1 for a new schedule")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Reset the step count and perform the step that sets epoch 0's rates."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # -- stepping --------------------------------------------------------------------
    def step(self, epoch: int | None = None) -> None:
        """Advance to the next epoch and write its learning rates into the optimizer.

        Args:
            epoch: deprecated in PyTorch (and here): jump to this epoch, using the closed
                form when the scheduler has one.
        """
        if self._step_count == 1 and not self._is_initial:
            opt = self.optimizer
            # Only an optimizer whose step() is Optimizer's own counts its steps.
            if type(opt).step is Optimizer.step and opt._step_count == 0:
                warnings.warn(
                    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. Call "
                    "them in the opposite order: `optimizer.step()` before "
                    "`lr_scheduler.step()`; otherwise the first value of the learning rate "
                    "schedule is skipped.", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn("The epoch parameter in `scheduler.step()` is deprecated; call "
                          "`scheduler.step()` without it", UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in self._per_group_zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self) -> list:
        """The learning rates of epoch ``last_epoch`` (called by ``step``; to read the
        current rates use :meth:`get_last_lr`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def get_last_lr(self) -> list:
        """The learning rates the last ``step`` set, one per parameter group."""
        return self._last_lr

    def _warn_if_called_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use "
                          "`get_last_lr()`.", UserWarning, stacklevel=3)

    def _current_lrs(self) -> list:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _per_group_zip(self, *columns):
        """``zip`` of lists that hold one entry per parameter group, refusing (by name) a
        group added to the optimizer after the scheduler was made, which has no schedule."""
        groups = len(self.optimizer.param_groups)
        for column in columns:
            if len(column) != groups:
                raise ValueError(f"{type(self).__name__}: the optimizer has {groups} parameter "
                                 f"groups but the scheduler has {len(column)} values per group "
                                 f"(was a group added after the scheduler was made?)")
        return zip(*columns, strict=True)

    # -- changing a running schedule -------------------------------------------------
    def rescale(self, factor: float) -> None:
        """Multiply the running schedule by ``factor`` from the epoch it has reached.

        backprop's own (PyTorch has none): for a peak learning rate changed while
        training runs, as the lab's slider does. Each group's current ``lr`` and
        ``initial_lr`` and the ``base_lrs`` (of the schedulers inside a
        :class:`SequentialLR` or :class:`ChainedScheduler` too) are multiplied, so the
        next steps give, to rounding, the rates of the same schedule started with a peak
        ``factor`` times larger. That holds for the schedules whose rates are the base
        rates times a factor: :class:`LambdaLR`, :class:`StepLR`, :class:`LinearLR`,
        :class:`ExponentialLR`, :class:`CosineAnnealingLR` with ``eta_min=0`` and
        :func:`warmup_cosine` with ``min_lr=0``, for instance; floors and bounds of their
        own (``eta_min``, OneCycleLR's ``max_lr``) are not scaled.

        Example::

            sched = warmup_cosine(opt, warmup_steps=100, total_steps=1000)   # peak 0.1
            ...
            sched.rescale(0.02 / 0.1)           # from now on, the schedule of peak 0.02
        """
        if isinstance(factor, bool) or not is_real(factor) \
                or not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"{type(self).__name__}.rescale: factor must be a positive "
                             f"finite number, got {factor!r}")
        factor = float(factor)  # (a NumPy float32 would make every rate a float32)
        for group in self.optimizer.param_groups:
            group["lr"] = group["lr"] * factor
            if "initial_lr" in group:
                group["initial_lr"] = group["initial_lr"] * factor
        self._rescale_base_lrs(factor)
        self._last_lr = self._current_lrs()

    def _rescale_base_lrs(self, factor: float) -> None:
        if hasattr(self, "base_lrs"):
            self.base_lrs = [lr * factor for lr in self.base_lrs]
        for sched in getattr(self, "_schedulers", ()):
            sched._rescale_base_lrs(factor)

    # -- saving and loading ----------------------------------------------------------
    def state_dict(self) -> dict:
        """The scheduler's state: every attribute except the optimizer (plain data)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state from :meth:`state_dict`."""
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


_LRScheduler = LRScheduler  # the name before PyTorch 2.0


class LambdaLR(LRScheduler):
    """lr = initial_lr * lr_lambda(epoch).

    Args:
        optimizer: the optimizer.
        lr_lambda: a function of the epoch returning a factor, or a list of such
            functions, one per parameter group.
        last_epoch: see :class:`LRScheduler`.

    Only callable objects (not plain functions or lambdas) have their attributes saved
    by ``state_dict``, as in PyTorch.

    Example::

        sched = LambdaLR(opt, lambda epoch: 0.95 ** epoch)
    """

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1):
        _check_optimizer(optimizer, "LambdaLR")
        self.optimizer = optimizer
        if not isinstance(lr_lambda, (list, tuple)) and not callable(lr_lambda):
            raise TypeError(f"LambdaLR: lr_lambda must be a function or a list of functions, "
                            f"got {type(lr_lambda).__name__}")
        self.lr_lambdas = _lr_lambdas("LambdaLR", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        return [base_lr * fn(self.last_epoch)
                for fn, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)]

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else dict(fn.__dict__)
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None)
        if saved is None:  # a state without them: the functions keep their attributes
            saved = [None] * len(self.lr_lambdas)
        _check_saved(f"{type(self).__name__}.load_state_dict", "lr_lambdas", saved,
                     self.lr_lambdas)
        self.__dict__.update(state)
        for fn, attrs in zip(self.lr_lambdas, saved, strict=True):
            if attrs is not None:
                fn.__dict__.update(attrs)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Example::

        sched = StepLR(opt, step_size=30, gamma=0.1)   # lr 0.1 -> 0.01 at epoch 30 -> ...
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        if int(step_size) != step_size or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each epoch listed in ``milestones``.

    Example::

        sched = MultiStepLR(opt, milestones=[30, 80], gamma=0.1)
    """

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1,
                 last_epoch: int = -1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())  # JSON-friendly
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        milestones = self.milestones
        if isinstance(milestones, dict):  # a Counter, as PyTorch saves it
            self.milestones = Counter({int(k): int(v) for k, v in milestones.items()})
        else:  # the sorted list our state_dict writes
            self.milestones = Counter(int(m) for m in milestones)


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch.

    Example::

        sched = ExponentialLR(opt, gamma=0.95)
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate along a half cosine from ``initial_lr`` to ``eta_min``
    over ``T_max`` epochs (SGDR without restarts)::

        lr(t) = eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    As in PyTorch the rate is updated recursively from the current one, so it composes
    with other changes to ``group["lr"]``; past ``T_max`` it rises again along the
    cosine (stop stepping, or use :func:`warmup_cosine`'s length, to stay at eta_min).

    Example::

        sched = CosineAnnealingLR(opt, T_max=100, eta_min=1e-5)
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1):
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:  # the first step of a resumed schedule
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base_lr in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            # At a minimum of the cosine the ratio below is 0/0: step up from eta_min instead.
            return [lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, lr in self._per_group_zip(self.base_lrs, self._current_lrs())]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the learning rate by a factor moving linearly from ``start_factor`` to
    ``end_factor`` over ``total_iters`` epochs, then hold it.

    Example::

        sched = LinearLR(opt, start_factor=0.1, total_iters=10)   # warm up over 10 epochs
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(f"LinearLR: starting multiplicative factor expected to be greater "
                             f"than 0 and less or equal to 1, got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(f"LinearLR: ending multiplicative factor expected to be between 0 "
                             f"and 1, got {end_factor}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        t, start, end = self.last_epoch, self.start_factor, self.end_factor
        if t == 0:
            return [lr * start for lr in self._current_lrs()]
        if self._is_initial or t > self.total_iters:
            return self._current_lrs()
        # The ratio of factor(t) to factor(t - 1), so the update composes with other changes.
        ratio = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * ratio for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        frac = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)
                for base_lr in self.base_lrs]


def _check_schedulers(name: str, schedulers: list, optimizer: Optimizer) -> None:
    """The schedulers a SequentialLR or ChainedScheduler drives: each one a scheduler of
    ``optimizer`` that steps without a metric (so not ReduceLROnPlateau)."""
    for i, sched in enumerate(schedulers):
        if not hasattr(sched, "optimizer"):
            raise TypeError(f"{name}: scheduler at index {i} should have `optimizer` as its "
                            f"attribute")
        if isinstance(sched, ReduceLROnPlateau):
            raise ValueError(f"{name} does not support ReduceLROnPlateau (it needs a metric in "
                             f"step()), but got one at index {i}")
        if sched.optimizer is not optimizer:
            raise ValueError(f"{name} expects all schedulers to belong to the same optimizer, "
                             f"but scheduler {type(sched).__name__} at index {i} has a "
                             f"different one")


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``.

    At each milestone the next scheduler starts from its own epoch 0 (its closed form).

    Example::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = ExponentialLR(opt, gamma=0.9)
        sched = SequentialLR(opt, [warmup, decay], milestones=[5])
    """

    def __init__(self, optimizer: Optimizer, schedulers: list, milestones: list,
                 last_epoch: int = -1):
        _check_optimizer(optimizer, "SequentialLR")
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got none")
        _check_schedulers("SequentialLR", schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, but got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer

        # Building the schedulers already stepped each once: reset the rates and the
        # schedulers' epochs, then start the first one afresh.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _undo_initial_steps(self, sched) -> None:
        if hasattr(sched, "_schedulers"):
            for s in sched._schedulers:
                self._undo_initial_steps(s)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    # PyTorch's signature: no epoch argument, unlike LRScheduler.step
    def step(self) -> None:  # type: ignore[override]
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched._update_lr(0)  # the next scheduler starts at its own epoch 0
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved = state.pop("_schedulers")
        _check_saved(f"{type(self).__name__}.load_state_dict", "schedulers", saved,
                     self._schedulers)
        self.__dict__.update(state)
        for sched, s in zip(self._schedulers, saved, strict=True):
            sched.load_state_dict(s)


def _momentum_key(optimizer: Optimizer, name: str) -> bool:
    """Whether the optimizer's momentum is Adam's beta1 (True) or SGD's momentum (False)."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(f"{name}: optimizer must support momentum or beta1 with the "
                         f"`cycle_momentum` option enabled")
    return "betas" in optimizer.defaults


class _CyclesMomentum:
    """What OneCycleLR and CyclicLR share: they move each group's momentum (SGD's
    ``momentum`` or Adam's beta1, as ``self.use_beta1`` says) against the learning rate."""

    use_beta1: bool  # (set by the scheduler's __init__)
    optimizer: Optimizer

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _start_momentum(self, max_momentums: list, base_momentums: list) -> None:
        """A fresh run starts at the highest momentum; the groups keep both bounds."""
        for hi, lo, group in zip(max_momentums, base_momentums, self.optimizer.param_groups,
                                 strict=True):
            self._set_momentum(group, hi)
            group["max_momentum"] = hi
            group["base_momentum"] = lo


class OneCycleLR(_CyclesMomentum, LRScheduler):
    """The 1cycle policy (Smith & Topin, 2017): the rate rises from ``max_lr / div_factor``
    to ``max_lr``, then anneals to ``initial_lr / final_div_factor``, while the momentum
    (or Adam's beta1) cycles the opposite way. Step it after every batch.

    Args:
        optimizer: the optimizer.
        max_lr: peak learning rate, one value or one per group.
        total_steps: the number of steps in the cycle; or give ``epochs`` and
            ``steps_per_epoch`` instead.
        pct_start: fraction of the cycle spent increasing the rate (default 0.3).
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        cycle_momentum: cycle momentum/beta1 between ``max_momentum`` and ``base_momentum``.
        base_momentum, max_momentum: momentum bounds, one value or one per group.
        div_factor: initial_lr = max_lr / div_factor (default 25).
        final_div_factor: min_lr = initial_lr / final_div_factor (default 1e4).
        three_phase: a third phase anneals from initial_lr to min_lr (the rise is mirrored
            by a fall back to initial_lr first).
        last_epoch: see :class:`LRScheduler`.

    Example::

        sched = OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))
    """

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        _check_optimizer(optimizer, "OneCycleLR")
        self.optimizer = optimizer
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"OneCycleLR: expected positive integer total_steps, but got "
                                 f"{total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"OneCycleLR: expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"OneCycleLR: expected positive integer steps_per_epoch, but got "
                                 f"{steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR: you must define either total_steps OR (epochs AND "
                             "steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected float between 0 and 1 pct_start, but got "
                             f"{pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be one of 'cos' or 'linear', "
                             f"instead got {anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy

        # Each phase runs from the previous phase's end step to its own, interpolating
        # between two group entries (named, so the values live in the param groups).
        n = self.total_steps
        self._schedule_phases: list[dict[str, Any]]  # end_step a number, the rest group keys
        if three_phase:
            self._schedule_phases = [
                dict(end_step=float(pct_start * n) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=float(2 * pct_start * n) - 2, start_lr="max_lr",
                     end_lr="initial_lr", start_momentum="base_momentum",
                     end_momentum="max_momentum"),
                dict(end_step=n - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum"),
            ]
        else:
            self._schedule_phases = [
                dict(end_step=float(pct_start * n) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=n - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
            ]

        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups, max_lrs, strict=True):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer, "OneCycleLR")
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                self._start_momentum(max_momentums, base_momentums)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the specified number of "
                             f"total steps is {self.total_steps}")
        lrs = []
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == last:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[phase["start_momentum"]],
                                                               group[phase["end_momentum"]], pct))
                    break
                start_step = end_step
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Reduce the learning rate when a metric has stopped improving: ``step(metric)``.

    Args:
        optimizer: the optimizer.
        mode: ``"min"`` (the metric should fall, e.g. a loss) or ``"max"`` (e.g. accuracy).
        factor: new_lr = lr * factor (< 1; default 0.1).
        patience: epochs without improvement to tolerate before reducing (default 10).
        threshold: how much better counts as an improvement (default 1e-4).
        threshold_mode: ``"rel"`` (better than best * (1 ∓ threshold)) or ``"abs"``
            (better than best ∓ threshold).
        cooldown: epochs to wait after a reduction before counting again (default 0).
        min_lr: lower bound on the rate, one value or one per group (default 0).
        eps: reductions smaller than this are skipped (default 1e-8).

    Example::

        sched = ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
        for epoch in range(100):
            val_loss = train_and_validate(...)
            sched.step(val_loss)
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr=0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor should be < 1.0, got {factor}")
        _check_optimizer(optimizer, "ReduceLROnPlateau")
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"ReduceLROnPlateau: expected {len(optimizer.param_groups)} "
                                 f"min_lrs, got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode {mode!r} is unknown (use 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold mode {threshold_mode!r} is unknown "
                             f"(use 'rel' or 'abs')")
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        """Whether metric value ``a`` improves on ``best`` by more than the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    # PyTorch's signature: the metric comes first, unlike LRScheduler.step
    def step(self, metrics, epoch=None) -> None:  # type: ignore[override]
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn("The epoch parameter in `scheduler.step()` is deprecated; call "
                          "`scheduler.step(metric)` without it", UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown don't count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {len(groups)} param "
                                   f"groups but min_lrs has {len(self.min_lrs)} values (was a "
                                   f"group added?); set `min_lrs` to match")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs, strict=True):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)

class MultiplicativeLR(LRScheduler):
    """Multiply the learning rate by ``lr_lambda(epoch)`` every epoch (after epoch 0)::

        lr(t) = lr(t - 1) * lr_lambda(t)

    Args:
        optimizer: the optimizer.
        lr_lambda: a function of the epoch returning a factor, or a list of such
            functions, one per parameter group.
        last_epoch: see :class:`LRScheduler`.

    Example::

        sched = MultiplicativeLR(opt, lambda epoch: 0.95)   # same as ExponentialLR(gamma=0.95)
    """

    def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1):
        _check_optimizer(optimizer, "MultiplicativeLR")
        self.optimizer = optimizer
        self.lr_lambdas = _lr_lambdas("MultiplicativeLR", optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"MultiplicativeLR: lr_lambda should be a function, but got "
                                f"{type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial:
            return self._current_lrs()
        return [lr * fn(self.last_epoch)
                for fn, lr in self._per_group_zip(self.lr_lambdas, self._current_lrs())]

    # Lambdas are saved as LambdaLR saves them: only callable objects keep attributes.
    state_dict = LambdaLR.state_dict
    load_state_dict = LambdaLR.load_state_dict


class ConstantLR(LRScheduler):
    """Multiply the learning rate by ``factor`` for the first ``total_iters`` epochs, then
    restore it.

    Args:
        optimizer: the optimizer.
        factor: the multiplier, in [0, 1] (default 1/3).
        total_iters: the epoch at which the rate goes back to ``initial_lr`` (default 5).
        last_epoch: see :class:`LRScheduler`.

    Example::

        sched = ConstantLR(opt, factor=0.5, total_iters=4)   # lr/2 for epochs 0-3, then lr
    """

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1):
        if factor > 1.0 or factor < 0:
            raise ValueError(f"ConstantLR: constant multiplicative factor expected to be between "
                             f"0 and 1, got {factor}")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._current_lrs()]
        if self.last_epoch != self.total_iters:
            return self._current_lrs()
        return [lr * (1.0 / self.factor) for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        done = self.last_epoch >= self.total_iters
        return [base_lr * (self.factor + done * (1 - self.factor)) for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decay the learning rate along a polynomial to zero over ``total_iters`` epochs::

        lr(t) = initial_lr * (1 - min(t, total_iters) / total_iters) ** power

    Args:
        optimizer: the optimizer.
        total_iters: epochs of decay (default 5); the rate then stays at 0.
        power: the polynomial's power (default 1.0, a linear decay).
        last_epoch: see :class:`LRScheduler`.

    Example::

        sched = PolynomialLR(opt, total_iters=100, power=2.0)
    """

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1):
        if not total_iters > 0:
            raise ValueError(f"PolynomialLR: total_iters must be positive, got {total_iters!r}")
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        t, n = self.last_epoch, self.total_iters
        if self._is_initial or t > n:
            return self._current_lrs()
        # The ratio of the factors at t and t - 1, so the update composes with other changes.
        decay = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [lr * decay for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list:
        frac = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base_lr * (1.0 - frac) ** self.power for base_lr in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter, 2016)::

        lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    ``T_cur`` counts the epochs since the last restart; the first period lasts ``T_0``
    epochs and each later one ``T_mult`` times the one before. ``step`` may be called
    with a fractional epoch (``epoch + i / iters_per_epoch``) to anneal within an epoch.

    Args:
        optimizer: the optimizer.
        T_0: epochs until the first restart (a positive integer).
        T_mult: growth factor of the period after each restart (integer >= 1, default 1).
        eta_min: the lowest learning rate (default 0).
        last_epoch: see :class:`LRScheduler`.

    Example::

        sched = CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2, eta_min=1e-5)
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1,  # noqa: N803
                 eta_min: float = 0.0, last_epoch: int = -1):
        if not isinstance(T_0, int) or isinstance(T_0, bool) or T_0 <= 0:
            raise ValueError(f"CosineAnnealingWarmRestarts: expected positive integer T_0, but "
                             f"got {T_0!r}")
        if not isinstance(T_mult, int) or isinstance(T_mult, bool) or T_mult < 1:
            raise ValueError(f"CosineAnnealingWarmRestarts: expected integer T_mult >= 1, but "
                             f"got {T_mult!r}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"CosineAnnealingWarmRestarts: expected float or int eta_min, but "
                             f"got {eta_min!r} of type {type(eta_min).__name__}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        cos = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (base_lr - self.eta_min) * cos / 2 for base_lr in self.base_lrs]

    def step(self, epoch=None) -> None:
        """Advance one epoch, or jump to ``epoch`` (which may be fractional).

        Example::

            for epoch in range(20):
                for i, batch in enumerate(loader):
                    ...; opt.step()
                    sched.step(epoch + i / len(loader))
        """
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur %= self.T_i
                self.T_i *= self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"CosineAnnealingWarmRestarts: expected non-negative epoch, but "
                                 f"got {epoch}")
            if epoch < self.T_0:
                self.T_i, self.T_cur = self.T_0, epoch
            elif self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                # n whole periods end before `epoch`: T_0 (T_mult^n - 1) / (T_mult - 1) <= epoch.
                n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult ** n
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in self._per_group_zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._current_lrs()


class CyclicLR(_CyclesMomentum, LRScheduler):
    """Cycle the learning rate between ``base_lr`` and ``max_lr`` (Smith, 2017), and the
    momentum the opposite way. Step it after every batch.

    One cycle is ``step_size_up`` steps rising and ``step_size_down`` steps falling; the
    amplitude is scaled per cycle by ``mode``:

    * ``"triangular"``: constant amplitude;
    * ``"triangular2"``: the amplitude halves each cycle;
    * ``"exp_range"``: the amplitude is scaled by ``gamma ** iteration``;

    or by a custom ``scale_fn(x)`` of the cycle number (``scale_mode="cycle"``) or the
    iteration (``scale_mode="iterations"``).

    Args:
        optimizer: the optimizer.
        base_lr, max_lr: the cycle's bounds, one value or one per group.
        step_size_up: steps in the rising half (default 2000).
        step_size_down: steps in the falling half (default: ``step_size_up``).
        mode: ``"triangular"`` (default), ``"triangular2"`` or ``"exp_range"``.
        gamma: the base of ``"exp_range"`` (default 1.0).
        scale_fn: a custom amplitude scaling (overrides ``mode``).
        scale_mode: ``"cycle"`` (default) or ``"iterations"``: the argument of scale_fn.
        cycle_momentum: cycle momentum (SGD) or beta1 (Adam) between ``max_momentum`` and
            ``base_momentum`` (default True).
        base_momentum, max_momentum: momentum bounds (default 0.8 and 0.9).
        last_epoch: see :class:`LRScheduler`; here it counts batches.

    Example::

        sched = CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=200, mode="triangular2")
    """

    def __init__(self, optimizer: Optimizer, base_lr, max_lr, step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum=0.8, max_momentum=0.9,
                 last_epoch: int = -1):
        _check_optimizer(optimizer, "CyclicLR")
        self.optimizer = optimizer
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                group["lr"] = lr
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        if not up + down > 0:
            raise ValueError(f"CyclicLR: a cycle must have at least one step, got "
                             f"step_size_up={step_size_up} and step_size_down={step_size_down}")
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(f"CyclicLR: mode {mode!r} is invalid and scale_fn is None (use "
                             f"'triangular', 'triangular2' or 'exp_range')")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"CyclicLR: scale_mode must be 'cycle' or 'iterations', got "
                             f"{scale_mode!r}")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer, "CyclicLR")
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                self._start_momentum(self.max_momentums, self.base_momentums)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        # The built-in modes fix the scale mode, as in PyTorch.
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x) -> float:
        """The amplitude scaling at ``x`` (the cycle number or the iteration)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        t = self.last_epoch
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle  # position within the cycle, in [0, 1)
        if x <= self.step_ratio:
            height = x / self.step_ratio
        else:
            height = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else t)
        lrs = [base + (peak - base) * height * scale
               for base, peak in zip(self.base_lrs, self.max_lrs, strict=True)]
        if self.cycle_momentum:
            for group, lo, hi in self._per_group_zip(self.optimizer.param_groups,
                                                     self.base_momentums, self.max_momentums):
                self._set_momentum(group, hi - (hi - lo) * height * scale)
        return lrs

    def state_dict(self) -> dict:
        state = super().state_dict()
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = (None if fn is None or isinstance(fn, types.FunctionType)
                                     else dict(fn.__dict__))
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        fn = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if fn is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()


class ChainedScheduler(LRScheduler):
    """Step several schedulers together, each multiplying in its own change every step.

    Args:
        schedulers: the schedulers (all of one optimizer; not ReduceLROnPlateau).
        optimizer: that optimizer (default: the first scheduler's).

    Example::

        sched = ChainedScheduler([ConstantLR(opt, factor=0.1, total_iters=2),
                                  ExponentialLR(opt, gamma=0.9)])
    """

    def __init__(self, schedulers, optimizer: Optimizer | None = None):
        schedulers = list(schedulers)
        if len(schedulers) < 1:
            raise ValueError("ChainedScheduler expects at least one scheduler to be chained, "
                             "but got no scheduler")
        optimizer = optimizer or schedulers[0].optimizer
        _check_schedulers("ChainedScheduler", schedulers, optimizer)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = [group["lr"] for group in schedulers[-1].optimizer.param_groups]

    # PyTorch's signature: no epoch argument, unlike LRScheduler.step
    def step(self) -> None:  # type: ignore[override]
        for sched in self._schedulers:
            sched.step()
        self._last_lr = [group["lr"] for group in self._schedulers[-1].optimizer.param_groups]

    state_dict = SequentialLR.state_dict
    load_state_dict = SequentialLR.load_state_dict

    def __repr__(self) -> str:
        inner = ", ".join(type(s).__name__ for s in self._schedulers)
        return f"ChainedScheduler([{inner}], lr={self.get_last_lr()})"


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int,
                  min_lr: float = 0.0, start_factor: float | None = None) -> LRScheduler:
    """Linear warmup followed by cosine decay: the recommended schedule (not in PyTorch).

    The rate climbs linearly from ``start_factor * lr`` to ``lr`` over ``warmup_steps``
    steps, then falls along a half cosine to ``min_lr`` at ``total_steps``. It is a
    :class:`SequentialLR` of :class:`LinearLR` and :class:`CosineAnnealingLR`, so it
    saves, loads and behaves like any PyTorch scheduler. Step it after every optimizer
    step (not every epoch).

    Args:
        optimizer: the optimizer; each group's ``lr`` is its peak rate.
        warmup_steps: length of the warmup (0: cosine decay alone, a CosineAnnealingLR).
        total_steps: length of the whole schedule, warmup included (> warmup_steps).
        min_lr: the rate the cosine ends at (default 0).
        start_factor: the first step's fraction of the peak; by default
            ``1 / (warmup_steps + 1)``, so the warmup rates are
            ``lr * k / (warmup_steps + 1)`` for k = 1, 2, ... and the ramp ends exactly
            where the cosine starts.

    Example::

        opt = backprop.optim.AdamW(model.parameters(), lr=1e-3)
        sched = warmup_cosine(opt, warmup_steps=100, total_steps=1000)
        for step in range(1000):
            ...; opt.step(); sched.step()
    """
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_cosine: warmup_steps must be a non-negative integer, got "
                         f"{warmup_steps!r}")
    if not isinstance(total_steps, int) or total_steps <= warmup_steps:
        raise ValueError(f"warmup_cosine: total_steps must be an integer larger than "
                         f"warmup_steps ({warmup_steps}), got {total_steps!r}")
    decay_steps = total_steps - warmup_steps
    if warmup_steps == 0:
        return CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=min_lr)
    if start_factor is None:
        start_factor = 1.0 / (warmup_steps + 1)
    warmup = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0,
                      total_iters=warmup_steps)
    decay = CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=min_lr)
    return SequentialLR(optimizer, [warmup, decay], milestones=[warmup_steps])
