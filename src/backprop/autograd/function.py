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
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from backprop.autograd.grad_mode import anomaly_state
from backprop.autograd.grad_mode import state as _state
from backprop.errors import AnomalyError
from backprop.tensor import Tensor, clock

_new = object.__new__
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

class Node:
    """The context of one recorded op and its node in the graph (a tensor's ``grad_fn``).

    ``forward`` and ``backward`` receive it as ``ctx``: ``save_for_backward(*arrays)``
    / ``saved_tensors``, ``needs_input_grad`` (one bool per positional argument), and
    any attribute an op sets (``ctx.dim = dim``). ``op`` is the Function subclass.

    One class serves every op (as PyTorch's C++ nodes do), so the engine's attribute
    accesses always see the same type, which keeps the hottest Python fast.
    """

    __slots__ = ("op", "inputs", "needs_input_grad", "saved_tensors", "seq", "_hooks",
                 "_trace", "__dict__", "__weakref__")
    op: type[Function]
    inputs: tuple | None  # None once backward has freed them
    needs_input_grad: tuple
    saved_tensors: tuple
    seq: int
    _hooks: list | None
    _trace: Any

    def save_for_backward(self, *arrays) -> None:
        """Keep the arrays that backward needs; they are freed once backward has run."""
        self.saved_tensors = arrays

    def name(self) -> str:
        """The node's name, PyTorch's class name for it: ``MulBackward0``, ``MeanBackward1``.

        Built-in ops are named as PyTorch names them (``Function.backward_name``); a
        Function you write is ``<YourClass>Backward``, as in PyTorch.
        """
        named = self.__dict__.get("backward_name")  # set by the call that made the node
        if named is not None:
            return named
        named = self.op.backward_name
        return named if isinstance(named, str) else named(self)

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    @property
    def next_functions(self) -> tuple:
        """``(node, input_nr)`` per tensor input, in input order, as in PyTorch.

        ``node`` is the ``grad_fn`` that made the input, an :class:`AccumulateGrad` for a
        leaf that requires grad, or ``None`` for an input that needs no gradient;
        ``input_nr`` is that node's output index (always 0: a backprop op has one
        output). Plain values (a dim, a Python number) have no entry.
        """
        inputs = getattr(self, "inputs", None)
        if inputs is None:
            return ()  # never recorded, or freed by backward
        return tuple((_next_node(self, t), 0) for t in inputs if t is not None)

    @property
    def metadata(self) -> dict:
        """A dict you may fill with anything to keep alongside this node (PyTorch's ``metadata``)."""
        meta = self.__dict__.get("_metadata")
        if meta is None:
            meta = self.__dict__["_metadata"] = {}
        return meta

    def register_hook(self, hook):
        """Call ``hook(grad_output)`` with this node's incoming gradient (a Tensor)."""
        from backprop.autograd.hooks import RemovableHandle

        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)


class AccumulateGrad:
    """The node behind a leaf that requires grad: backward adds the gradient into ``variable.grad``.

    It only appears in ``next_functions`` (the engine accumulates into leaves
    directly); the same leaf gives the same node while anything holds it, as in
    PyTorch.

    Example::

        w = backprop.ones(2, requires_grad=True)
        (node, _), = (w * 2).grad_fn.next_functions[:1]
        node.variable is w        # True
    """

    __slots__ = ("variable", "_metadata", "__weakref__")

    def __init__(self, variable: Tensor):
        self.variable = variable
        self._metadata: dict | None = None

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"

    @property
    def next_functions(self) -> tuple:
        return ()

    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    def register_hook(self, hook):
        """Call ``hook(grad)`` with the gradient about to be accumulated into ``variable``."""
        return self.variable.register_hook(hook)


# leaf id -> its AccumulateGrad. The node holds its leaf, so an id here is never reused
# while its entry lives; the entry goes when nothing holds the node.
_accumulators: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _next_node(node: Node, t: Tensor):
    """What ``next_functions`` shows for input ``t`` of ``node``."""
    parent = _history(node, t)
    if parent is not t:
        return parent
    if not t._requires_grad:
        return None
    acc = _accumulators.get(id(t))
    if acc is None or acc.variable is not t:
        acc = _accumulators[id(t)] = AccumulateGrad(t)
    return acc


def _history(node: Node, t: Tensor):
    """The node that made the value ``node`` read from input ``t``, or ``t`` for a leaf.

    A recorded in-place write gives a tensor a new ``grad_fn``, whose ``_prev`` is the
    one before: a node recorded before the write read the value the older one made.
    """
    parent = t.grad_fn
    while parent is not None and parent.seq >= node.seq:
        parent = parent._prev
    return t if parent is None else parent


def named(result: Tensor, name: str) -> Tensor:
    """Give the node that just made ``result`` PyTorch's name for this call (``TBackward0``).

    For a Function that serves several PyTorch ops (``Permute`` is ``permute``,
    ``transpose`` and ``t``); costs nothing when no graph was recorded.
    """
    fn = result.grad_fn
    if fn is not None:
        fn.backward_name = name
    return result


class Function:
    """Base class of differentiable ops. Subclass it and write ``forward`` and ``backward``.

    ``forward(ctx, *args, **kwargs)`` receives the arrays of tensor arguments (and
    other arguments unchanged) and returns one array. ``backward(ctx, grad_output)``
    returns one gradient per positional argument of ``forward``, in order, ``None``
    where an argument needs none; a single gradient may be returned bare. The engine
    checks the count and reduces broadcast gradients to each input's shape, so
    ``backward`` may return a gradient in the broadcast (output) shape. A new array
    that ``backward`` returns may become a leaf's ``.grad`` without a copy, so do not
    keep it anywhere else (in a ``ctx`` attribute, say) unless it is one of the
    ``saved_tensors``, which the engine checks for.

    ``ctx`` is the op's graph node (a ``Node``): ``save_for_backward(*arrays)`` /
    ``saved_tensors``, ``needs_input_grad`` (one bool per positional argument), and
    any attribute you set (``ctx.dim = dim``). ``result.grad_fn.op`` is your class.
    """

    #: every subclass by qualified name, so tests can sweep all built-in ops
    registry: dict[str, type] = {}

    #: the name of this op's graph node (``grad_fn.name()``): PyTorch's where it has one.
    #: A string, or a function of the node (``ctx``) for an op whose name depends on its
    #: arguments (``SumBackward0`` / ``SumBackward1``). Left out, it is ``<Class>Backward0``
    #: for backprop's own ops and ``<Class>Backward`` for yours, as PyTorch names them.
    backward_name: str | Callable[[Node], str] = "FunctionBackward"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Function.registry[f"{cls.__module__}.{cls.__qualname__}"] = cls
        if "backward_name" not in cls.__dict__:
            own = cls.__module__.startswith("backprop.")
            cls.backward_name = f"{cls.__name__}Backward{'0' if own else ''}"

    # -- the two methods a subclass writes ---------------------------------
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError("Function subclasses must implement backward(ctx, grad_output)")

    # -- linking into the graph ----------------------------------------------
    @classmethod
    def apply(cls, *args, **kwargs):
        """Run the op on tensors (or plain values) and record it for backward."""
        if _capply is not None and not kwargs:
            n = len(args)
            if n == 2:
                return _capply[1](cls, args[0], args[1])
            if n == 1:
                return _capply[0](cls, args[0])
            return _capply[2](cls, *args)
        return _apply(cls, args, kwargs)


def _apply(cls, args, kwargs):
    """Function.apply in Python: the reference that ``_cengine``'s apply functions follow."""
    ctx = _new(Node)
    ctx.op = cls
    ctx.saved_tensors = ()
    ctx._hooks = None
    record = False
    # NOTE: one and two arguments are unrolled, and the call to forward avoids
    # ``**kwargs`` when there are none: this is the hottest Python of the pure-Python
    # engine, and the generic path below costs several hundred ns more per op.
    if len(args) == 2:
        a, b = args
        if isinstance(a, Tensor):
            da, ra = a._data, a._requires_grad
            inputs = args if isinstance(b, Tensor) else (a, None)
        else:
            da, ra = a, False
            inputs = (None, b)
        if isinstance(b, Tensor):
            db, rb = b._data, b._requires_grad
        else:
            db, rb = b, False
        if (ra or rb) and _state.enabled:
            record = True
            ctx.needs_input_grad = _NEEDS2[ra + 2 * rb]  # a shared tuple: no allocation
        else:
            ctx.needs_input_grad = _NO_GRAD2
        out = cls.forward(ctx, da, db, **kwargs) if kwargs else cls.forward(ctx, da, db)
    elif len(args) == 1:
        a = args[0]
        inputs = args
        if isinstance(a, Tensor):
            if a._requires_grad and _state.enabled:
                record = True
                ctx.needs_input_grad = _GRAD1
            else:
                ctx.needs_input_grad = _NO_GRAD1
            a = a._data
        else:
            ctx.needs_input_grad = _NO_GRAD1
        out = cls.forward(ctx, a, **kwargs) if kwargs else cls.forward(ctx, a)
    else:
        if _state.enabled:
            needs = tuple([isinstance(a, Tensor) and a._requires_grad for a in args])
            record = True in needs
        else:
            needs = (False,) * len(args)
        ctx.needs_input_grad = needs
        inputs = tuple([a if isinstance(a, Tensor) else None for a in args])
        out = cls.forward(ctx, *[a._data if isinstance(a, Tensor) else a for a in args],
                          **kwargs)
    if type(out) is not np.ndarray:
        out = _as_output(cls, out)
    if anomaly_state.enabled:
        _anomaly_forward(ctx, out)
    # The result: a copy of backprop.tensor._init_fields, inlined (one call fewer per op);
    # keep the two, and _cengine.c's new_tensor, setting the same fields.
    result = _new(Tensor)
    result._data = out
    result.grad = None
    result._version = 0
    result._hooks = None
    if record:
        ctx.inputs = inputs  # the node's parents: the tensor arguments, None for values
        ctx.seq = next(clock)
        result._requires_grad = True
        result.grad_fn = ctx
    else:
        result._requires_grad = False
        result.grad_fn = None
    return result


_GRAD1, _NO_GRAD1, _NO_GRAD2 = (True,), (False,), (False, False)
_NEEDS2 = (_NO_GRAD2, (True, False), (False, True), (True, True))


def _as_output(cls, out) -> np.ndarray:
    """A forward's result as an array; a tuple or list is refused (one Function per output)."""
    if isinstance(out, (tuple, list)):
        raise TypeError(f"{cls.__name__}.forward returned a {type(out).__name__}: a "
                        f"Function returns one array (write one Function per output)")
    return out._data if isinstance(out, Tensor) else np.asarray(out)


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
        raise AnomalyError(f"detect_anomaly: {ctx.op.__name__} produced {bad} in its forward "
                           f"output of shape {out.shape}.\nThe op was called at:\n"
                           f"{_user_frame(stack)}")


def _load_accelerator():
    """``(apply1, apply2, applyn)`` from the C accelerator (``_cengine.c``), or None."""
    from backprop.autograd.engine import _accel

    if _accel is None:
        return None
    _accel.setup_apply(Node, Tensor, _state, anomaly_state, clock, _NEEDS2, _GRAD1, _NO_GRAD1,
                       _as_output, _anomaly_forward)
    return _accel.apply1, _accel.apply2, _accel.applyn


_capply = _load_accelerator()
