"""``Parameter``: a tensor that a ``Module`` learns.

A Parameter is an ordinary ``Tensor`` with two differences: it requires a
gradient by default, and assigning it as a module attribute registers it, so
that ``module.parameters()`` finds it and the optimiser updates it.
"""
from __future__ import annotations

import numpy as np

from backprop import dtypes as _dt
from backprop.tensor import Tensor, _init_fields, _to_array


class Parameter(Tensor):
    """A tensor registered as a learnable weight when assigned to a ``Module`` attribute.

    Args:
        data: a tensor (its storage is shared, as in PyTorch), an array, or nested
            lists. ``None`` gives an empty float32 parameter.
        requires_grad: record gradients for it (default True).

    Example::

        w = nn.Parameter(backprop.zeros(3))
        w.requires_grad      # True
        (w * 2).sum()        # operations on a Parameter give plain Tensors
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            arr = np.empty(0, dtype=_dt.default_float)
        elif isinstance(data, Tensor):
            arr = data._data  # shared, like torch.nn.Parameter(tensor)
        else:
            arr = _to_array(data)
        _init_fields(self, arr)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__
