"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``, ``ParameterList``,
``ParameterDict``, and the ``Residual`` wrapper."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from backprop._checks import is_integral
from backprop.errors import ShapeError
from backprop.nn.module import Module, _addindent
from backprop.nn.parameter import Parameter
from backprop.tensor import Tensor


def _index(idx, size: int, cls: str) -> int:
    """A non-negative position from a (possibly negative) int index."""
    if not is_integral(idx) or isinstance(idx, bool):  # (NumPy's integers are Integral)
        raise TypeError(f"{cls} indices must be integers or slices, not {type(idx).__name__}")
    if not -size <= idx < size:
        raise IndexError(f"{cls}: index {idx} is out of range for {size} modules")
    return int(idx) % size


class _Numbered(Module):
    """Shared by Sequential and ModuleList: modules stored under the keys "0", "1", ..."""

    def _renumber(self, modules: list) -> None:
        """Replace the children by ``modules`` under fresh keys 0..n-1."""
        for key in list(self._modules):
            del self._modules[key]
            self.__dict__.pop(key, None)
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    if TYPE_CHECKING:  # each subclass indexes (a slice gives its own type)
        def __getitem__(self, idx) -> Any: ...

    def __iter__(self):
        return iter(self._modules.values())

    def __delitem__(self, idx) -> None:
        modules = list(self._modules.values())
        if isinstance(idx, slice):
            del modules[idx]
        else:
            del modules[_index(idx, len(modules), type(self).__name__)]
        self._renumber(modules)

    def __setitem__(self, idx, module: Module) -> None:
        keys = list(self._modules)
        key = keys[_index(idx, len(keys), type(self).__name__)]
        setattr(self, key, module)

    def append(self, module: Module):
        """Add ``module`` at the end. Returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        """Append every module of an iterable. Returns self."""
        if not isinstance(modules, Iterable):
            raise TypeError(f"{type(self).__name__}.extend should be called with an iterable, "
                            f"but got {type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index``."""
        modules = list(self._modules.values())
        n = len(modules)
        if not is_integral(index) or not -n <= index <= n:
            raise IndexError(f"{type(self).__name__}.insert: index {index!r} is out of range for "
                             f"{n} modules")
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        modules.insert(int(index) % (n + 1) if index < 0 else int(index), module)
        self._renumber(modules)

    def pop(self, idx: int = -1) -> Module:
        """Remove and return the module at ``idx`` (the last by default)."""
        module = self[idx]
        del self[idx]
        return module


class Sequential(_Numbered):
    """Modules applied in order, each to the output of the one before.

    Build it from modules (named "0", "1", ...) or from an OrderedDict of named
    modules. Indexing gives a module; slicing gives a Sequential (keeping the
    names, as PyTorch).

    Example::

        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(256, 10))
        model(backprop.randn(32, 784)).shape   # (32, 10)
        model[0]                               # Linear(in_features=784, ...)
        len(model), model[:2]
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], Mapping):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        modules = list(self._modules.values())
        return modules[_index(idx, len(modules), "Sequential")]

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise TypeError(f"add operator supports only objects of Sequential class, but "
                            f"{type(other).__name__} is given")
        return Sequential(*self, *other)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(_Numbered):
    """A list of sub-modules, registered so that their parameters are found.

    Example::

        layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        for layer in layers:
            x = layer(x).relu()
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        modules = list(self._modules.values())
        return modules[_index(idx, len(modules), "ModuleList")]

    def __iadd__(self, modules) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other) -> ModuleList:
        return ModuleList([*self, *other])

    def __repr__(self) -> str:
        # Like PyTorch: runs of identical consecutive layers print once, as "(0-2): 3 x ...".
        reprs = [repr(m) for m in self]
        if not reprs:
            return f"{self._get_name()}()"
        runs: list[list] = []  # [start, end, text]
        for i, text in enumerate(reprs):
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = []
        for start, end, text in runs:
            head = f"({start})" if start == end else f"({start}-{end}): {end - start + 1} x"
            line = f"{head}: {text}" if start == end else f"{head} {text}"
            lines.append(_addindent(line, 2))
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """A dict of sub-modules by name, registered so that their parameters are found.

    Example::

        heads = nn.ModuleDict({"cls": nn.Linear(16, 10), "box": nn.Linear(16, 4)})
        heads["cls"](features)
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]  # type: ignore[return-value]  # (set by __setitem__: a Module)

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        self.__dict__.pop(key, None)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def clear(self) -> None:
        """Remove every module."""
        for key in list(self._modules):
            del self[key]

    def pop(self, key: str) -> Module:
        """Remove the module ``key`` and return it."""
        module = self[key]
        del self[key]
        return module

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules) -> None:
        """Add modules from a mapping or an iterable of (name, module) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = modules.items()
        elif isinstance(modules, Iterable):
            pairs = []
            for j, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(f"ModuleDict.update: element #{j} should be a (name, "
                                     f"module) pair, got {pair!r}")
                pairs.append(pair)
        else:
            raise TypeError(f"ModuleDict.update should be called with a mapping or an iterable "
                            f"of (name, module) pairs, but got {type(modules).__name__}")
        for name, module in pairs:
            self[name] = module


class Residual(Module):
    """A skip connection: ``x + module(x)``.

    Skip connections give the gradient a path around ``module``: d(x + f(x))/dx
    = I + f'(x), so even when f'(x) is small the gradient reaching earlier layers
    does not vanish, which is how very deep networks (ResNets) train.

    Not in PyTorch (where it is written by hand in ``forward``). The module must
    return the shape it was given; a different shape raises ``ShapeError``
    rather than being broadcast.

    Example::

        block = nn.Residual(nn.Sequential(nn.Linear(16, 16), nn.ReLU()))
        block(backprop.randn(8, 16)).shape   # (8, 16)
    """

    def __init__(self, module: Module):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"Residual: expected a Module to wrap, got {type(module).__name__}")
        self.module = module

    def forward(self, input, *args, **kwargs):
        out = self.module(input, *args, **kwargs)
        if not isinstance(out, Tensor) or tuple(out.shape) != tuple(input.shape):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(f"Residual: the wrapped {type(self.module).__name__} changed the "
                             f"shape from {tuple(input.shape)} to {got}; x + f(x) needs f(x) "
                             f"to have the shape of x")
        return input + out


def _as_parameter(value):
    """A plain Tensor put in a ParameterList/Dict becomes a Parameter (as in PyTorch)."""
    if isinstance(value, Tensor) and not isinstance(value, Parameter):
        return Parameter(value)
    return value


def _describe(value) -> str:
    """One line of a ParameterList/Dict repr, as PyTorch prints it."""
    if isinstance(value, Tensor):
        kind = "Parameter" if isinstance(value, Parameter) else "Tensor"
        size = "x".join(str(n) for n in value.shape)
        return f"{kind} containing: [{value.dtype} of size {size}]"
    return f"Object of type: {type(value).__name__}"


class ParameterList(Module):
    """A list of parameters, registered (under "0", "1", ...) so that ``parameters()``,
    ``state_dict()`` and the optimisers find them. Plain tensors added are wrapped in
    ``Parameter``; other objects are kept as they are.

    Example::

        weights = nn.ParameterList([nn.Parameter(backprop.randn(4, 4)) for _ in range(3)])
        for w in weights:
            x = x @ w
    """

    def __init__(self, values=None) -> None:
        super().__init__()
        self._size = 0
        if values is not None:
            self += values

    def _key(self, idx) -> str:
        return str(_index(idx, self._size, "ParameterList"))

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)([self[i] for i in range(self._size)[idx]])
        return getattr(self, self._key(idx))

    def __setitem__(self, idx, value) -> None:
        setattr(self, self._key(idx), _as_parameter(value))

    def __len__(self) -> int:
        return self._size

    def __iter__(self):
        return (self[i] for i in range(self._size))

    def __iadd__(self, values) -> ParameterList:
        return self.extend(values)

    def __dir__(self):
        return [key for key in super().__dir__() if not key.isdigit()]

    def append(self, value) -> ParameterList:
        """Add ``value`` at the end. Returns self."""
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values) -> ParameterList:
        """Append every value of an iterable. Returns self."""
        if not isinstance(values, Iterable) or isinstance(values, Tensor):
            raise TypeError(f"ParameterList.extend should be called with an iterable, but got "
                            f"{type(values).__name__}")
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return "\n".join(f"  ({i}): {_describe(value)}" for i, value in enumerate(self))

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")


class ParameterDict(Module):
    """A dict of parameters by name, registered so that ``parameters()``, ``state_dict()``
    and the optimisers find them. Plain tensors added are wrapped in ``Parameter``.

    Example::

        scales = nn.ParameterDict({"a": nn.Parameter(backprop.ones(3)),
                                   "b": nn.Parameter(backprop.zeros(3))})
        scales["a"] * x + scales["b"]
    """

    def __init__(self, parameters=None) -> None:
        super().__init__()
        self._keys: dict = {}
        if parameters is not None:
            self.update(parameters)

    @staticmethod
    def _check_key(key) -> str:
        if not isinstance(key, str):
            raise TypeError(f"ParameterDict keys must be strings, got {type(key).__name__}")
        return key

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value) -> None:
        self._check_key(key)
        setattr(self, key, _as_parameter(value))
        self._keys[key] = None

    def __delitem__(self, key: str) -> None:
        del self._keys[key]
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)

    def __reversed__(self):
        return reversed(list(self._keys))

    def __contains__(self, key) -> bool:
        return key in self._keys

    def copy(self) -> ParameterDict:
        """A new ParameterDict holding the same parameters (not copies of them)."""
        return ParameterDict(list(self.items()))

    def setdefault(self, key: str, default=None):
        """``self[key]``, after setting it to ``default`` if it is missing."""
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self) -> None:
        """Remove every entry."""
        for key in list(self._keys):
            del self[key]

    def pop(self, key: str):
        """Remove ``key`` and return its value."""
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple:
        """Remove and return the last inserted (key, value) pair."""
        if not self._keys:
            raise KeyError("popitem(): dictionary is empty")
        key = list(self._keys)[-1]
        return key, self.pop(key)

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def fromkeys(self, keys, default=None) -> ParameterDict:
        """A new ParameterDict with every key of ``keys`` set to ``default``."""
        return ParameterDict((key, default) for key in keys)

    def keys(self):
        return self._keys.keys()

    def items(self):
        return ((key, self[key]) for key in self._keys)

    def values(self):
        return (self[key] for key in self._keys)

    # mirrors ModuleDict.update; apart because PyTorch's ParameterDict sorts a plain mapping's
    # keys, accepts any iterable pair and words its errors differently.
    def update(self, parameters) -> None:
        """Add entries from a mapping or an iterable of (key, value) pairs.

        As in PyTorch, the entries of a plain (unordered) mapping are added in sorted key
        order; an OrderedDict, a ParameterDict or a sequence of pairs keeps its order."""
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = list(parameters.items())
        elif isinstance(parameters, Mapping):
            pairs = sorted(parameters.items(), key=lambda kv: kv[0])
        elif isinstance(parameters, Iterable) and not isinstance(parameters, (str, Tensor)):
            pairs = []
            for j, pair in enumerate(parameters):
                if not isinstance(pair, Iterable) or isinstance(pair, (str, Tensor)):
                    raise TypeError(f"ParameterDict update sequence element #{j} should be "
                                    f"Iterable; is {type(pair).__name__}")
                pair = tuple(pair)
                if len(pair) != 2:
                    raise ValueError(f"ParameterDict update sequence element #{j} has length "
                                     f"{len(pair)}; 2 is required")
                pairs.append(pair)
        else:
            raise TypeError(f"ParametersDict.update should be called with an iterable of "
                            f"key/value pairs, but got {type(parameters).__name__}")
        for key, value in pairs:
            self[key] = value

    def __or__(self, other: ParameterDict) -> ParameterDict:
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other: ParameterDict) -> ParameterDict:
        merged = other.copy()
        merged.update(self)
        return merged

    def __ior__(self, other: ParameterDict) -> ParameterDict:
        self.update(other)
        return self

    def extra_repr(self) -> str:
        return "\n".join(f"  ({key}): {_describe(value)}" for key, value in self.items())

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterDict should not be called.")
