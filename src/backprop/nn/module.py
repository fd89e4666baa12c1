"""``Module``: the base class of every layer and model.

A module owns parameters (learned), buffers (state that is not learned, such as
BatchNorm's running averages) and sub-modules. Assigning any of them as an
attribute registers it::

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(2, 16)      # a sub-module
            self.scale = nn.Parameter(backprop.ones(1))
            self.register_buffer("calls", backprop.zeros((), dtype=backprop.int64))

        def forward(self, x):
            return self.hidden(x).relu() * self.scale

Registered objects live in the registries (``_parameters``, ``_buffers``,
``_modules``) *and* in the instance ``__dict__``, so ``self.hidden`` is an
ordinary attribute lookup: there is no ``__getattr__`` (a known source of
confusion and slowness in PyTorch). ``__setattr__`` and ``__delattr__`` keep the
two in step; write to the registries only through them.
"""
from __future__ import annotations

import itertools
import numbers
from collections import OrderedDict, namedtuple
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from backprop import dtypes as _dt
from backprop.autograd.grad_mode import no_grad
from backprop.autograd.grad_mode import state as _grad_state
from backprop.autograd.hooks import RemovableHandle
from backprop.autograd.module_hooks import BackwardHook
from backprop.errors import BackpropError, DTypeError
from backprop.nn.parameter import Parameter
from backprop.tensor import Device, Tensor, _check_cuda, _check_device, _init_fields, _to_array


class Buffer(Tensor):
    """A tensor that registers itself as a buffer when assigned to a ``Module`` attribute
    (PyTorch 2.5's ``nn.Buffer``): ``self.steps = nn.Buffer(backprop.zeros(()))`` is
    ``self.register_buffer("steps", backprop.zeros(()))``.

    Args:
        data: a tensor (its storage is shared) or anything ``backprop.tensor`` accepts;
            None gives an empty float32 buffer.
        persistent: include it in ``state_dict()`` (default True).

    Example::

        class Counter(nn.Module):
            def __init__(self):
                super().__init__()
                self.calls = nn.Buffer(backprop.zeros((), dtype=backprop.int64))
    """

    __slots__ = ("persistent",)

    def __init__(self, data=None, *, persistent: bool = True):
        if data is None:
            arr = np.empty(0, dtype=_dt.default_float)
        elif isinstance(data, Tensor):
            arr = data._data  # shared, and detached from any graph (as PyTorch's)
        else:
            arr = _to_array(data)
        _init_fields(self, arr)
        self.persistent = bool(persistent)
        if isinstance(data, Tensor) and data.requires_grad:
            self.requires_grad_(True)


class StateDictError(BackpropError, RuntimeError):
    """``load_state_dict`` found missing, unexpected or mis-shaped keys.

    The lists are also available as attributes: ``missing_keys``,
    ``unexpected_keys`` and ``error_msgs`` (one line per other problem).
    """

    def __init__(self, message, missing_keys=(), unexpected_keys=(), error_msgs=()):
        super().__init__(message)
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.error_msgs = list(error_msgs)


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it could not match (as in PyTorch)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (f"_IncompatibleKeys(missing_keys={self.missing_keys}, "
                f"unexpected_keys={self.unexpected_keys})")

    __str__ = __repr__


class _NotInitialised:
    """Stands in for a registry until ``Module.__init__`` has run; any use explains why."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def _fail(self, *args, **kwargs):
        raise AttributeError(f"Module.__init__() was not called before {self._name} was used; "
                             f"call super().__init__() at the start of your module's __init__")

    __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = _fail

    def __getattr__(self, attr):
        self._fail()


class _WithKwargs:
    """Marks a forward (pre-)hook registered with ``with_kwargs=True``."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


# Hooks that apply to every module (``register_module_forward_hook`` and friends).
_global_forward_pre_hooks: list = []
_global_forward_hooks: list = []
_global_backward_pre_hooks: list = []
_global_backward_hooks: list = []


def _add_hook(hooks: list, hook, prepend: bool = False) -> RemovableHandle:
    if not callable(hook.fn if type(hook) is _WithKwargs else hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    if prepend:
        hooks.insert(0, hook)
    else:
        hooks.append(hook)
    return RemovableHandle(hooks, hook)


def register_module_forward_pre_hook(hook) -> RemovableHandle:
    """Call ``hook(module, args)`` before the forward of *every* module; returns a handle."""
    return _add_hook(_global_forward_pre_hooks, hook)


def register_module_forward_hook(hook) -> RemovableHandle:
    """Call ``hook(module, args, output)`` after the forward of *every* module."""
    return _add_hook(_global_forward_hooks, hook)


def register_module_full_backward_pre_hook(hook) -> RemovableHandle:
    """Call ``hook(module, grad_output)`` in every module's backward (see Module's method)."""
    return _add_hook(_global_backward_pre_hooks, hook)


def register_module_full_backward_hook(hook) -> RemovableHandle:
    """Call ``hook(module, grad_input, grad_output)`` in every module's backward."""
    return _add_hook(_global_backward_hooks, hook)


def _addindent(text: str, spaces: int) -> str:
    """Indent every line but the first (PyTorch's nested repr layout)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return lines[0] + "\n" + "\n".join(pad + line for line in lines[1:])


def _options_repr(module, defaults: dict) -> str:
    """The tail of PyTorch's ``extra_repr``: ``", name=value"`` for each attribute named in
    ``defaults`` whose value is not its default (None and bools compared by identity, other
    values by ==), in the order given."""
    out = ""
    for name, default in defaults.items():
        value = getattr(module, name)
        if default is None or isinstance(default, bool):
            changed = value is not default
        else:
            changed = value != default
        if changed:
            out += f", {name}={value}"
    return out


def _check_name(kind: str, name, module: Module, registry: dict) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if name not in registry and (name in module.__dict__ or hasattr(type(module), name)):
        raise KeyError(f"attribute '{name}' already exists")


def _parse_to(args, kwargs):
    """(dtype or None) from Module.to's arguments; devices other than the CPU are refused."""
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (str, Device)):
            device = a
        elif isinstance(a, bool):
            continue  # non_blocking
        elif isinstance(a, (int, np.integer)):
            device = a  # an accelerator's index, as in PyTorch (refused below)
        else:
            dtype = a
    if device is not None:
        _check_device(device, "Module.to")  # DeviceError unless the CPU
    if dtype is None:
        return None
    np_dtype = _dt.to_numpy_dtype(dtype)
    if np_dtype.kind != "f":
        raise DTypeError(f"Module.to only accepts floating point dtypes, but got desired "
                         f"dtype={_dt.from_numpy_dtype(np_dtype)}")
    return np_dtype


# What the methods that return self return: the caller's own class (PyTorch's Self).
_M = TypeVar("_M", bound="Module")


class Module:
    """Base class of layers and models: register parts in ``__init__``, write ``forward``.

    Call the module (``model(x)``), not ``forward``, so that hooks run.

    Example::

        class TwoLayer(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 1)

            def forward(self, x):
                return self.fc2(self.fc1(x).relu())

        model = TwoLayer()
        [name for name, _ in model.named_parameters()]
        # ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    training: bool

    if TYPE_CHECKING:  # what __init__ puts in the instance's __dict__
        _parameters: dict[str, Parameter | None]
        _buffers: dict[str, Tensor | None]
        _modules: dict[str, Module | None]
        _non_persistent_buffers_set: set[str]
        _forward_pre_hooks: list
        _forward_hooks: list
        _backward_pre_hooks: list
        _backward_hooks: list
    else:
        # Until __init__ runs, these class-level stand-ins make any use fail clearly.
        _parameters = _NotInitialised("_parameters")
        _buffers = _NotInitialised("_buffers")
        _modules = _NotInitialised("_modules")
        _non_persistent_buffers_set = _NotInitialised("_non_persistent_buffers_set")
        _forward_pre_hooks = _NotInitialised("_forward_pre_hooks")
        _forward_hooks = _NotInitialised("_forward_hooks")
        _backward_pre_hooks = _NotInitialised("_backward_pre_hooks")
        _backward_hooks = _NotInitialised("_backward_hooks")

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = {}
        d["_forward_pre_hooks"] = []
        d["_forward_hooks"] = []
        d["_backward_pre_hooks"] = []
        d["_backward_hooks"] = []

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  f'"forward" function')

    # -- calling -------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        # The common case, no hooks at all, costs a few truth tests.
        if (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks
                or self._backward_pre_hooks or _global_forward_pre_hooks
                or _global_forward_hooks or _global_backward_hooks
                or _global_backward_pre_hooks):
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict):
        for hook in (*_global_forward_pre_hooks, *self._forward_pre_hooks):
            if type(hook) is _WithKwargs:
                result = hook.fn(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward_hooks = [*_global_backward_hooks, *self._backward_hooks]
        backward_pre_hooks = [*_global_backward_pre_hooks, *self._backward_pre_hooks]
        bw = None
        if (backward_hooks or backward_pre_hooks) and _grad_state.enabled:
            bw = BackwardHook(self, backward_hooks, backward_pre_hooks)
            args = bw.setup_input_hook(args)
        output = self.forward(*args, **kwargs)
        for hook in (*_global_forward_hooks, *self._forward_hooks):
            if type(hook) is _WithKwargs:
                result = hook.fn(self, args, kwargs, output)
            else:
                result = hook(self, args, output)
            if result is not None:
                output = result
        if bw is not None:
            output = bw.setup_output_hook(output)
        return output

    # -- registration ----------------------------------------------------------------------
    # Parameters, modules and buffers take the same steps here, written out as in PyTorch's
    # __setattr__ rather than through a helper: this runs on every attribute write.
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._unregister(name, keep=params)  # (keeps its place if already a parameter)
            d.pop(name, None)
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                f"(nn.Parameter or None expected)")
            params[name] = d[name] = None
            return
        modules = d.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._unregister(name, keep=modules)
            modules[name] = d[name] = value
            return
        if modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (nn.Module or None expected)")
            modules[name] = d[name] = None
            return
        buffers = d.get("_buffers")
        if isinstance(value, Buffer):  # nn.Buffer registers itself, with its persistence
            if buffers is None:
                raise AttributeError("cannot assign buffer before Module.__init__() call")
            self.register_buffer(name, value, value.persistent)
            return
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(Tensor or None expected)")
            buffers[name] = d[name] = value
            return
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name: str, keep=None) -> None:
        """Forget ``name`` in every registry but ``keep`` (before it is registered anew)."""
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a Parameter, or None for an absent one such as ``bias``) as ``name``.

        Example::

            self.register_parameter("bias", None)   # Linear(bias=False) does this
        """
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name("parameter", name, self, self._parameters)
        if param is not None:
            if not isinstance(param, Parameter):
                raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                                f"'{name}' (nn.Parameter or None required)")
            if param.grad_fn is not None:
                raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                                 f"parameters must be created explicitly: wrap the tensor in "
                                 f"nn.Parameter(t.detach())")
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a tensor that is module state but not learned (e.g. running statistics).

        Args:
            name: the attribute name.
            tensor: a Tensor, or None (then it is skipped by ``to`` and ``state_dict``).
            persistent: include it in ``state_dict()``.

        Example::

            self.register_buffer("running_mean", backprop.zeros(16))
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name("buffer", name, self, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            f"(Tensor or None required)")
        self._buffers[name] = tensor
        self.__dict__[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the sub-module ``name`` (same as ``self.name = module``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        _check_name("module", name, self, self._modules)
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The sub-module at a dotted path (``"encoder.layers.0"``); ``""`` is self."""
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            child = mod._modules.get(item)
            if child is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule `{item}` "
                                     f"(looking up {target!r})")
            mod = child
        return mod

    def set_submodule(self, target: str, module: Module, strict: bool = False) -> None:
        """Put ``module`` at a dotted path (``"encoder.layers.0"``), replacing what is there;
        with ``strict=True`` the path must already name a sub-module."""
        if target == "":
            raise ValueError("set_submodule: cannot set the submodule without a target name")
        if not isinstance(module, Module):
            raise TypeError(f"set_submodule: `module` is not an nn.Module, found "
                            f"{type(module).__name__}")
        path, _, name = target.rpartition(".")
        parent = self.get_submodule(path)
        if strict and not isinstance(parent._modules.get(name), Module):
            raise AttributeError(f"{type(parent).__name__} has no submodule `{name}` "
                                 f"(set_submodule with strict=True, target {target!r})")
        setattr(parent, name, module)

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at a dotted path (``"layers.0.weight"``)."""
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter `{name}` "
                                 f"(looking up {target!r})")
        param = mod._parameters[name]
        if param is None:  # registered as None (Linear(bias=False)): PyTorch refuses it too
            raise AttributeError(f"`{name}` is not an nn.Parameter (looking up {target!r})")
        return param

    def get_buffer(self, target: str) -> Tensor | None:
        """The buffer at a dotted path (``"bn.running_mean"``)."""
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in mod._buffers:
            raise AttributeError(f"{type(mod).__name__} has no buffer `{name}` "
                                 f"(looking up {target!r})")
        return mod._buffers[name]

    # -- iteration -------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True):
        """Yield ``(dotted name, module)`` for self and every sub-module, depth first.

        A module reachable by two paths is yielded once (the first path) unless
        ``remove_duplicate=False``.
        """
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:  # an explicit stack: the same pre-order as recursion, any depth
            path, module = stack.pop()
            if remove_duplicate:
                if module in memo:
                    continue
                memo.add(module)
            yield path, module
            children = [(f"{path}.{name}" if path else name, child)
                        for name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self):
        """Every module in the tree, self first (each once), in named_modules' order."""
        # The same walk as named_modules without building names: parameters() and
        # zero_grad() run every training step.
        seen = set()
        stack = [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield module
            children = [c for c in module._modules.values() if c is not None]
            stack.extend(reversed(children))

    def named_children(self):
        """Yield ``(name, module)`` for the direct sub-modules (each once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        """The direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str = "", recurse: bool = True,
                       remove_duplicate: bool = True, named: bool = True):
        """The one walk behind named_parameters()/parameters() and the buffer pair:
        ``(dotted name, value)``, or the values alone when ``named`` is False (then no
        name is built: parameters() and zero_grad() run every training step)."""
        seen = set()
        modules: Iterable[tuple[str, Module]]
        if not recurse:
            modules = [(prefix, self)]
        elif named:
            modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            modules = zip(itertools.repeat(prefix), self.modules())  # the walk without names
        for path, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield ((f"{path}.{name}" if path else name), value) if named else value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True):
        """Yield ``(dotted name, parameter)``; a parameter shared by two layers comes once.

        Example::

            [n for n, _ in nn.Sequential(nn.Linear(2, 3)).named_parameters()]
            # ['0.weight', '0.bias']
        """
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        """Every parameter (each once), in named_parameters' order: what an optimiser takes."""
        return self._named_members("_parameters", recurse=recurse, named=False)

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True):
        """Yield ``(dotted name, buffer)`` for every buffer that is not None."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        """Every buffer (running statistics and the like), each once."""
        return self._named_members("_buffers", recurse=recurse, named=False)

    # -- modes and bulk changes --------------------------------------------------------
    def train(self: _M, mode: bool = True) -> _M:
        """Set training mode (dropout active, batch statistics) on self and every sub-module."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self: _M) -> _M:
        """Set evaluation mode: ``train(False)``. Returns self."""
        return self.train(False)

    def requires_grad_(self: _M, requires_grad: bool = True) -> _M:
        """Switch gradient recording on or off for every parameter (freezing). Returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None (default), or to zeros."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad._data = np.zeros_like(p.grad._data)

    def apply(self: _M, fn) -> _M:
        """Call ``fn(module)`` on every sub-module (children first), then on self. Returns self.

        Example::

            def init(m):
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)
            model.apply(init)
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def _convert(self: _M, convert) -> _M:
        """Replace every parameter's and buffer's array by ``convert(array)``, keeping the
        Tensor objects (as PyTorch swaps ``.data``), so optimisers still hold them."""
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for t in registry.values():
                    if t is None:
                        continue
                    new = convert(t._data)
                    if new is not t._data:
                        t._data = new
                        t._bump_version()
                        if t.grad is not None:
                            t.grad._data = convert(t.grad._data)
        return self

    def to(self: _M, *args, **kwargs) -> _M:
        """Convert floating-point parameters and buffers in place: ``to(backprop.float64)``.

        Also accepts ``to(device="cpu")`` / ``to("cpu")`` (a no-op) and ``to(tensor)``
        (its dtype); other devices are refused. Returns self.
        """
        np_dtype = _parse_to(args, dict(kwargs))
        if np_dtype is None:
            return self

        def convert(arr):
            if arr.dtype.kind != "f" or arr.dtype == np_dtype:
                return arr
            return arr.astype(np_dtype)
        return self._convert(convert)

    def double(self: _M) -> _M:
        """Parameters and floating buffers to float64. Returns self."""
        return self.to(_dt.float64)

    def float(self: _M) -> _M:  # noqa: A003 (PyTorch's name)
        """Parameters and floating buffers to float32. Returns self."""
        return self.to(_dt.float32)

    def half(self: _M) -> _M:
        """Parameters and floating buffers to float16. Returns self."""
        return self.to(_dt.float16)

    def cpu(self: _M) -> _M:
        """A no-op: backprop runs on the CPU. Returns self."""
        return self

    def cuda(self: _M, device=None) -> _M:
        """Refused: backprop computes on the CPU only (raises DeviceError)."""
        _check_cuda(device, "Module.cuda")
        return self

    # -- state dicts -------------------------------------------------------------------------
    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """An ordered dict from dotted names (``"layers.0.weight"``) to parameters and
        persistent buffers, built by a recursive walk that extends the prefix.

        The tensors share memory with the module (detached, unless ``keep_vars``).

        Example::

            list(nn.Sequential(nn.Linear(2, 3)).state_dict())   # ['0.weight', '0.bias']
        """
        if args:  # PyTorch's old positional form: state_dict(destination, prefix, keep_vars)
            names = ("destination", "prefix", "keep_vars")
            if len(args) > 3:
                raise TypeError(f"state_dict() takes at most 3 positional arguments, got "
                                f"{len(args)}")
            given = dict(zip(names, args, strict=False))
            destination = given.get("destination", destination)
            prefix = given.get("prefix", prefix)
            keep_vars = given.get("keep_vars", keep_vars)
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=f"{prefix}{name}.",
                                  keep_vars=keep_vars)
        return destination

    def _expected_state(self, prefix: str, out: dict) -> None:
        """Collect ``dotted key -> tensor`` for what state_dict() would hold (every path)."""
        for name, param in self._parameters.items():
            if param is not None:
                out[prefix + name] = param
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                out[prefix + name] = buf
        for name, module in self._modules.items():
            if module is not None:
                module._expected_state(f"{prefix}{name}.", out)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy parameters and buffers from ``state_dict`` into this module, in place.

        Values may be Tensors or NumPy arrays. Every problem is collected first and
        reported together, and nothing is changed unless the whole load can succeed.

        Args:
            state_dict: a mapping from dotted keys to tensors, as ``state_dict()`` returns.
            strict: raise when keys are missing or unexpected (mis-shaped keys and
                values that are not arrays raise regardless, as in PyTorch).
            assign: adopt the given arrays instead of copying into the existing ones
                (the Parameter objects are kept either way).

        Returns:
            ``(missing_keys, unexpected_keys)``, a namedtuple.

        Raises:
            StateDictError (a RuntimeError): listing every missing, unexpected and
            mis-shaped key, with both shapes.

        Example::

            model.load_state_dict(other_model.state_dict())
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}")
        expected: dict = {}
        self._expected_state("", expected)
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in expected]
        errors, plan = [], []
        for key, target in expected.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                arr = value._data
            elif isinstance(value, (np.ndarray, np.generic, numbers.Number)):
                arr = np.asarray(value)
            else:
                errors.append(f'While copying the parameter named "{key}", expected a Tensor or '
                              f'NumPy array from the checkpoint but received '
                              f'{type(value).__name__}')
                continue
            shape = target._data.shape
            if arr.shape != shape:
                if len(shape) == 0 and arr.shape == (1,):  # PyTorch's old 1-element scalars
                    arr = arr.reshape(())
                else:
                    errors.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{arr.shape} from checkpoint, the shape in current model is "
                                  f"{shape}.")
                    continue
            if arr.dtype.kind not in "fiub":
                errors.append(f"While copying the parameter named \"{key}\", got an array of "
                              f"unsupported dtype {arr.dtype}")
                continue
            plan.append((target, arr))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                                 + "\n\t".join(errors), missing, unexpected, errors)
        with no_grad():
            for target, arr in plan:
                if assign:
                    target._data = arr if arr.dtype.kind == target._data.dtype.kind else \
                        arr.astype(target._data.dtype)
                else:
                    np.copyto(target._data, arr, casting="unsafe")
                target._bump_version()
        return _IncompatibleKeys(missing, unexpected)

    # -- hooks -------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before ``forward``; a returned value replaces ``args``.

        With ``with_kwargs=True`` the hook is ``hook(module, args, kwargs)`` and may
        return ``(new_args, new_kwargs)``. Returns a handle; ``handle.remove()`` detaches it.
        """
        return _add_hook(self._forward_pre_hooks, _WithKwargs(hook) if with_kwargs else hook,
                         prepend)

    def register_forward_hook(self, hook, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after ``forward``; a returned value replaces it.

        With ``with_kwargs=True`` the hook is ``hook(module, args, kwargs, output)``.

        Example::

            acts = {}
            handle = model[0].register_forward_hook(
                lambda m, args, out: acts.__setitem__("fc1", out.detach()))
            model(x)
            handle.remove()
        """
        return _add_hook(self._forward_hooks, _WithKwargs(hook) if with_kwargs else hook,
                         prepend)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` when the gradients of the module's outputs are
        known; a returned tuple replaces ``grad_output``."""
        return _add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` during backward.

        ``grad_input`` holds one entry per positional argument of ``forward`` (None
        for arguments that are not tensors requiring grad), ``grad_output`` one per
        output. A returned tuple replaces ``grad_input``. When no input requires
        grad, the hook is called once the output gradients are known, with
        ``grad_input`` all None.

        Example::

            norms = []
            layer.register_full_backward_hook(
                lambda m, gin, gout: norms.append(gout[0].norm().item()))
        """
        return _add_hook(self._backward_hooks, hook, prepend)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this layer's parentheses in ``repr`` (override in layers)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2)
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"
