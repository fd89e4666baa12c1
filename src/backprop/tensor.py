"""``Tensor``: an n-dimensional array that remembers how it was made.

A tensor holds a NumPy array, and, when it requires a gradient and was produced
by an op, the graph node (``grad_fn``) that made it. Operators and methods call
into ``backprop.ops``; nothing here does maths of its own.
"""
from __future__ import annotations

import builtins
import collections
import itertools
import numbers
import typing
import weakref

import numpy as np

from backprop import _tensor_str
from backprop import dtypes as _dt
from backprop.autograd.grad_mode import state as _state

# DeviceError is imported here too, for the modules that import it from backprop.tensor.
from backprop.errors import DeviceError, DTypeError, GradError, InplaceError, ShapeError

_new = object.__new__

# One clock orders events: every graph node takes the next number when it is
# recorded (``ctx.seq``) and every in-place change stamps the tensor it changes
# (``tensor._version``) and ``last_inplace[0]``. Nodes recorded later always have
# larger numbers than their inputs' nodes, so descending ``seq`` is a valid reverse
# topological order; and a node only needs an in-place check at backward time
# when ``last_inplace[0] > node.seq``.
clock = itertools.count(1)
last_inplace = [0]


# The arrays changed in place, newest last, as (stamp, weak reference or None, bounds,
# region, recorded). Aliases (detach(), .data, from_numpy) share an array but not a
# Tensor, so backward checks saved arrays against this log as well as against each
# input's ``_version``.
inplace_log: collections.deque = collections.deque(maxlen=4096)

# The stamp of the newest in-place write that was recorded in the graph (a write into a
# tensor that is part of it: ``y[0] = 5``, ``y.add_(w)``). Such a write gives the tensor
# a new ``grad_fn``; backward only has to look for older history when this is newer
# than the nodes it walks.
last_write = [0]


def _log_inplace(array, recorded: bool = False) -> int:
    """Stamp an in-place change of ``array``: advance the clock, log it, return the stamp.

    The log names the memory that changed: the ndarray that owns it (weakly), and for
    a view the byte range the view covered (``bounds``) and its exact layout
    (``region``: address, shape, strides, dtype), since a view such as
    ``w.detach()[0:1]`` is gone by the time backward runs. Memory that no ndarray owns
    (``np.frombuffer`` over a bytearray, a memory map) may have only temporary ndarrays
    over it, so there the log keeps the byte range alone: an array saved before the
    change is still alive, so any change since to bytes inside its range was to its own
    memory. ``recorded`` marks a write the graph recorded (see ``last_write``).
    """
    v = next(clock)
    last_inplace[0] = v
    if recorded:
        last_write[0] = v
    base = array.base
    if base is None:
        inplace_log.append((v, weakref.ref(array), None, None, recorded))
        return v
    bounds = byte_bounds(array)
    # (a list: ``touches`` swaps in the ndarray it builds from this, for the next check)
    region = [(array.__array_interface__["data"][0], array.shape, array.strides,
               array.dtype.str)]
    while isinstance(base, np.ndarray):
        array, base = base, base.base
    inplace_log.append((v, weakref.ref(array) if base is None else None, bounds, region,
                        recorded))
    return v


def byte_bounds(a: np.ndarray) -> tuple:
    """The addresses ``[low, high)`` of the memory that array ``a`` can reach."""
    low = high = a.__array_interface__["data"][0]
    for n, stride in zip(a.shape, a.strides, strict=True):
        if n == 0:
            return low, low
        if stride < 0:
            low += (n - 1) * stride
        else:
            high += (n - 1) * stride
    return low, high + a.itemsize


def touches(saved: np.ndarray, owner, bounds, region) -> bool:
    """Whether a logged in-place change (``owner``, ``bounds``, ``region``) reached ``saved``.

    ``owner`` is the array that owns the changed memory (None when no ndarray does), and
    must be alive. The byte range is checked first (cheap); where it overlaps, the exact
    layouts decide, so ``w[1::2]`` changed does not flag a saved ``w[::2]``.
    """
    if owner is not None and not np.may_share_memory(saved, owner):
        return False
    if bounds is None:
        return True
    low, high = byte_bounds(saved)
    if not (low < bounds[1] and bounds[0] < high and low < high and bounds[0] < bounds[1]):
        return False
    if region is None:
        return True
    layout = region[0]
    if type(layout) is tuple:
        layout = region[0] = _region_array(layout)
    return shares(saved, layout)


def shares(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether arrays ``a`` and ``b`` share an element's bytes (exactly; True if too hard)."""
    try:
        # (NumPy takes any bound; its stub lists only -1 and 0)
        return bool(np.shares_memory(a, b, max_work=100_000))  # type: ignore[arg-type]
    except _TooHard:  # pragma: no cover - layouts this tangled are rare
        return True


_TooHard = getattr(np, "exceptions", np).TooHardError  # (np.exceptions from NumPy 1.25)


class _Region:
    """An ndarray interface over logged memory, which it does not keep alive: only used
    while an array saved over that memory lives (see ``_log_inplace``)."""

    def __init__(self, region):
        address, shape, strides, typestr = region
        self.__array_interface__ = {"data": (address, True), "shape": shape,
                                    "strides": strides, "typestr": typestr, "version": 3}


def _region_array(region) -> np.ndarray:
    return np.asarray(_Region(region))


def _engine_backward(*args) -> None:
    """``backprop.autograd.engine.backward``, imported on the first call (the engine
    imports this module), which then puts the engine's function in this one's place."""
    global _engine_backward
    from backprop.autograd.engine import backward

    _engine_backward = backward
    backward(*args)


def tick() -> int:
    """Advance the clock for an in-place change made outside Tensor's own methods."""
    v = next(clock)
    last_inplace[0] = v
    return v


def _init_fields(t, data, requires_grad: bool = False, grad_fn=None) -> None:
    """Set every field of a new Tensor (its ``__slots__``): the one list of them.

    Tensor(), Parameter(), Buffer() and :func:`_make` call it. Two hot paths copy it
    instead, for speed, and must follow any change here: ``autograd.function._apply``
    (the result of every op) and ``_cengine.c``'s ``new_tensor`` (the ``t_*`` slot
    offsets). tests/test_tensor_fields.py checks that all of them set every slot.
    """
    t._data = data
    t._requires_grad = requires_grad
    t.grad_fn = grad_fn
    t.grad = None
    t._version = 0
    t._hooks = None


def _make(data, requires_grad: bool = False, grad_fn=None) -> Tensor:
    """Wrap an array in a Tensor with no checks: the engine's fast path."""
    t = _new(Tensor)
    _init_fields(t, data, requires_grad, grad_fn)
    return t


class Size(tuple):
    """A tensor's shape (``x.shape``, ``x.size()``): a tuple of ints, as PyTorch's ``torch.Size``.

    It equals, hashes and unpacks as the plain tuple; slicing it, adding a tuple to it
    or repeating it gives a Size. It prints as PyTorch prints a shape,
    ``torch.Size([10, 512])``, so printed output reads as in PyTorch's tutorials.

    Example::

        x = backprop.zeros(10, 512)
        x.shape             # torch.Size([10, 512])
        x.shape == (10, 512), x.shape.numel(), x.shape[1:]   # True, 5120, torch.Size([512])
    """

    __slots__ = ()

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds."""
        n = 1
        for s in self:
            n *= s
        return n

    # NOTE: an int index stays tuple's own C path apart from this one Python call; the
    # library itself reads ``x._data.shape`` where it is hot.
    def __getitem__(self, index):
        out = tuple.__getitem__(self, index)
        return Size(out) if type(index) is slice else out

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def __mul__(self, n):
        return Size(tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"torch.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__


# Device types PyTorch's parser knows; backprop names them all but computes on "cpu" only.
_DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                 "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
                 "privateuseone")


class Device:
    """A device, as ``backprop.device("cuda:0")``: any of PyTorch's device types can be named.

    Naming a device never fails for a known type; putting a tensor there does, unless it is
    the CPU, where backprop computes.

    Args:
        type: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ... or another Device.
        index: the device's index (``device("cuda", 0)``), or None.

    Example::

        backprop.device("cuda", 0)    # device(type='cuda', index=0)
        backprop.device("cpu").type   # 'cpu'
    """

    __slots__ = ("type", "index")
    type: str
    index: int | None

    def __init__(self, type="cpu", index: int | None = None):  # noqa: A002
        if isinstance(type, Device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, (int, np.integer)) and not isinstance(type, bool):
            # device(0) means "accelerator 0" in PyTorch; there is none here.
            raise DeviceError(f"device({type}): cannot access an accelerator device: none is "
                              f"available (backprop computes on the CPU only)")
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string or device, got {_type(type).__name__}")
        name, colon, idx = type.partition(":")
        if name not in _DEVICE_TYPES:
            raise DeviceError(f"device(): expected one of {', '.join(_DEVICE_TYPES)} device "
                              f"type at start of device string: {type}")
        if colon:
            if not idx.isdigit() or (len(idx) > 1 and idx[0] == "0") or index is not None:
                raise DeviceError(f"device(): invalid device string: {type!r}")
            index = int(idx)
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
                raise DeviceError(f"device(): device index must be a non-negative int, "
                                  f"got {index!r}")
            index = int(index)
        self.type = name
        self.index = index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        # NOTE: unlike PyTorch, a string compares too (x.device == "cpu"), which old code uses.
        if isinstance(other, str):
            try:
                other = Device(other)
            except (DeviceError, TypeError):
                return False
        return isinstance(other, Device) and (other.type, other.index) == (self.type, self.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):
        return (Device, (self.type, self.index))

    def __enter__(self) -> Device:
        # ``with backprop.device("cpu"):`` makes it the default device inside the block.
        _device_stack.append(_default_device[0])
        _default_device[0] = self
        return self

    def __exit__(self, *exc) -> None:
        _default_device[0] = _device_stack.pop()


_type = type  # the builtin, shadowed by Device's argument name
# The device creation functions use when given none (set_default_device); None is the CPU.
_default_device: list = [None]
_device_stack: list = []  # the defaults that enclosing ``with device(...)`` blocks replaced


def _resolve_device(device) -> Device | None:
    """A Device from what the user passed (str, Device, None for the default)."""
    if device is None:
        device = _default_device[0]
        if device is None:
            return None
    return device if isinstance(device, Device) else Device(device)


def _check_device(device, op: str) -> None:
    """Refuse, with a clear message, to put a tensor on a device other than the CPU.

    ``device=None`` means the default device (``set_default_device``), the CPU unless changed.
    """
    try:
        dev = _resolve_device(device)
    except DeviceError as e:
        raise DeviceError(f"{op}: {e}") from None
    if dev is not None and dev.type != "cpu":
        raise DeviceError(f"{op}: device {str(dev)!r} is not available: backprop computes on the "
                          f"CPU only (its arrays are NumPy arrays); use device='cpu' or leave "
                          f"device out")


def _check_cuda(device, op: str) -> None:
    """``x.cuda(device)`` / ``module.cuda(device)``: always refused, through ``_check_device``.

    ``device`` is None (the current CUDA device), an index or a CUDA device, as in PyTorch.
    """
    index = device is None or isinstance(device, (int, np.integer)) and not isinstance(device, bool)
    try:
        device = Device("cuda", device) if index else _resolve_device(device)
    except DeviceError as e:
        raise DeviceError(f"{op}: {e}") from None
    if device.type != "cuda":
        raise DeviceError(f"{op}: invalid device {str(device)!r}, must be a CUDA device")
    _check_device(device, op)


def _size_arg(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


_SCALARS = (numbers.Number, np.generic)
_OPERANDS = (float, int, np.ndarray, np.generic, numbers.Real)  # concrete types first


class Tensor:
    """A NumPy-backed tensor with reverse-mode automatic differentiation.

    Create tensors with :func:`backprop.tensor`, :func:`backprop.zeros`,
    :func:`backprop.randn` and friends rather than this constructor.

    Example::

        x = backprop.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        y.backward()
        x.grad          # tensor([2., 4.])
    """

    __slots__ = ("_data", "_requires_grad", "grad_fn", "grad", "_version", "_hooks",
                 "__weakref__")
    grad: Tensor | None  # for editors and type checkers (tensor.pyi); the slot holds it
    _data: np.ndarray

    if typing.TYPE_CHECKING:  # installed by backprop.ops (tensor.pyi lists all); this file calls these
        def clone(self) -> Tensor: ...
        def cast(self, dtype) -> Tensor: ...

    # NumPy must hand mixed expressions (ndarray * Tensor) to our reflected operators.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, *args, dtype=None, requires_grad: bool = False):
        # PyTorch's legacy constructor: Tensor(2, 3) is a (2, 3) tensor, Tensor([1, 2])
        # and Tensor(array) hold the data; both give the default float dtype.
        if args and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                        for a in args):
            arr = np.zeros(args, dtype=_dt.to_numpy_dtype(dtype) if dtype is not None
                           else _dt.default_float)
        elif len(args) == 1:
            arr = _to_array(args[0], dtype if dtype is not None else _dt.default_float)
        elif not args:
            arr = np.zeros((0,), dtype=_dt.default_float)
        else:
            raise TypeError(f"Tensor(): expected sizes (ints) or one piece of data, got {args!r}")
        _init_fields(self, arr)
        if requires_grad:
            self.requires_grad_(True)

    # -- basic attributes ------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's storage but outside the graph (as ``x.data`` in PyTorch)."""
        return _make(self._data)

    @data.setter
    def data(self, value) -> None:
        arr = value._data if isinstance(value, Tensor) else np.asarray(value)
        self._data = arr

    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> _dt.dtype:
        return _dt.from_numpy_dtype(self._data.dtype)

    @property
    def device(self) -> Device:
        return Device("cpu")

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by an op on tensors requiring grad."""
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Start (or stop) recording operations on this leaf tensor. Returns self."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise GradError("requires_grad_: you can only change requires_grad of leaf "
                                "tensors; use detach() to get a tensor outside the graph")
            return self
        if requires_grad and self._data.dtype.kind != "f":
            raise DTypeError(f"requires_grad_: only floating-point tensors can require "
                             f"gradients, but this tensor has dtype {self.dtype}")
        self._requires_grad = bool(requires_grad)
        return self

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_norm_dim(dim, self._data.ndim, "size")]

    def numel(self) -> int:
        return int(self._data.size)

    def element_size(self) -> int:
        return self._data.itemsize

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ShapeError(f"item: only one-element tensors can be converted to Python "
                             f"scalars, got shape {self._data.shape}")
        return self._data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied). Refused for tensors that require grad."""
        if self._requires_grad:
            raise GradError("numpy: can't call numpy() on a tensor that requires grad; "
                            "use tensor.detach().numpy()")
        return self._data

    def tolist(self):
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        # np.array(t) asks for a copy (copy=True); np.asarray(t) may share memory.
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ShapeError(f"bool: the truth value of a tensor with {self._data.size} "
                             f"elements is ambiguous; use .any() or .all()")
        return bool(self._data.reshape(()).item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise DTypeError("__index__: only integer tensors of a single element can be "
                             "used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    # -- graph ---------------------------------------------------------------
    def detach(self) -> Tensor:
        """A tensor sharing this one's data, outside the graph (no grad_fn, no grad)."""
        return _make(self._data)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf that requires it.

        Args:
            gradient: d(something)/d(self), required unless self has one element.
            retain_graph: keep saved values so that backward can run through the graph again.
            create_graph: must be False: higher-order gradients are not supported.
            inputs: accumulate only into these tensors' ``.grad``.
        """
        _engine_backward(self, gradient, retain_graph, create_graph, inputs)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self._requires_grad:
            raise GradError("retain_grad: can't retain_grad on a tensor that does not require grad")
        if self.grad_fn is None or self.retains_grad:
            return
        import weakref

        ref = weakref.ref(self)

        def _retain(grad):
            t = ref()
            if t is not None:
                g = grad._data.copy()
                if t.grad is None:
                    t.grad = _make(g)
                else:
                    t.grad._data = t.grad._data + g

        _retain.runs_last = True  # PyTorch runs the retains-grad hook after all others
        self.register_hook(_retain)

    @property
    def retains_grad(self) -> bool:
        hooks = self.grad_fn._hooks if self.grad_fn is not None else None
        if not hooks:
            return False
        return any(getattr(h, "runs_last", False) for h in hooks)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a handle whose ``remove()`` detaches the hook.
        """
        if not self._requires_grad:
            raise GradError("register_hook: cannot register a hook on a tensor that doesn't "
                            "require gradient")
        if self.grad_fn is not None:
            return self.grad_fn.register_hook(hook)
        from backprop.autograd.hooks import RemovableHandle

        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    # -- in-place updates ------------------------------------------------------
    # An in-place change of a tensor outside the graph writes into its storage and stamps
    # it (``_version`` and the in-place log), so backward can refuse saved values that
    # changed. Inside the graph (the tensor requires grad, or the value does) the change
    # is recorded as PyTorch records it: the new value is computed by an ordinary op,
    # written into the same storage, and the tensor takes that op as its ``grad_fn``
    # (``backprop.ops.inplace``). A leaf that requires grad is refused.
    def _check_inplace(self, op: str) -> None:
        """Refuse a change of a read-only view; stamp the change (version, log)."""
        self._check_writeable(op)
        self._version = _log_inplace(self._data)

    def _check_writeable(self, op: str) -> None:
        if not self._data.flags.writeable:
            raise InplaceError(f"{op}: this tensor is a read-only broadcast view (made by expand() or "
                               f"broadcast_to()) whose elements share memory; clone() it first")

    def _records(self, value=None) -> bool:
        """Whether an in-place change of this tensor (to ``value``) goes into the graph."""
        return _state.enabled and (self._requires_grad or (
            isinstance(value, Tensor) and value._requires_grad))

    def _record(self, op: str, compute) -> Tensor:
        """``self`` becomes ``compute(self as it was)``, in place and recorded in the graph."""
        return _GRAPH_INPLACE["record"](self, op, compute)

    def _bump_version(self) -> None:
        """Record that ``self._data`` was changed in place by code working on the array
        directly (optimizers do this), so backward can detect stale saved values."""
        self._version = _log_inplace(self._data)

    def _operand(self, other, op: str):
        if isinstance(other, Tensor):
            return other._data
        if isinstance(other, _OPERANDS):
            return other
        raise TypeError(f"{op}: expected a Tensor or a number, got {type(other).__name__}")

    def _assign(self, value, op: str) -> Tensor:
        try:
            np.copyto(self._data, value, casting="unsafe")
        except ValueError:
            raise ShapeError(f"{op}: a value of shape {np.shape(value)} can't be written into a "
                             f"tensor of shape {self._data.shape}") from None
        return self

    def _ufunc_(self, ufunc, other, op: str, compute=None) -> Tensor:
        """self = ufunc(self, other), written into self's own storage.

        (The checks of ``_check_inplace`` in the order an optimizer step needs them fast:
        the graph test first, the read-only check only when NumPy refuses the write, and
        the stamp only once the write has happened.) ``compute(before)`` is the same
        change as an op on tensors, for the graph.
        """
        if type(other) is Tensor and not (other._requires_grad and _state.enabled):
            o = other._data  # (the usual case, checked inline: optimizers run this per step)
            if self._requires_grad and _state.enabled:
                return self._record(op, compute or (lambda t: _UFUNC_OPS[ufunc](t, o)))
        else:
            if self._records(other):
                return self._record(op, compute or (lambda t: _UFUNC_OPS[ufunc](t, other)))
            o = self._operand(other, op)
        data = self._data
        try:
            ufunc(data, o, out=data, casting="unsafe")
        except ValueError:
            self._check_writeable(op)
            raise ShapeError(f"{op}: a value of shape {np.shape(o)} can't be combined in place "
                             f"with a tensor of shape {data.shape}") from None
        self._version = _log_inplace(data)
        return self

    def _scaled(self, other, alpha, op: str):
        """``alpha * other``, keeping a tensor a tensor (its gradient goes on through it)."""
        if alpha == 1:
            return other
        if isinstance(other, Tensor):
            return other * alpha
        return alpha * self._operand(other, op)

    def add_(self, other, alpha=1) -> Tensor:
        """self += alpha * other, in place."""
        return self._ufunc_(np.add, self._scaled(other, alpha, "add_"), "add_")

    def sub_(self, other, alpha=1) -> Tensor:
        """self -= alpha * other, in place."""
        return self._ufunc_(np.subtract, self._scaled(other, alpha, "sub_"), "sub_")

    def mul_(self, other) -> Tensor:
        """self *= other, in place."""
        return self._ufunc_(np.multiply, other, "mul_")

    def div_(self, other) -> Tensor:
        """self /= other, in place."""
        return self._ufunc_(np.true_divide, other, "div_")

    def addcmul_(self, tensor1, tensor2, value=1) -> Tensor:
        """self += value * tensor1 * tensor2, in place."""
        if self._records(tensor1) or self._records(tensor2):
            return self._record("addcmul_", lambda t: t + tensor1 * tensor2 * value)
        t = value * self._operand(tensor1, "addcmul_") * self._operand(tensor2, "addcmul_")
        return self._ufunc_(np.add, t, "addcmul_")

    def addcdiv_(self, tensor1, tensor2, value=1) -> Tensor:
        """self += value * tensor1 / tensor2, in place."""
        if self._records(tensor1) or self._records(tensor2):
            return self._record("addcdiv_", lambda t: t + tensor1 / tensor2 * value)
        t = value * self._operand(tensor1, "addcdiv_") / self._operand(tensor2, "addcdiv_")
        return self._ufunc_(np.add, t, "addcdiv_")

    def zero_(self) -> Tensor:
        if self._records():
            return self._record("zero_", _overwrite(0))
        self._check_inplace("zero_")
        self._data[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        if self._records(value):
            return self._record("fill_", _overwrite(value))
        self._check_inplace("fill_")
        return self._assign(self._operand(value, "fill_"), "fill_")

    def copy_(self, src) -> Tensor:
        """Copy ``src`` (broadcast to this shape) into this tensor, in place."""
        if self._records(src):
            return self._record("copy_", _overwrite(src))
        self._check_inplace("copy_")
        return self._assign(self._operand(src, "copy_"), "copy_")

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002 (PyTorch's names)
        if self._records():
            return self._record("clamp_", lambda t: t.clamp(min, max))
        self._check_inplace("clamp_")
        return self._assign(np.clip(self._data, min, max), "clamp_")

    def normal_(self, mean=0.0, std=1.0, generator=None) -> Tensor:
        from backprop import random as _random

        g = _random.generator(generator)
        values = g.normal(mean, std, self._data.shape)
        if self._records():
            return self._record("normal_", _overwrite(values))
        self._check_inplace("normal_")
        return self._assign(values, "normal_")

    def uniform_(self, a=0.0, b=1.0, generator=None) -> Tensor:
        from backprop import random as _random

        g = _random.generator(generator)
        values = g.uniform(a, b, self._data.shape)
        if self._records():
            return self._record("uniform_", _overwrite(values))
        self._check_inplace("uniform_")
        return self._assign(values, "uniform_")

    # -- conversion ------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy: bool = False, non_blocking: bool = False,
           memory_format=None) -> Tensor:
        """Convert dtype: ``x.to(backprop.float64)``, ``x.to(other)``, ``x.to("cpu", dtype)``.

        Only the CPU exists here: any other device is refused with a clear error.
        """
        target = dtype
        for a in args:
            if isinstance(a, (str, Device)):
                _check_device(a, "to")
            elif isinstance(a, Tensor):
                target = a._data.dtype
            elif isinstance(a, bool):
                continue  # the positional non_blocking / copy flags
            elif isinstance(a, (int, np.integer)):
                _check_device(a, "to")  # an accelerator's index, as in PyTorch: refused
            else:
                target = a
        if device is not None:
            _check_device(device, "to")
        _dt.check_memory_format(memory_format, "to", self._data.ndim)
        if target is None or self._data.dtype == _dt.to_numpy_dtype(target):
            return self.clone().detach().requires_grad_(self._requires_grad) if copy else self
        return self.cast(target)  # installed by backprop.ops.elementwise

    def type_as(self, other: Tensor) -> Tensor:
        """This tensor converted to ``other``'s dtype."""
        return self.to(other._data.dtype)

    # The new_* methods take PyTorch's keywords (dtype, device, requires_grad, layout,
    # pin_memory); device=None means this tensor's device. (dtype may also be given by
    # position, as backprop always allowed.)
    def new_tensor(self, data, dtype=None, *, device=None, requires_grad: bool = False,
                   layout=None, pin_memory: bool = False) -> Tensor:
        """A new tensor from ``data`` with this tensor's dtype unless ``dtype`` is given.

        Example::

            backprop.zeros(2, dtype=backprop.int64).new_tensor([1.5])   # tensor([1])
        """
        from backprop import creation

        return creation.new_tensor(self, data, dtype, device, requires_grad, layout, pin_memory)

    def new_full(self, size, fill_value, dtype=None, *, device=None, requires_grad: bool = False,
                 layout=None, pin_memory: bool = False) -> Tensor:
        """A tensor of shape ``size`` (a tuple) filled with ``fill_value``; this dtype."""
        from backprop import creation

        if not isinstance(size, (tuple, list)):
            raise TypeError(f"new_full(): argument 'size' must be a tuple of ints, not "
                            f"{type(size).__name__}")
        return creation.new_filled(self, "new_full", (size,), fill_value, dtype, device,
                                   requires_grad, layout, pin_memory)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False, layout=None,
                  pin_memory: bool = False) -> Tensor:
        """Zeros of shape ``size`` (``new_zeros(2, 3)``, ``new_zeros((2, 3))``); this dtype."""
        from backprop import creation

        return creation.new_filled(self, "new_zeros", size, 0, dtype, device, requires_grad,
                                   layout, pin_memory)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False, layout=None,
                 pin_memory: bool = False) -> Tensor:
        """Ones of shape ``size``, this tensor's dtype unless ``dtype`` is given."""
        from backprop import creation

        return creation.new_filled(self, "new_ones", size, 1, dtype, device, requires_grad,
                                   layout, pin_memory)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False, layout=None,
                  pin_memory: bool = False) -> Tensor:
        """A tensor of shape ``size`` (zeros here, so runs repeat), this tensor's dtype."""
        from backprop import creation

        return creation.new_filled(self, "new_empty", size, 0, dtype, device, requires_grad,
                                   layout, pin_memory)

    def type(self, dtype=None):
        if dtype is None:
            return f"backprop.{self.dtype.name}"
        return self.to(dtype)

    def float(self) -> Tensor:
        return self.to(_dt.float32)

    def double(self) -> Tensor:
        return self.to(_dt.float64)

    def half(self) -> Tensor:
        return self.to(_dt.float16)

    def long(self) -> Tensor:
        return self.to(_dt.int64)

    def int(self) -> Tensor:
        return self.to(_dt.int32)

    def bool(self) -> Tensor:
        return self.to(_dt.bool_)

    def cpu(self, memory_format=None) -> Tensor:
        """This tensor (it is on the CPU already)."""
        return self

    def cuda(self, device=None, non_blocking: builtins.bool = False,
             memory_format=None) -> Tensor:
        """Refused: backprop computes on the CPU only (raises DeviceError)."""
        _check_cuda(device, "cuda")
        return self

    @property
    def is_cuda(self) -> builtins.bool:
        return False

    @property
    def is_cpu(self) -> builtins.bool:
        return True

    def is_floating_point(self) -> builtins.bool:
        return self._data.dtype.kind == "f"

    def contiguous(self) -> Tensor:
        return self

    # -- printing --------------------------------------------------------------
    def __repr__(self) -> str:
        return _tensor_str.tensor_repr(self)  # PyTorch's text: tensor([1., 2.], ...)

    def __str__(self) -> str:
        return _tensor_str.tensor_repr(self)

    def __format__(self, spec: str) -> str:
        if spec and self._data.size == 1:
            return format(self.item(), spec)
        return str(self)


def _overwrite(value):
    """The change ``fill_``/``copy_``/``zero_`` make, for the graph: every element becomes
    ``value`` (broadcast), so the old value gets no gradient and ``value`` gets it all."""
    def compute(before):
        return _GRAPH_INPLACE["overwrite"](before, value)
    return compute


# The op each in-place ufunc update records in the graph, and the recording itself
# (``record``, ``overwrite``): filled in by backprop.ops, the layer above this one.
_UFUNC_OPS: dict = {}
_GRAPH_INPLACE: dict = {}


def _to_array(data, dtype=None) -> np.ndarray:
    """Turn Python data, arrays or tensors into an array with PyTorch's default dtypes."""
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        arr = np.array([_to_array(x) for x in data])
    else:
        arr = data
    if dtype is not None:
        np_dtype = _dt.to_numpy_dtype(dtype)
        try:
            return np.array(arr, dtype=np_dtype)
        except (TypeError, ValueError) as e:
            raise DTypeError(f"tensor: can't convert {type(data).__name__} to {dtype}: {e}") from None
    try:
        out = np.array(arr)
    except ValueError as e:
        raise ShapeError(f"tensor: can't build a tensor from ragged data: {e}") from None
    kind = out.dtype.kind
    if kind == "f":
        if not isinstance(data, (np.ndarray, np.generic, Tensor)):
            out = out.astype(_dt.default_float)  # Python floats -> float32, as in PyTorch
    elif kind in "iu":
        if not isinstance(data, (np.ndarray, np.generic, Tensor)):
            out = out.astype(np.int64)
    elif kind == "b":
        pass
    elif kind == "O" or kind in "USV":
        raise DTypeError(f"tensor: can't make a tensor from data of type {type(data).__name__} "
                         f"(elements must be numbers)")
    if out.dtype not in _dt._BY_NP:
        raise DTypeError(f"tensor: unsupported dtype {out.dtype}")
    return out


def _flat(seq):
    stack = list(seq)
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        else:
            yield x


def _norm_dim(dim: int, ndim: int, op: str) -> int:
    lo = -max(ndim, 1)
    if not (lo <= dim < max(ndim, 1)):
        from backprop.errors import IndexOutOfRange

        raise IndexOutOfRange(f"{op}: dimension out of range (expected to be in range of "
                              f"[{lo}, {max(ndim, 1) - 1}], but got {dim})")
    return dim % max(ndim, 1)


# Operators and methods are attached by backprop.ops (see ops/__init__.py), so that
# every op lives next to its gradient and this file stays about the tensor itself.
