"""One step of backpropagation, printed in the textbook's notation, with the engine's own numbers.

:func:`trace` runs one forward pass, one backward pass and one step of plain gradient
descent through a ``Sequential`` of ``Linear`` layers and activations, and records every
intermediate value under the names of the usual derivation (columns are samples)::

    Z[l] = W[l]·A[l-1] + b[l]          A[l] = f(Z[l])
    dZ[l] = dA[l] ⊙ f'(Z[l])           dW[l] = dZ[l]·A[l-1]ᵀ / m
    db[l] = Σ dZ[l] / m                dA[l-1] = W[l]ᵀ·dZ[l]
    W[l] ← W[l] − α·dW[l]

Every number comes from the engine: the forward tensors, the gradients that autograd
leaves in ``.grad`` of the parameters, and the gradients of Z and A kept with
``retain_grad()``. The formulas are printed beside them, and :attr:`Trace.check`
evaluates each formula in NumPy from those numbers to show that they agree.

Example::

    from backprop.explain import default_example, trace
    print(trace(*default_example()))       # the tutorials' 2-2-1 sigmoid network
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from backprop import dtypes as _dt
from backprop import random as _random
from backprop.autograd import enable_grad, grad, no_grad
from backprop.creation import tensor as _tensor
from backprop.errors import ShapeError
from backprop.explain.blame import BlameTable, blame
from backprop.nn import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    Linear,
    Module,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from backprop.nn import functional as F
from backprop.tensor import Tensor

__all__ = ["trace", "Trace", "LayerTrace", "HalfSquaredError", "default_example", "Example"]

#: Significant digits of the printed numbers (the largest entry of each matrix gets this many).
SIGNIFICANT = 7
#: The largest learning rate :func:`trace` takes. A step of a million times the gradient
#: already throws every weight far past any useful value; far larger rates overflow float64
#: in the printed norms (1e200 did), which says nothing about backpropagation.
MAX_LR = 1e6
#: Matrices larger than this are shown in part (trace is meant for small networks).
MAX_ROWS, MAX_COLS = 8, 8

# Activation class -> (symbol in the formulas, f'(z) in words, NumPy f, NumPy f'). The NumPy
# versions are used only by the check, never for the printed numbers.
_ACTIVATIONS = {
    Sigmoid: ("σ", "σ'(z) = σ(z)(1 − σ(z))", lambda z: 1 / (1 + np.exp(-z)),
              lambda z: (1 / (1 + np.exp(-z))) * (1 - 1 / (1 + np.exp(-z)))),
    Tanh: ("tanh", "tanh'(z) = 1 − tanh²(z)", np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    ReLU: ("relu", "relu'(z) = 1 where z > 0, else 0", lambda z: np.maximum(z, 0),
           lambda z: (z > 0).astype(z.dtype)),
    LeakyReLU: ("leaky_relu", None, None, None),  # slope-dependent: filled in per module
    GELU: ("gelu", "gelu'(z), taken from the engine", None, None),
    ELU: ("elu", "elu'(z), taken from the engine", None, None),
    Softplus: ("softplus", "softplus'(z), taken from the engine", None, None),
    SiLU: ("silu", "silu'(z), taken from the engine", None, None),
    Identity: ("id", "id'(z) = 1", lambda z: z, np.ones_like),
}


class HalfSquaredError(Module):
    """Half the squared error, averaged over the samples: L = (1/m) Σᵢ ½‖yᵢ − ŷᵢ‖².

    The loss of the textbook derivation: the ½ cancels the 2 of the derivative, so the
    gradient per sample is simply ŷ − y. A batch is ``(m, outputs)``; a 0-d or 1-d input
    is one sample.

    Example::

        HalfSquaredError()(backprop.tensor([0.75]), backprop.tensor([1.0]))  # 0.03125
    """

    formula = "L = (1/m) Σᵢ ½‖yᵢ − ŷᵢ‖²"

    def forward(self, input, target):
        diff = target - input
        m = input.shape[0] if input.ndim >= 2 else 1
        return (diff * diff).sum() / (2 * m)


class Example(NamedTuple):
    """What :func:`default_example` returns: ``trace(*example)`` runs it."""

    model: Sequential
    x: Tensor
    y: Tensor
    loss_fn: Module
    lr: float


def default_example() -> Example:
    """The tutorials' 2-2-1 sigmoid network, in float64: ``(model, x, y, loss_fn, lr)``.

    x = [0.5, 0.8], y = 1, W1 = [[0.15, 0.25], [0.20, 0.30]], b1 = [0.35, 0.35],
    W2 = [[0.40, 0.50]], b2 = [0.60], half squared error, learning rate 0.5. The global
    random state is left as it was (building the layers draws initial weights).

    Example::

        model, x, y, loss_fn, lr = default_example()
        loss_fn(model(x), y).item()     # 0.0270581...
    """
    state = _random.get_rng_state()
    try:
        model = Sequential(Linear(2, 2, dtype=_dt.float64), Sigmoid(),
                           Linear(2, 1, dtype=_dt.float64), Sigmoid())
    finally:
        _random.set_rng_state(state)
    values = {"0.weight": [[0.15, 0.25], [0.20, 0.30]], "0.bias": [0.35, 0.35],
              "2.weight": [[0.40, 0.50]], "2.bias": [0.60]}
    with no_grad():
        for name, p in model.named_parameters():
            p.copy_(_tensor(values[name], dtype=_dt.float64))
    x = _tensor([0.5, 0.8], dtype=_dt.float64)
    y = _tensor(1.0, dtype=_dt.float64)
    return Example(model, x, y, HalfSquaredError(), 0.5)


@dataclasses.dataclass
class LayerTrace:
    """Every value of layer ``index`` (counting from 1), in the textbook's orientation.

    Matrices are ``(units, m)``: one column per sample. ``W`` is ``(units, inputs)`` as in
    ``nn.Linear``; ``b`` and ``db`` are ``(units, 1)`` (``None`` without a bias).
    ``fprime`` is f'(Z) from the engine (the activation's own backward).
    """

    index: int
    linear: str               # the Linear's name in the model ("0")
    activation: str | None    # the activation's name in the model ("1"), None if none
    kind: str                 # activation class name ("Sigmoid"), "identity" if none
    symbol: str               # "σ"
    fprime_formula: str
    W: np.ndarray
    b: np.ndarray | None
    A_prev: np.ndarray
    Z: np.ndarray
    A: np.ndarray
    dA: np.ndarray
    fprime: np.ndarray
    dZ: np.ndarray
    dW: np.ndarray
    db: np.ndarray | None
    dA_prev: np.ndarray
    W_new: np.ndarray
    b_new: np.ndarray | None

    _ARRAYS = ("W", "b", "A_prev", "Z", "A", "dA", "fprime", "dZ", "dW", "db", "dA_prev",
               "W_new", "b_new")

    def to_dict(self) -> dict:
        """The layer's values as plain data (nested lists; None where there is no bias)."""
        out = {"index": self.index, "linear": self.linear, "activation": self.activation,
               "kind": self.kind, "symbol": self.symbol, "fprime_formula": self.fprime_formula}
        for k in self._ARRAYS:
            v = getattr(self, k)
            out[k] = None if v is None else v.tolist()
        return out


class Trace:
    """The record of one forward pass, backward pass and update (see :func:`trace`).

    Attributes:
        layers: one :class:`LayerTrace` per ``Linear``.
        m: number of samples. ``lr``: the learning rate α. ``dtype``: the parameters' dtype.
        X: A[0] = Xᵀ, ``(inputs, m)``. ``y``, ``y_hat``, ``y_hat_after``: ``(outputs, m)``.
        loss, loss_after: the loss before and after the update.
        dA_out_formula: the formula of dA[L] for the loss (``"ŷ − y"``), or ``None``.
        check: formula name -> largest |engine value − formula evaluated in NumPy|.
        blame: a :class:`BlameTable` of the step (names ``W[1]``, ``b[1]``, ...).
        param_names: textbook name -> the model's parameter name (``"W[1]" -> "0.weight"``).

    ``str(trace)`` is the printed explanation; ``to_dict()`` the same as plain data.

    Example::

        t = trace(*default_example())
        t.loss, t.loss_after          # 0.0270581..., 0.0254549...
        t.layers[0].dZ                # dZ[1], a (2, 1) column
        t.blame.sort_by("share")[0].name
    """

    def __init__(self, *, layers, m, lr, dtype, X, y, y_hat, y_hat_after, loss, loss_after,
                 loss_name, loss_formula, dA_out_formula, dX, blame_table, param_names,
                 updated, check) -> None:
        self.layers: list[LayerTrace] = layers
        self.m: int = m
        self.lr: float = lr
        self.dtype = dtype
        self.X = X
        self.dX = dX
        self.y = y
        self.y_hat = y_hat
        self.y_hat_after = y_hat_after
        self.loss: float = loss
        self.loss_after: float = loss_after
        self.loss_name: str = loss_name
        self.loss_formula: str = loss_formula
        self.dA_out_formula: str | None = dA_out_formula
        self.blame: BlameTable = blame_table
        self.param_names: dict = param_names
        self._updated = updated
        self.check: dict = check

    @property
    def max_check_error(self) -> float:
        """The largest disagreement between the engine and the textbook formulas."""
        return max(self.check.values()) if self.check else 0.0

    def state_dict_after(self) -> dict:
        """The model's parameters after the update, by the model's names (arrays).

        ``model.load_state_dict(trace.state_dict_after())`` applies the step to the model,
        which :func:`trace` itself never changes.
        """
        return {k: v.copy() for k, v in self._updated.items()}

    def to_dict(self) -> dict:
        """Everything as plain Python data (nested lists, textbook orientation)."""
        def lst(a):
            return None if a is None else a.tolist()
        return {"m": self.m, "lr": self.lr, "dtype": str(self.dtype),
                "loss_name": self.loss_name, "loss_formula": self.loss_formula,
                "dA_out_formula": self.dA_out_formula,
                "X": lst(self.X), "dX": lst(self.dX), "y": lst(self.y),
                "y_hat": lst(self.y_hat), "y_hat_after": lst(self.y_hat_after),
                "loss": self.loss, "loss_after": self.loss_after,
                "layers": [layer.to_dict() for layer in self.layers],
                "param_names": dict(self.param_names),
                "check": dict(self.check), "blame": self.blame.to_dict()}

    def __repr__(self) -> str:
        return (f"<Trace: {len(self.layers)} layers, m={self.m}, loss {self.loss:.7g} -> "
                f"{self.loss_after:.7g}>")

    def __str__(self) -> str:
        return _render(self)


def trace(model, x, y, loss_fn, lr: float = 0.5) -> Trace:
    """Run one forward/backward pass and one gradient-descent step, recording every value.

    Args:
        model: an ``nn.Sequential`` of ``Linear`` layers, each followed by at most one
            activation (ReLU, LeakyReLU, Sigmoid, Tanh, GELU, ELU, Softplus, SiLU or
            Identity); nested Sequentials are flattened. Anything else raises TypeError
            naming the module.
        x: the input, ``(m, inputs)``, or ``(inputs,)`` for one sample.
        y: the target; for one sample a scalar or ``(outputs,)``. A floating target with as
            many elements as the output is reshaped to the output's shape.
        loss_fn: ``loss_fn(y_hat, y)`` -> a scalar tensor (e.g. :class:`HalfSquaredError`,
            ``nn.MSELoss()``).
        lr: the learning rate α of the update ``W ← W − α·dW``, from 0 to :data:`MAX_LR`.

    The model is **not changed**: the trace runs on copies of its parameters, so no
    ``.grad`` is written to the model and the update is applied to the copies only
    (:meth:`Trace.state_dict_after` gives the updated values). The model's forward hooks
    do not run, because the layers are evaluated directly (``F.linear`` and each
    activation's ``forward``), which also exposes each Z and A. ``loss_fn`` is called
    as usual.

    The gradients printed as ``dV`` are m·∂L/∂V: the gradient per sample when the loss
    is a mean over the batch, as in the derivation (for m = 1 they are ∂L/∂V).

    Example::

        t = trace(*default_example())
        t.layers[1].dW          # [[-0.0270490, -0.0276558]]
        t.loss_after            # 0.0254550...
        print(t)
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
            or lr < 0:
        raise ValueError(f"trace: lr must be a non-negative finite number, got {lr!r}")
    if lr > MAX_LR:
        raise ValueError(f"trace: lr must be at most {MAX_LR:,.0f}, got {lr!r}")
    if not callable(loss_fn):
        raise TypeError(f"trace: loss_fn must be callable, got {type(loss_fn).__name__}")
    stages = _stages(model)
    first = stages[0][1]
    dtype = first.weight.dtype
    np_dtype = first.weight._data.dtype

    X = np.array(x._data if isinstance(x, Tensor) else x, dtype=np_dtype)
    single = X.ndim == 1
    if single:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != first.in_features:
        raise ValueError(f"trace: x must be (m, {first.in_features}) or ({first.in_features},) "
                         f"for model[{stages[0][0]}] = Linear({first.in_features} -> "
                         f"{first.out_features}), got shape {tuple(np.shape(x))}")
    Y = np.array(y._data if isinstance(y, Tensor) else y)
    # Floating targets take the model's dtype; so do plain-number integer targets of a
    # regression loss (y = 1). Integer class labels stay integers.
    if Y.dtype.kind == "f" or (Y.dtype.kind in "biu" and not isinstance(y, Tensor)
                               and isinstance(loss_fn, (HalfSquaredError, MSELoss))):
        Y = Y.astype(np_dtype)
    if single:
        Y = Y.reshape((1,) + Y.shape)
    m = X.shape[0]

    with enable_grad():
        A0 = _tensor(X.copy(), requires_grad=True)
        A, records, params = A0, [], []
        for lin_name, lin, act_name, act in stages:
            W = _tensor(lin.weight._data.copy(), requires_grad=True)
            b = None if lin.bias is None else _tensor(lin.bias._data.copy(), requires_grad=True)
            Z = F.linear(A, W, b)   # what nn.Linear.forward computes
            Z.retain_grad()
            A_new = Z if act is None else act.forward(Z)
            if A_new is not Z:
                A_new.retain_grad()
            records.append((lin_name, act_name, act, W, b, A, Z, A_new))
            params += [W] + ([] if b is None else [b])
            A = A_new
        y_hat = A
        if Y.dtype.kind == "f" and Y.size == y_hat._data.size and Y.shape != y_hat._data.shape:
            Y = Y.reshape(y_hat._data.shape)
        Yt = _tensor(Y)
        try:
            loss = loss_fn(y_hat, Yt)
        except ShapeError as e:  # say which call failed: the user never wrote it
            raise ShapeError(f"trace: loss_fn(y_hat, y) failed with y_hat of shape "
                             f"{tuple(y_hat.shape)} (m = {m} samples) and y of shape "
                             f"{Y.shape}: {e}") from e
        if not isinstance(loss, Tensor) or loss._data.size != 1:
            got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"trace: loss_fn must return a scalar tensor, got {got}")
        loss.backward()
    missing = [f"W[{i + 1}]" for i, r in enumerate(records) if r[3].grad is None]
    if missing:
        raise ValueError(f"trace: {', '.join(missing)} got no gradient; loss_fn must depend "
                         f"on the model's output")

    names, named = {}, []
    for i, (lin_name, _, _, W, b, *_rest) in enumerate(records):
        prefix = f"{lin_name}." if lin_name else ""
        names[f"W[{i + 1}]"] = prefix + "weight"
        named.append((f"W[{i + 1}]", W))
        if b is not None:
            names[f"b[{i + 1}]"] = prefix + "bias"
            named.append((f"b[{i + 1}]", b))
    blame_table = blame(named, lr=float(lr))

    layers = []
    for i, (lin_name, act_name, act, W, b, A_prev, Z, A_out) in enumerate(records):
        kind, symbol, fprime_formula = _describe(act)
        layers.append(dict(
            index=i + 1, linear=lin_name, activation=act_name, kind=kind, symbol=symbol,
            fprime_formula=fprime_formula,
            W=W._data.copy(), b=None if b is None else b._data.reshape(-1, 1).copy(),
            A_prev=_tb(A_prev._data), Z=_tb(Z._data), A=_tb(A_out._data),
            dA=m * _tb(_grad_of(A_out)), fprime=_tb(_fprime(act, Z._data)),
            dZ=m * _tb(_grad_of(Z)), dW=_grad_of(W).copy(),
            db=None if b is None else _grad_of(b).reshape(-1, 1).copy(),
            dA_prev=m * _tb(_grad_of(A_prev))))

    with no_grad():
        for p in params:
            assert p.grad is not None  # (checked above: every W has one, and so its b)
            p.sub_(lr * p.grad)
        A = A0
        for (_, _, act, W, b, *_rest) in records:
            Z = F.linear(A, W, b)
            A = Z if act is None else act.forward(Z)
        loss_after = loss_fn(A, Yt)
    updated = {}
    for layer, (_, _, _, W, b, *_rest) in zip(layers, records, strict=True):
        layer["W_new"] = W._data.copy()
        layer["b_new"] = None if b is None else b._data.reshape(-1, 1).copy()
        updated[names[f"W[{layer['index']}]"]] = W._data.copy()
        if b is not None:
            updated[names[f"b[{layer['index']}]"]] = b._data.copy()

    loss_name, loss_formula, dA_formula, dA_expected = _describe_loss(loss_fn, y_hat._data, Y, m)
    traces = [LayerTrace(**layer) for layer in layers]
    check = _check(traces, [_reference(r[2]) for r in records], float(lr), m,
                   dA_formula, None if dA_expected is None else _tb(dA_expected))
    return Trace(layers=traces, m=m, lr=float(lr), dtype=dtype, X=_tb(X), y=_tb(Y),
                 y_hat=_tb(y_hat._data), y_hat_after=_tb(A._data), loss=float(loss.item()),
                 loss_after=float(loss_after.item()), loss_name=loss_name,
                 loss_formula=loss_formula, dA_out_formula=dA_formula,
                 dX=m * _tb(_grad_of(A0)), blame_table=blame_table, param_names=names,
                 updated=updated, check=check)


# -- building blocks ---------------------------------------------------------------------
# What to use instead, for a model trace() cannot write out in the textbook's notation.
_OTHER_MODELS = ("; for any other model, backprop.explain.graph(loss) shows its autograd graph "
                 "and backprop.explain.blame(model, lr=...) its gradients after "
                 "loss.backward()")


def _stages(model) -> list:
    """[(linear name, Linear, activation name | None, activation | None), ...]."""
    if isinstance(model, Linear):
        modules = [("", model)]
    elif isinstance(model, Sequential):
        modules = _ordered(model)
    else:
        raise TypeError(f"trace: expected an nn.Sequential of Linear layers and activations, got "
                        f"{type(model).__name__}{_OTHER_MODELS}")
    supported = ", ".join(c.__name__ for c in _ACTIVATIONS)
    stages = []
    for name, mod in modules:
        if type(mod) is Linear or (isinstance(mod, Linear) and
                                    type(mod).forward is Linear.forward):
            stages.append([name, mod, None, None])
        elif type(mod) in _ACTIVATIONS:
            if not stages:
                raise TypeError(f"trace: model[{name}] is {type(mod).__name__} before any Linear "
                                f"layer; the model must start with a Linear")
            if stages[-1][3] is not None:
                raise TypeError(f"trace: model[{name}] ({type(mod).__name__}) follows another "
                                f"activation (model[{stages[-1][2]}]); trace allows one "
                                f"activation per Linear")
            stages[-1][2], stages[-1][3] = name, mod
        else:
            raise TypeError(f"trace: unsupported module model[{name}] = {mod!r}; trace explains "
                            f"a Sequential of Linear layers, each followed by at most one "
                            f"activation ({supported}){_OTHER_MODELS}")
    if not stages:
        raise ValueError("trace: the model has no Linear layer")
    return [tuple(s) for s in stages]


def _ordered(model) -> list:
    """The non-Sequential modules of nested Sequentials in forward order, with dotted names."""
    out, stack = [], [("", model)]
    while stack:
        prefix, mod = stack.pop()
        if isinstance(mod, Sequential):
            for name, child in reversed(list(mod.named_children())):
                stack.append((f"{prefix}{name}" if not prefix else f"{prefix}.{name}", child))
        else:
            out.append((prefix, mod))
    return out


def _describe(act) -> tuple:
    if act is None:
        return "identity", "id", "no activation: A = Z, f'(z) = 1"
    symbol, fprime, _, _ = _ACTIVATIONS[type(act)]
    if isinstance(act, LeakyReLU):
        fprime = f"leaky_relu'(z) = 1 where z > 0, else {act.negative_slope:g}"
    return type(act).__name__, symbol, fprime


def _reference(act):
    """NumPy (f, f') of the activation for the check, or (None, None) when not written out."""
    if act is None:
        return (lambda z: z), np.ones_like
    if isinstance(act, LeakyReLU):
        s = act.negative_slope
        return (lambda z: np.where(z > 0, z, s * z)), (lambda z: np.where(z > 0, 1.0, s))
    _, _, f, fp = _ACTIVATIONS[type(act)]
    return f, fp


def _fprime(act, z: np.ndarray) -> np.ndarray:
    """f'(z) from the engine: the activation's backward applied to a gradient of ones."""
    if act is None:
        return np.ones_like(z)
    with enable_grad():
        zt = _tensor(z.copy(), requires_grad=True)
        out = act.forward(zt)
        (g,) = grad(out, zt, grad_outputs=_tensor(np.ones_like(out._data)))
    return g._data


def _grad_of(t: Tensor) -> np.ndarray:
    if t.grad is None:  # no gradient reached it (an output the loss ignores)
        return np.zeros_like(t._data)
    return t.grad._data


def _tb(a: np.ndarray) -> np.ndarray:
    """The textbook orientation: one column per sample."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1).copy()
    if a.ndim == 1:
        return a.reshape(1, -1).copy()
    return a.reshape(a.shape[0], -1).T.copy()


def _describe_loss(loss_fn, y_hat: np.ndarray, Y: np.ndarray, m: int) -> tuple:
    """(name, formula of L, formula of dA[L], dA[L] by that formula in NumPy | None)."""
    name = type(loss_fn).__name__ if isinstance(loss_fn, Module) else \
        getattr(loss_fn, "__name__", type(loss_fn).__name__)
    same = Y.shape == y_hat.shape and Y.dtype.kind == "f"
    if isinstance(loss_fn, HalfSquaredError):
        return ("half squared error", HalfSquaredError.formula, "ŷ − y",
                (y_hat - Y) if same else None)
    if isinstance(loss_fn, MSELoss) and getattr(loss_fn, "reduction", "mean") == "mean":
        k = y_hat.size // m
        return (f"mean squared error, k = {k} output{'s' if k != 1 else ''}",
                "L = (1/(m·k)) Σ (y − ŷ)²",
                f"2(ŷ − y)/k, k = {k}", 2 * (y_hat - Y) / k if same else None)
    formula = getattr(loss_fn, "formula", None) or f"L = {name}(ŷ, y)"
    return name, formula, None, None


# -- the check ---------------------------------------------------------------------------
def _check(layers, references, lr: float, m: int, dA_out_formula, dA_out_expected) -> dict:
    """Each textbook formula evaluated in NumPy from the engine's values, versus the engine.

    Returns formula -> largest absolute difference. ``references`` holds each layer's NumPy
    (f, f'), (None, None) for activations not written out here (their A and f' go unchecked;
    dZ = dA ⊙ f'(Z) is still checked with the engine's f').
    """
    out = {}

    def diff(key, engine, formula):
        if engine is None or formula is None:
            return
        d = np.abs(np.asarray(engine, np.float64) - np.asarray(formula, np.float64))
        out[key] = float(np.max(d, initial=0.0))

    if dA_out_expected is not None:
        diff(f"dA[{len(layers)}] = {dA_out_formula}", layers[-1].dA, dA_out_expected)
    for L, (f, fp) in zip(layers, references, strict=True):
        l = L.index
        bias = 0 if L.b is None else L.b
        diff(f"Z[{l}] = W[{l}]·A[{l - 1}] + b[{l}]", L.Z, L.W @ L.A_prev + bias)
        if f is not None:
            diff(f"A[{l}] = {L.symbol}(Z[{l}])", L.A, f(L.Z))
            diff(f"{L.symbol}'(Z[{l}])", L.fprime, fp(L.Z))
        diff(f"dZ[{l}] = dA[{l}] ⊙ {L.symbol}'(Z[{l}])", L.dZ, L.dA * L.fprime)
        diff(f"dW[{l}] = dZ[{l}]·A[{l - 1}]ᵀ / m", L.dW, L.dZ @ L.A_prev.T / m)
        if L.db is not None:
            diff(f"db[{l}] = Σ dZ[{l}] / m", L.db, L.dZ.sum(axis=1, keepdims=True) / m)
        diff(f"dA[{l - 1}] = W[{l}]ᵀ·dZ[{l}]", L.dA_prev, L.W.T @ L.dZ)
        diff(f"W[{l}] ← W[{l}] − α·dW[{l}]", L.W_new, L.W - lr * L.dW)
        if L.b is not None:
            diff(f"b[{l}] ← b[{l}] − α·db[{l}]", L.b_new, L.b - lr * L.db)
    return out


# -- printing ----------------------------------------------------------------------------
def _format_matrix(a: np.ndarray) -> list[str]:
    """Rows of a matrix as text, columns aligned, the largest entry with SIGNIFICANT digits."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        a = a.reshape(1, -1)
    rows, cols = a.shape
    row_idx = list(range(rows)) if rows <= MAX_ROWS else \
        list(range(MAX_ROWS - 2)) + [None] + [rows - 1]
    col_idx = list(range(cols)) if cols <= MAX_COLS else \
        list(range(MAX_COLS - 2)) + [None] + [cols - 1]
    spec = _number_format(a)
    cells = [[("⋯" if c is None else _fmt(a[r, c], spec)) if r is not None else "⋮"
              for c in col_idx] for r in row_idx]
    width = max(len(c) for row in cells for c in row)
    return ["[" + "  ".join(c.rjust(width) for c in row) + "]" for row in cells]


def _number_format(a: np.ndarray) -> str:
    finite = np.abs(a[np.isfinite(a)])
    nonzero = finite[finite > 0]
    if nonzero.size == 0:
        return f".{SIGNIFICANT}f"
    amax, amin = float(nonzero.max()), float(nonzero.min())
    # Fixed point reads best, but would hide small entries next to large ones.
    if amax >= 1e6 or amax < 1e-4 or amax / amin >= 1e4:
        return f".{SIGNIFICANT - 1}e"
    decimals = SIGNIFICANT - 1 - math.floor(math.log10(amax))
    return f".{max(decimals, 0)}f"


def _fmt(v: float, spec: str) -> str:
    if not math.isfinite(v):
        return str(v)
    return format(v + 0.0, spec)  # + 0.0 turns -0.0 into 0.0


def _scalar(v: float) -> str:
    return _fmt(v, _number_format(np.array([v])))


def _shape(a) -> str:
    return "" if a is None else "×".join(str(s) for s in np.shape(a))


def _render(t: Trace) -> str:
    n = len(t.layers)
    sizes = [t.layers[0].W.shape[1]] + [L.W.shape[0] for L in t.layers]
    chain = " → ".join(
        ["A[0]"] + [f"Linear({L.W.shape[1]}→{L.W.shape[0]})" +
                    ("" if L.kind == "identity" else f" → {L.symbol}") for L in t.layers] + ["ŷ"])
    entries: list = []   # ("h", text) | ("t", text) | ("v", label, array | float, note)

    def head(text):
        entries.append(("h", text))

    def text(s):
        entries.append(("t", s))

    def value(label, arr, note=""):
        entries.append(("v", label, arr, note))

    head(f"backprop explain: one step of gradient descent on a {'-'.join(map(str, sizes))} "
         f"network, every number from the engine")
    text(f"network   {chain}")
    text(f"data      m = {t.m} sample{'s' if t.m != 1 else ''}; columns are samples "
         f"(A[0] = Xᵀ is {_shape(t.X)})")
    text(f"loss      {t.loss_formula}  ({t.loss_name})")
    text(f"update    θ ← θ − α·dθ, α = {t.lr:g}; numbers in {_dtype_name(t.dtype)}")
    text("notation  dV = m·∂L/∂V, the gradient per sample"
         + (" (here m = 1, so dV = ∂L/∂V)" if t.m == 1 else ""))
    text("          ⊙ is the element-wise product, Σ sums over the samples")

    head("Forward pass")
    value("A[0] = Xᵀ", t.X)
    for L in t.layers:
        l = L.index
        act = "no activation" if L.activation is None else \
            f"{L.kind} = model[{L.activation}]"
        lin = f"model[{L.linear}]" if L.linear else "the model"
        text(f"layer {l}: Linear({L.W.shape[1]}→{L.W.shape[0]}) = {lin}, {act}")
        value(f"W[{l}]", L.W)
        if L.b is not None:
            value(f"b[{l}]", L.b)
        value(f"Z[{l}] = W[{l}]·A[{l - 1}]" + (f" + b[{l}]" if L.b is not None else ""), L.Z)
        value(f"A[{l}] = {L.symbol}(Z[{l}])" if L.kind != "identity" else f"A[{l}] = Z[{l}]",
              L.A)
    value(f"ŷ = A[{n}]", t.y_hat)
    value("y", t.y, "(target)")
    value(t.loss_formula, t.loss)

    head("Backward pass (the chain rule, from the loss back to the input)")
    last = t.layers[-1]
    value(f"dA[{n}] = " + (t.dA_out_formula or "m·∂L/∂ŷ"), last.dA)
    for L in reversed(t.layers):
        l = L.index
        text(f"layer {l}")
        value(f"{L.symbol}'(Z[{l}])", L.fprime, L.fprime_formula)
        value(f"dZ[{l}] = dA[{l}] ⊙ {L.symbol}'(Z[{l}])", L.dZ)
        value(f"dW[{l}] = dZ[{l}]·A[{l - 1}]ᵀ / m", L.dW, "= ∂L/∂W, the parameter's .grad")
        if L.db is not None:
            value(f"db[{l}] = Σ dZ[{l}] / m", L.db, "(sum over samples) = .grad of the bias")
        value(f"dA[{l - 1}] = W[{l}]ᵀ·dZ[{l}]", L.dA_prev,
              "(reaches the input; nothing is updated with it)" if l == 1 else "")

    head(f"Update (plain gradient descent, α = {t.lr:g})")
    for L in t.layers:
        l = L.index
        value(f"W[{l}] ← W[{l}] − α·dW[{l}]", L.W_new)
        if L.b is not None:
            value(f"b[{l}] ← b[{l}] − α·db[{l}]", L.b_new)

    head("Result")
    value("loss before", t.loss)
    change = t.loss_after - t.loss
    rel = f" ({100 * change / t.loss:+.2f}%)" if t.loss != 0 else ""
    value("loss after", t.loss_after, f"change {_scalar(change)}{rel}")
    value("ŷ after the step", t.y_hat_after)

    lines: list[str] = []
    label_w = max(len(e[1]) for e in entries if e[0] == "v")
    shape_w = max(len(_shape(e[2])) for e in entries if e[0] == "v" and not _is_scalar(e[2]))
    for e in entries:
        if e[0] == "h":
            lines += ["", e[1]] if lines else [e[1]]
        elif e[0] == "t":
            lines.append("  " + e[1])
        else:
            _, label, arr, note = e
            if _is_scalar(arr):
                rows, shape = [" " + _scalar(float(arr))], ""
            else:
                rows, shape = _format_matrix(arr), _shape(arr)
            pad = "  " + " " * label_w + "  " + " " * shape_w + "  "
            first = f"  {label.ljust(label_w)}  {shape.rjust(shape_w)}  {rows[0]}"
            lines.append((first + ("   " + note if note else "")).rstrip())
            lines += [pad + r for r in rows[1:]]
    lines += ["", str(t.blame)]
    worst = t.max_check_error
    agree = "exactly" if worst == 0 else f"to within {worst:.1e}"
    lines += ["", "Check: every value above is the engine's own (forward tensors, retained "
                  "gradients of Z and A,",
              f"the parameters' .grad); the {len(t.check)} textbook formulas, evaluated in "
              f"NumPy from them, agree {agree}."]
    return "\n".join(lines)


def _dtype_name(dtype) -> str:
    return str(dtype).rsplit(".", 1)[-1]


def _is_scalar(v) -> bool:
    return isinstance(v, float)
