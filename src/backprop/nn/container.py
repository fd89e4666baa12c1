"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``, and the ``Residual`` wrapper."""
from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import numpy as np

from backprop.errors import ShapeError
from backprop.nn.module import Module, _addindent
from backprop.tensor import Tensor


def _index(idx, size: int, cls: str) -> int:
    """A non-negative position from a (possibly negative) int index."""
    if not isinstance(idx, (numbers.Integral, np.integer)) or isinstance(idx, bool):
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
        if not isinstance(index, (numbers.Integral, np.integer)) or not -n <= index <= n:
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

    def __add__(self, other: "Sequential") -> "Sequential":
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

    def __iadd__(self, modules) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other) -> "ModuleList":
        return ModuleList([*self, *other])

    def __repr__(self) -> str:
        # Like PyTorch: runs of identical consecutive layers print once, as "(0-2): 3 x ...".
        reprs = [repr(m) for m in self]
        if not reprs:
            return f"{self._get_name()}()"
        runs = []  # [start, end, text]
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
        return self._modules[key]

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
