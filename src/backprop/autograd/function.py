"""``Function``: the one way to define a differentiable op, built-in or user-written.

A Function subclass writes ``forward(ctx, *inputs)`` and ``backward(ctx, grad_output)``
as static methods. ``apply`` unwraps tensors into arrays, runs ``forward``, and, when
any input requires a gradient and grad mode is on, links the result into the graph:
the context object *is* the graph node (``result.grad_fn``).

Inside ``forward`` and ``backward`` you work on arrays (``numpy.ndarray``), not
tensors. This is a deliberate departure from PyTorch, where both see tensors: it
keeps the per-op cost small and makes an op's maths plain NumPy. The price is that
backward itself is not differentiable (no higher-order gradients).

Example: a custom op with its gradient check::

    import numpy as np
    from backprop.autograd import Function, gradcheck

    class Cube(Function):
        '''y = x³;  dy/dx = 3x²'''

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x ** 2

    x = backprop.randn(5, dtype=backprop.float64, requires_grad=True)
    Cube.apply(x).sum().backward()           # x.grad == 3 x²
    gradcheck(Cube.apply, (x,))              # True, or an error naming the element
"""
from __future__ import annotations

import os
import traceback

import numpy as np

from backprop.autograd.grad_mode import state as _state
from backprop.errors import AnomalyError
from backprop.tensor import Tensor, _make

_new = object.__new__
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# Every in-place change to a tensor stamps it with the next value of this clock,
# and every graph node remembers the clock when it was made. At backward time a
# node only needs a closer look when an input's stamp is newer than the node.
_clock = [0]


def tick() -> int:
    """Advance the in-place clock and return the new stamp (used by in-place ops)."""
    _clock[0] += 1
    return _clock[0]


class Function:
    """Base class of differentiable ops. Subclass it and write ``forward`` and ``backward``.

    ``forward(ctx, *args, **kwargs)`` receives the arrays of tensor arguments (and
    other arguments unchanged) and returns one array. ``backward(ctx, grad_output)``
    returns one gradient per positional argument of ``forward``, in order, ``None``
    where an argument needs none; a single gradient may be returned bare. The engine
    checks the count and reduces broadcast gradients to each input's shape, so
    ``backward`` may return a gradient in the broadcast (output) shape.

    On ``ctx``: ``save_for_backward(*arrays)`` / ``saved_tensors``,
    ``needs_input_grad`` (one bool per positional argument), and any attribute you
    set (``ctx.dim = dim``).
    """

    __slots__ = ("inputs", "needs_input_grad", "saved_tensors", "_stamp", "_hooks", "__dict__",
                 "__weakref__")

    #: every subclass by qualified name, so tests can sweep all built-in ops
    registry: dict[str, type] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Function.registry[f"{cls.__module__}.{cls.__qualname__}"] = cls

    # -- the two methods a subclass writes ---------------------------------
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Function subclasses must implement backward(ctx, grad_output)")

    # -- context API --------------------------------------------------------
    def save_for_backward(self, *arrays) -> None:
        """Keep the arrays that backward needs; they are freed once backward has run."""
        self.saved_tensors = tuple(a._data if isinstance(a, Tensor) else a for a in arrays)

    def name(self) -> str:
        """The node's name as shown in ``grad_fn``: ``MulBackward``."""
        return type(self).__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    @property
    def next_functions(self):
        """The nodes (or leaf tensors) whose gradients this node produces, in input order."""
        if not hasattr(self, "inputs"):
            return ()
        return tuple(None if t is None else (t.grad_fn if t.grad_fn is not None else t)
                     for t in self.inputs)

    def register_hook(self, hook):
        """Call ``hook(grad_output)`` with this node's incoming gradient (a Tensor)."""
        from backprop.autograd.hooks import RemovableHandle

        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    # -- linking into the graph ----------------------------------------------
    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on tensors (or plain values) and record it for backward."""
        ctx = _new(cls)
        enabled = _state.enabled
        record = False
        datas = []
        needs = []
        for a in args:
            if isinstance(a, Tensor):
                datas.append(a._data)
                if enabled and a._requires_grad:
                    needs.append(True)
                    record = True
                else:
                    needs.append(False)
            else:
                datas.append(a)
                needs.append(False)
        ctx.needs_input_grad = tuple(needs)
        ctx.saved_tensors = ()
        ctx._hooks = None
        out = cls.forward(ctx, *datas, **kwargs)
        if type(out) is not np.ndarray:
            out = out._data if isinstance(out, Tensor) else np.asarray(out)
        if _state.anomaly:
            _anomaly_forward(ctx, out)
        if record:
            ctx.inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
            ctx._stamp = _clock[0]
            return _make(out, True, ctx)
        return _make(out, False, None)


def _user_frame(stack) -> str:
    """The innermost frame outside backprop's own package: where the user called the op."""
    for frame in reversed(stack):
        if not frame.filename.startswith(_PKG_DIR):
            return f'File "{frame.filename}", line {frame.lineno}, in {frame.name}\n    {frame.line}'
    frame = stack[-1]
    return f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'


def _anomaly_forward(ctx, out) -> None:
    stack = traceback.extract_stack()[:-2]
    ctx._trace = stack
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        bad = "NaN" if np.isnan(out).any() else "Inf"
        raise AnomalyError(f"detect_anomaly: {type(ctx).__name__} produced {bad} in its forward "
                           f"output of shape {out.shape}.\nThe op was called at:\n"
                           f"{_user_frame(stack)}")
