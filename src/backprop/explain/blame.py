"""The blame table: how much of the gradient each parameter gets, and what the next step does.

After ``loss.backward()``, every parameter holds its share of the blame for the error:
its gradient. :func:`blame` lays that out per parameter tensor (or per element):

- the gradient's L2 norm;
- its *share* of the total gradient magnitude, in the L1 sense: ``Σ|g_p| / Σ_all Σ|g|``,
  so the shares of all parameters add up to 1;
- the change the next step will make: ``Δ = −lr · g`` for plain gradient descent, or, with
  an optimizer, the change measured by really running that optimizer's ``step()`` on the
  current values and state and then putting both back.

Example::

    loss = loss_fn(model(x), y)
    loss.backward()
    table = blame(model, lr=0.1, sort_by="share")
    print(table)             # one line per parameter, the largest share first
    table.to_dict()          # the same as plain data
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from backprop.explain import _torch
from backprop.nn import Module
from backprop.tensor import Tensor
from backprop.utils._named import NamedRows

__all__ = ["blame", "BlameTable", "BlameRow"]

#: Sort keys accepted by :meth:`BlameTable.sort_by`; numeric keys sort largest first.
SORT_KEYS = ("model", "name", "share", "grad_norm", "update_norm", "update_ratio",
             "weight_norm", "numel")

_BAR_WIDTH = 20  # characters of the share bar in the printed table


@dataclasses.dataclass
class BlameRow:
    """One parameter tensor (or one element of it) in a :class:`BlameTable`.

    ``grad`` and ``update`` are NumPy arrays shaped like the parameter (``None`` when the
    parameter has no gradient or no change was asked for); the other fields are floats.
    """

    name: str
    shape: tuple
    grad: np.ndarray | None
    grad_norm: float | None        # L2 norm of the gradient; None: the parameter has no .grad
    grad_abs_sum: float            # L1 norm, Σ|g| (0 without a gradient)
    share: float                   # grad_abs_sum / total over all rows
    weight_norm: float
    update: np.ndarray | None      # the change the next step makes, Δ = new - old
    update_norm: float | None
    update_ratio: float | None     # ‖Δ‖ / ‖w‖ (None when ‖w‖ is 0 or there is no update)
    index: int = 0                 # position in model order

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to_dict(self, arrays: bool = False) -> dict:
        """The row as plain Python data; with ``arrays``, ``grad`` and ``update`` as lists."""
        out = {"name": self.name, "shape": list(self.shape), "numel": self.numel,
               "grad_norm": self.grad_norm, "grad_abs_sum": self.grad_abs_sum,
               "share": self.share, "weight_norm": self.weight_norm,
               "update_norm": self.update_norm, "update_ratio": self.update_ratio}
        if arrays:
            out["grad"] = None if self.grad is None else self.grad.tolist()
            out["update"] = None if self.update is None else self.update.tolist()
        return out


class BlameTable(NamedRows):
    """Per-parameter blame, as built by :func:`blame`: a sequence of :class:`BlameRow`.

    Index it by position or parameter name, iterate it, ``sort_by(key)`` for a sorted
    copy, ``print(table)`` for the text table, ``to_dict()`` for plain data.

    Attributes:
        rows: the rows, in the current order.
        mode: how ``update`` was obtained: ``"sgd"`` (``Δ = −lr·g``), ``"optimizer"``
            (measured by running the optimizer's step), or ``None`` (not asked for).
        lr: the learning rate of ``"sgd"`` mode.
        optimizer: the optimizer's class name in ``"optimizer"`` mode.
        total_grad_norm: L2 norm of all gradients together.
        total_grad_abs_sum: Σ|g| over all gradients (the denominator of the shares).

    Example::

        table = blame(model, lr=0.1)
        print(table.sort_by("share"))       # the most-blamed parameter first
        table["0.weight"].share             # 0.42
        table.to_dict()["rows"][0]["grad_norm"]
    """

    _rows_attr, _noun = "rows", "parameter"

    def __init__(self, rows, *, mode=None, lr=None, optimizer=None):
        self.rows = list(rows)
        self.mode = mode
        self.lr = lr
        self.optimizer = optimizer
        norms = [r.grad_norm for r in self.rows if r.grad_norm is not None]
        self.total_grad_norm = float(math.sqrt(sum(n * n for n in norms)))
        self.total_grad_abs_sum = float(sum(r.grad_abs_sum for r in self.rows))

    def sort_by(self, key: str = "share", descending: bool | None = None) -> BlameTable:
        """A copy sorted by ``key`` (one of :data:`SORT_KEYS`).

        Numeric keys sort largest first and ``"name"`` alphabetically unless ``descending``
        says otherwise; ``"model"`` restores model order. Missing values go last.
        """
        if key not in SORT_KEYS:
            raise ValueError(f"BlameTable.sort_by: unknown key {key!r}; choose one of "
                             f"{', '.join(SORT_KEYS)}")
        if key == "model":
            rows = sorted(self.rows, key=lambda r: r.index, reverse=bool(descending))
        elif key == "name":
            rows = sorted(self.rows, key=lambda r: r.name, reverse=bool(descending))
        else:
            desc = True if descending is None else descending
            present = [r for r in self.rows if _number(getattr(r, key)) is not None]
            missing = [r for r in self.rows if _number(getattr(r, key)) is None]
            # NaN sorts as the largest value: it is the thing to look at first.
            present.sort(key=lambda r: (math.inf if math.isnan(getattr(r, key))
                                        else getattr(r, key)), reverse=desc)
            rows = present + missing
        return BlameTable(rows, mode=self.mode, lr=self.lr, optimizer=self.optimizer)

    # -- output --------------------------------------------------------------------
    def to_dict(self, arrays: bool = False) -> dict:
        """The table as plain data: ``{"mode", "lr", "optimizer", "total_grad_norm",
        "total_grad_abs_sum", "rows": [row dicts]}``."""
        return {"mode": self.mode, "lr": self.lr, "optimizer": self.optimizer,
                "total_grad_norm": self.total_grad_norm,
                "total_grad_abs_sum": self.total_grad_abs_sum,
                "rows": [r.to_dict(arrays) for r in self.rows]}

    def __repr__(self) -> str:
        return f"<BlameTable: {len(self.rows)} parameters, mode={self.mode!r}>"

    def __str__(self) -> str:
        scalar = bool(self.rows) and all(r.numel == 1 for r in self.rows)
        with_update = self.mode is not None
        head = ["parameter", "shape", "gradient" if scalar else "‖grad‖", "share", ""]
        if with_update:
            head += ["next change" if scalar else "‖change‖", "‖change‖/‖w‖"]
        table = [head]
        for r in self.rows:
            if r.grad is None:
                grad = "no grad"
            else:
                grad = _num(float(r.grad.reshape(-1)[0]) if scalar else r.grad_norm)
            cells = [r.name, "×".join(str(s) for s in r.shape) or "scalar", grad,
                     _pct(r.share), _bar(r.share)]
            if with_update:
                if r.update is None:
                    cells += ["—", "—"]
                else:
                    change = float(r.update.reshape(-1)[0]) if scalar else r.update_norm
                    cells += [_num(change),
                              "—" if r.update_ratio is None else f"{r.update_ratio:.3g}"]
            table.append(cells)
        right = {2, 3, 5, 6}
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        lines = ["Blame: each parameter's share of the gradient, Σ|grad| of the parameter / "
                 "Σ|grad| of all"]
        for row in table:
            cells = [c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append(f"  total ‖grad‖ = {_num(self.total_grad_norm)} over {len(self.rows)} "
                     f"parameter{'s' if len(self.rows) != 1 else ''}")
        if self.mode == "sgd":
            lines.append(f"  next change: plain gradient descent, Δ = −lr·grad with lr = "
                         f"{self.lr:g}")
        elif self.mode == "optimizer":
            lines.append(f"  next change: measured by running {self.optimizer}.step() on a "
                         f"copy of the values and state (both restored)")
        if self.total_grad_abs_sum == 0:
            lines.append("  (every gradient is zero: no parameter is blamed)")
        return "\n".join(lines)


def blame(model, lr: float | None = None, optimizer=None, *, sort_by: str | None = None,
          per_element: bool = False) -> BlameTable:
    """The blame table of ``model``'s parameters after ``backward()``.

    Args:
        model: an ``nn.Module``, or an iterable of ``(name, tensor)`` pairs.
        lr: with no optimizer, predict the next step as plain gradient descent,
            ``Δ = −lr · grad``.
        optimizer: measure the next step of this optimizer instead: its ``step()`` runs
            (its step hooks do not), the change is recorded, and the parameters, their
            gradients, the optimizer's state and step count are restored. Restoring counts
            as an in-place change, so a graph kept with ``retain_graph=True`` that saved
            these parameters can't be backpropagated again.
        sort_by: sort the rows (see :meth:`BlameTable.sort_by`); default model order.
        per_element: one row per element (``"0.weight[1, 0]"``), for small networks.

    A PyTorch model works the same way: a ``torch.nn.Module`` (or ``(name, torch.Tensor)``
    pairs) and a ``torch.optim.Optimizer`` give the same table, from CPU copies of the
    tensors; PyTorch is imported only then.

    Parameters without a gradient are listed with ``grad_norm=None`` and share 0.
    If every gradient is zero the shares are all 0 (they can't add up to 1).

    Example::

        loss.backward()
        print(blame(model, lr=0.5))
        blame(model, optimizer=opt, sort_by="update_ratio")[0].name
    """
    if lr is not None and optimizer is not None:
        raise ValueError("blame: pass lr (plain gradient descent) or optimizer, not both")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))
                           or not math.isfinite(lr) or lr < 0):
        raise ValueError(f"blame: lr must be a non-negative number, got {lr!r}")
    if _torch.is_torch_object(model) or _torch.is_torch_object(optimizer) or \
            _holds_torch_tensors(model):
        # A PyTorch model: the same table, from NumPy copies of its tensors.
        arrays, updates = _torch.blame_arrays(model, lr, optimizer)
    else:
        named = _named_parameters(model)
        if all(p.grad is None for _, p in named):
            raise ValueError("blame: no parameter has a gradient; call loss.backward() first")
        if optimizer is not None:
            updates = _measure_step(optimizer, [p for _, p in named])
        elif lr is not None:
            updates = [None if p.grad is None else -lr * p.grad._data for _, p in named]
        else:
            updates = [None] * len(named)
        arrays = [(n, p._data, None if p.grad is None else p.grad._data) for n, p in named]
    if optimizer is not None:
        mode, name = "optimizer", type(optimizer).__name__
    elif lr is not None:
        mode, name = "sgd", None
    else:
        mode, name = None, None

    parts = []  # (name, weight array, grad array | None, update array | None)
    for (pname, w, g), upd in zip(arrays, updates, strict=True):
        if per_element:
            for idx in np.ndindex(*w.shape):
                label = f"{pname}[{', '.join(str(i) for i in idx)}]" if idx else pname
                parts.append((label, np.asarray(w[idx]), None if g is None else np.asarray(g[idx]),
                              None if upd is None else np.asarray(upd[idx])))
        else:
            parts.append((pname, w, g, upd))

    abs_sums = [0.0 if g is None else float(np.abs(g).sum(dtype=np.float64)) for _, _, g, _ in parts]
    total = sum(abs_sums)
    rows = []
    for i, ((pname, w, g, upd), l1) in enumerate(zip(parts, abs_sums, strict=True)):
        wn = _norm(w)
        un = None if upd is None else _norm(upd)
        rows.append(BlameRow(
            name=pname, shape=tuple(w.shape),
            grad=None if g is None else np.array(g, copy=True),
            grad_norm=None if g is None else _norm(g),
            grad_abs_sum=l1,
            share=(l1 / total) if total > 0 else (math.nan if math.isnan(total) else 0.0),
            weight_norm=wn,
            update=None if upd is None else np.array(upd, copy=True),
            update_norm=un,
            update_ratio=None if un is None or wn == 0 else un / wn,
            index=i))
    table = BlameTable(rows, mode=mode, lr=None if lr is None else float(lr), optimizer=name)
    return table.sort_by(sort_by) if sort_by is not None else table


# -- helpers ---------------------------------------------------------------------------
def _holds_torch_tensors(model) -> bool:
    """Whether ``model`` is a list or tuple of ``(name, torch.Tensor)`` pairs."""
    return isinstance(model, (list, tuple)) and any(
        isinstance(item, tuple) and len(item) == 2 and _torch.is_torch_object(item[1])
        for item in model)


def named_pairs(model, module_type, tensor_type, prefix: str = "") -> list:
    """``(name, tensor)`` pairs of a module of ``module_type`` or of an iterable of such pairs,
    for either framework (``prefix`` names it in errors: "torch." for PyTorch's types)."""
    a = "a" if prefix else "an"  # (a torch.nn.Module, an nn.Module)
    if isinstance(model, module_type):
        named = list(model.named_parameters())
    elif isinstance(model, tensor_type):
        raise TypeError(f"blame: expected {a} {prefix}nn.Module or (name, tensor) pairs, got a "
                        f"single {prefix}Tensor; pass [('w', w)]")
    else:
        try:
            named = list(model)
        except TypeError:
            raise TypeError(f"blame: expected {a} {prefix}nn.Module or (name, tensor) pairs, got "
                            f"{type(model).__name__}") from None
        for i, item in enumerate(named):
            if not (isinstance(item, tuple) and len(item) == 2
                    and isinstance(item[1], tensor_type)):
                raise TypeError(f"blame: item {i} is not a (name, {prefix}Tensor) pair: "
                                f"{item!r}")
        named = [(str(n), p) for n, p in named]
    if not named:
        raise ValueError("blame: the model has no parameters")
    return named


def _named_parameters(model) -> list:
    return named_pairs(model, Module, Tensor)


def _measure_step(optimizer, params: list) -> list:
    """Run ``optimizer.step()`` once, return each param's change, and undo everything.

    Saved and restored: every parameter the optimizer holds (values, in their own arrays),
    their gradients, the optimizer's per-parameter state (arrays and tensors in place,
    plain values by rebinding), its group options and its step count. Step hooks are
    set aside while the measuring step runs, so observers (a diagnostics Monitor, say)
    never see a step that did not happen.
    """
    opt_params = [p for group in optimizer.param_groups for p in group["params"]]
    before = [(p, p._data, p._data.copy(), None if p.grad is None else
               (p.grad, p.grad._data, p.grad._data.copy())) for p in opt_params]
    state_before = {}
    for p, s in list(optimizer.state.items()):
        state_before[p] = (s, {k: (v, _copy_value(v)) for k, v in s.items()})
    groups_before = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    count_before = getattr(optimizer, "_step_count", None)
    pre = getattr(optimizer, "_pre_hooks", None)
    post = getattr(optimizer, "_post_hooks", None)
    if pre is not None:
        optimizer._pre_hooks = {}
    if post is not None:
        optimizer._post_hooks = {}
    after = {}
    try:
        optimizer.step()
        for p in opt_params:
            after[id(p)] = p._data.copy()
    finally:
        if pre is not None:
            optimizer._pre_hooks = pre
        if post is not None:
            optimizer._post_hooks = post
        for p, arr, saved, grad in before:
            np.copyto(arr, saved)
            p._data = arr
            if grad is not None:
                gt, garr, gsaved = grad
                np.copyto(garr, gsaved)
                gt._data = garr
                p.grad = gt
        for p in list(optimizer.state.keys()):
            if p not in state_before:
                del optimizer.state[p]  # state the measuring step created lazily
        for p, (s, items) in state_before.items():
            s.clear()
            for k, (obj, saved) in items.items():
                s[k] = _restore_value(obj, saved)
            optimizer.state[p] = s
        for g, saved in zip(optimizer.param_groups, groups_before, strict=True):
            for k in [k for k in g if k != "params" and k not in saved]:
                del g[k]
            g.update(saved)
        if count_before is not None:
            optimizer._step_count = count_before
    # Whatever the step did is reported, gradient or not (an optimizer skips parameters
    # without one, so theirs is zero); parameters it does not hold get None.
    return [after[id(p)] - p._data if id(p) in after else None for p in params]


def _copy_value(v):
    if isinstance(v, Tensor):
        return v._data.copy()
    if isinstance(v, np.ndarray):
        return v.copy()
    return None  # plain values (ints, floats) are rebound, not changed in place


def _restore_value(obj, saved):
    if isinstance(obj, Tensor) and saved is not None:
        if obj._data.shape == saved.shape and obj._data.flags.writeable:
            np.copyto(obj._data, saved)
        else:
            obj._data = saved
    elif isinstance(obj, np.ndarray) and saved is not None:
        np.copyto(obj, saved)
    return obj


def _norm(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.sum(a * a)))


def _number(v):
    return None if v is None else float(v)


def _num(v) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    return f"{v:.4e}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.6g}"


def _pct(share: float) -> str:
    return "nan" if math.isnan(share) else f"{100 * share:.1f}%"


def _bar(share: float) -> str:
    if math.isnan(share) or share <= 0:
        return ""
    return "#" * max(1, round(share * _BAR_WIDTH))
