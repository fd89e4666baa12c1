"""``Optimizer``: the base class that holds parameter groups and per-parameter state.

An optimizer owns three things, with PyTorch's names and meaning:

- ``param_groups``: a list of dicts, each with ``"params"`` (a list of leaf tensors)
  and that group's options (``"lr"``, ``"momentum"``, ...). Options a group does not
  set come from ``defaults``.
- ``defaults``: the options given to the constructor.
- ``state``: a dict from parameter to that parameter's own dict (momentum buffers,
  moving averages, step counts), created lazily on the parameter's first update.

The arithmetic lives in plain functions over lists of NumPy arrays, one per algorithm
(:func:`backprop.optim.sgd.sgd` beside :class:`~backprop.optim.SGD`, as PyTorch's
``sgd()`` sits beside ``SGD``). They update the parameter arrays in place with NumPy's
``out=`` ufuncs; the classes gather the arrays, call the function and then mark every
updated parameter as changed (``_bump_version``) so backward can refuse values a
graph saved before the update.

Example::

    w = backprop.randn(3, requires_grad=True)
    opt = backprop.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward()
    opt.step()          # w <- w - 0.1 * 2w
    opt.zero_grad()     # w.grad is None again
"""
from __future__ import annotations

import collections
import copy

import numpy as np

from backprop._checks import is_integral
from backprop.autograd.grad_mode import enable_grad, no_grad
from backprop.autograd.hooks import RemovableHandle
from backprop.errors import ShapeError
from backprop.tensor import Tensor, _make

__all__ = ["Optimizer"]


class Optimizer:
    """Base class of all optimizers: parameter groups, lazy state, ``step`` and ``zero_grad``.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts that
            each define a parameter group (``{"params": [...], "lr": 0.1}``); options a
            group leaves out are taken from ``defaults``.
        defaults: the default value of every option of this optimizer.

    A subclass checks its options in ``_check_options(options)`` (called on the
    defaults and again on every group) and updates one group in
    ``_step_group(group)``; ``step`` does the bookkeeping around it (the closure,
    hooks, ``no_grad``). A subclass may instead override ``step`` itself, as in
    PyTorch.

    Example::

        opt = backprop.optim.SGD([
            {"params": body_params},                 # lr from the defaults: 0.01
            {"params": head_params, "lr": 0.1},      # this group's own lr
        ], lr=0.01, momentum=0.9)
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: collections.defaultdict = collections.defaultdict(dict)
        self.param_groups: list[dict] = []
        self._step_count = 0  # how many times step() ran (schedulers check it)
        self._pre_hooks: dict = {}
        self._post_hooks: dict = {}
        self._check_options(defaults)

        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params should be an iterable of Tensors or dicts, but got "
                            f"a single Tensor; wrap it in a list: {name}([w], ...)")
        if isinstance(params, dict):
            raise TypeError(f"{name}: params should be an iterable of Tensors or dicts, but got "
                            f"a dict; pass a list of parameter groups: {name}([group], ...)")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{name}: params should be an iterable of Tensors or dicts, but got "
                            f"{type(params).__name__}") from None
        if len(groups) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- options -----------------------------------------------------------------------
    def _check_options(self, options: dict) -> None:
        """Raise ValueError for an invalid option value. Subclasses check their own."""

    # -- parameter groups --------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group (a dict with ``"params"`` and any options to override).

        Useful when fine-tuning: layers unfrozen later join the optimizer as a new group.

        Example::

            opt.add_param_group({"params": head.parameters(), "lr": 1e-4})
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, but got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a param group needs a 'params' entry, got the keys "
                             f"{sorted(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not "
                            f"a set, whose order changes between runs")
        else:
            params = list(params)

        # Named parameters: (name, tensor) pairs, as model.named_parameters() yields.
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError(f"{name}: all parameters of a group must be given with names "
                                 f"or all without; some names are missing")
            params = [p[1] for p in params]
            param_group["param_names"] = names

        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, but parameter {i} is "
                                f"{type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(
                    f"{name}: can't optimize a non-leaf Tensor (parameter {i} was produced by "
                    f"{p.grad_fn.name()}); pass the leaf tensors themselves, e.g. "
                    f"model.parameters(), or make one with x.detach().requires_grad_()")
            if p._data.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating-point tensors, but parameter "
                                f"{i} has dtype {p.dtype}")
            if not p._data.flags.writeable:
                raise ValueError(f"{name}: parameter {i} is a read-only view (made by expand() or "
                                 f"broadcast_to()) and can't be updated in place; clone() it")
        param_group["params"] = params

        seen: dict[int, int] = {}
        for i, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} appears twice in a parameter group (also "
                                 f"at position {seen[id(p)]}); each parameter may appear once")
            seen[id(p)] = i
        for group in self.param_groups:
            if any(id(p) in seen for p in group["params"]):
                raise ValueError(f"{name}: some parameters appear in more than one parameter "
                                 f"group")
            if ("param_names" in group) != ("param_names" in param_group):
                raise ValueError(f"{name}: all parameter groups must be given with names or all "
                                 f"without")

        for key, default in self.defaults.items():
            param_group.setdefault(key, default)
        self._check_options(param_group)
        self.param_groups.append(param_group)

    # -- gradients -------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters before the next backward.

        Args:
            set_to_none: drop the gradients (``p.grad = None``, the default: no memory
                traffic, and an optimizer skips a parameter whose grad is None), or, with
                False, write zeros into the existing gradient arrays.
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if g.grad_fn is not None:  # a gradient built with create_graph-style code
                    g = g.detach()
                    p.grad = g
                g._requires_grad = False
                if g._data.flags.writeable:
                    g._data.fill(0)
                else:  # a read-only view the user assigned: replace it
                    g._data = np.zeros_like(g._data)
                g._bump_version()

    # -- the update --------------------------------------------------------------------
    def step(self, closure=None):
        """Update every parameter that has a gradient; return the closure's loss, if any.

        Args:
            closure: optional function that clears the gradients, recomputes the loss,
                calls ``backward()`` and returns the loss. It runs with gradients enabled,
                before the update.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for hook in tuple(self._pre_hooks.values()):
            hook(self, (), {})
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        self._step_count += 1
        for hook in tuple(self._post_hooks.values()):
            hook(self, (), {})
        return loss

    def _step_group(self, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _step_group(group) or "
                                  f"override step()")

    def _lazy_state(self, p: Tensor, *buffers: str, **initial) -> dict:
        """``p``'s state, its ``"step"`` counted for this update. On ``p``'s first update
        the state is created as PyTorch creates it: ``"step"`` = 0, then the ``initial``
        values, then each named buffer as zeros shaped like ``p``."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state.update(initial)
            for key in buffers:
                state[key] = _make(np.zeros_like(p._data))
        state["step"] += 1
        return state

    def _state_arrays(self, tensors: list, *buffers: str, **initial) -> tuple:
        """(steps, arrays of buffer 1, arrays of buffer 2, ...) over ``tensors``: each
        parameter's state through :meth:`_lazy_state`, gathered as the update function
        takes it (lists of step counts and of NumPy arrays, in parameter order)."""
        steps: list = []
        arrays: tuple[list, ...] = tuple([] for _ in buffers)
        for p in tensors:
            state = self._lazy_state(p, *buffers, **initial)
            steps.append(state["step"])
            for key, column in zip(buffers, arrays, strict=True):
                column.append(state[key]._data)
        return (steps, *arrays)

    def _params_with_grad(self, group: dict):
        """(tensors, parameter arrays, gradient arrays) of the group's parameters that have
        a gradient; the others are skipped, as in PyTorch."""
        tensors, params, grads = [], [], []
        for p in group["params"]:
            g = p.grad
            if g is not None:
                if g._data.shape != p._data.shape:  # only possible for a grad set by hand
                    raise ShapeError(f"{type(self).__name__}.step: a parameter of shape "
                                     f"{p._data.shape} has a gradient of shape {g._data.shape}")
                tensors.append(p)
                params.append(p._data)
                grads.append(g._data)
        return tensors, params, grads

    # -- hooks -----------------------------------------------------------------------
    def register_step_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(optimizer, args, kwargs)`` before every ``step``; returns a handle."""
        self._pre_hooks[id(hook)] = hook
        return RemovableHandle(self._pre_hooks, hook)

    def register_step_post_hook(self, hook) -> RemovableHandle:
        """Call ``hook(optimizer, args, kwargs)`` after every ``step``; returns a handle."""
        self._post_hooks[id(hook)] = hook
        return RemovableHandle(self._post_hooks, hook)

    # -- saving and loading ----------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state in PyTorch's format: ``{"state": ..., "param_groups": ...}``.

        ``state`` maps the integer index of each parameter (counting through the groups
        in order) to its state dict; ``param_groups`` holds each group's options with
        ``"params"`` replaced by the list of indices. The values are plain numbers,
        strings, lists/tuples and tensors. As in PyTorch, the state tensors are the
        optimizer's own (not copies): save the dict before stepping again, or deep-copy it.

        Example::

            sd = opt.state_dict()
            sd["param_groups"][0]["params"]    # [0, 1, 2, 3]
            sd["state"][0]["momentum_buffer"]  # a tensor shaped like parameter 0
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            key = index.get(id(p)) if isinstance(p, Tensor) else p
            if key is not None:
                state[key] = dict(s)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state from :meth:`state_dict`, deep-copied, arrays cast to each parameter's dtype.

        The number of groups and the size of each must match this optimizer's; the
        parameters themselves stay this optimizer's own, the options come from the dict.
        Keys of ``state`` may be ints or their decimal strings (as JSON writes them).
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups', got {got}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has a different number "
                             f"of parameter groups ({len(saved_groups)}) than the optimizer "
                             f"({len(self.param_groups)})")
        for i, (mine, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has "
                                 f"{len(saved['params'])} parameters in the loaded state dict but "
                                 f"{len(mine['params'])} in the optimizer")

        index_to_param = {}
        for mine, saved in zip(self.param_groups, saved_groups, strict=True):
            for k, p in zip(saved["params"], mine["params"], strict=True):
                index_to_param[int(k)] = p

        new_state: collections.defaultdict = collections.defaultdict(dict)
        for key, value in state_dict["state"].items():
            if isinstance(key, str) and key.lstrip("-").isdigit():
                key = int(key)
            p = index_to_param.get(key) if is_integral(key) else None
            if p is None:  # not a parameter of ours: keep it as PyTorch does
                new_state[key] = copy.deepcopy(value)
                continue
            new_state[p] = {k: _load_state_value(k, v, p, key, name) for k, v in value.items()}

        new_groups = []
        for mine, saved in zip(self.param_groups, saved_groups, strict=True):
            group = {k: copy.deepcopy(v) for k, v in saved.items()
                     if k not in ("params", "param_names")}
            for k, v in self.defaults.items():  # options newer than the saved dict
                group.setdefault(k, v)
            group["params"] = mine["params"]
            if "param_names" in mine:
                group["param_names"] = mine["param_names"]
            self._check_options(group)
            new_groups.append(group)
        self.state = new_state
        self.param_groups = new_groups

    # -- display ---------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _load_state_value(key, value, param: Tensor, index, name: str):
    """A deep copy of one loaded state entry: arrays become tensors of the parameter's dtype
    and shape (except the step count, which stays a number)."""
    if key == "step":
        return int(float(value._data if isinstance(value, Tensor) else value))
    if isinstance(value, Tensor):
        value = value._data
    # Arrays, nested lists (from JSON) and other libraries' tensors (e.g. PyTorch's).
    if isinstance(value, (np.ndarray, list)) or hasattr(value, "__array__"):
        arr = np.asarray(value).astype(param._data.dtype, copy=True)
        if arr.shape != param._data.shape:
            raise ShapeError(f"{name}.load_state_dict: state {key!r} of parameter {index} has "
                             f"shape {arr.shape}, but the parameter has shape {param._data.shape}")
        return _make(arr)
    return copy.deepcopy(value)


# -- helpers shared by the update functions ----------------------------------------------
def _grad_for_update(grad: np.ndarray, param: np.ndarray, weight_decay: float,
                     maximize: bool, *, decoupled: bool = False, lr: float = 0.0) -> np.ndarray:
    """The gradient an update uses: negated when maximizing, plus ``weight_decay * param``
    (L2 regularisation). Returns ``grad`` itself when neither applies, else a new array;
    the caller's gradient is never changed.

    With ``decoupled=True`` (AdamW's decay) the weight decay shrinks ``param`` in place
    instead, ``param *= 1 - lr * weight_decay``, and leaves the gradient alone."""
    if decoupled and weight_decay != 0:
        param *= 1.0 - lr * weight_decay
        weight_decay = 0.0
    if weight_decay != 0:
        out = np.multiply(param, weight_decay)
        # NOTE: a + b == b + a exactly in floating point, so this matches grad + wd * param.
        if maximize:
            np.subtract(out, grad, out=out)
        else:
            np.add(out, grad, out=out)
        return out
    if maximize:
        return np.negative(grad)
    return grad


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, scratch: np.ndarray) -> None:
    """start <- start + weight * (end - start), in place, using ``scratch`` (same shape).

    Computed the way PyTorch's ``lerp_`` does, from whichever end is nearer, so
    moving averages agree to the last bit rather than drifting apart."""
    np.subtract(end, start, out=scratch)
    if abs(weight) < 0.5:
        scratch *= weight
        start += scratch
    else:
        scratch *= 1.0 - weight
        np.subtract(end, scratch, out=start)


def _ema_square_(avg: np.ndarray, value: np.ndarray, decay: float, scratch: np.ndarray) -> None:
    """avg <- decay * avg + (1 - decay) * value * value, in place, using ``scratch``.

    The running mean of squares of Adam's second moment, RMSprop and Adadelta
    (PyTorch's ``avg.mul_(decay).addcmul_(value, value, value=1 - decay)``)."""
    avg *= decay
    np.multiply(value, 1.0 - decay, out=scratch)
    scratch *= value
    avg += scratch


def _check_nonnegative(options: dict, key: str, what: str) -> None:
    """ValueError ``Invalid {what}: {value}`` unless ``0 <= options[key]`` (NaN fails too)."""
    value = options[key]
    try:
        ok = 0.0 <= value
    except TypeError:
        raise TypeError(f"Invalid {what}: expected a number, got {type(value).__name__}") from None
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _check_unsupported(name: str, differentiable: bool) -> None:
    """PyTorch's implementation knobs: accepted, since they don't change the maths, except
    ``differentiable=True`` (gradients through the update), which backprop doesn't do."""
    if differentiable:
        raise NotImplementedError(f"{name}: differentiable=True (backpropagating through the "
                                  f"update) is not supported")
