"""Every way a Tensor is made sets every one of its fields (``Tensor.__slots__``).

``tensor._init_fields`` is the one list of them; the result of an op (``function._apply``)
and the C accelerator (``_cengine.c``'s ``new_tensor``) copy it for speed. A field added
to ``__slots__`` and forgotten on one of these paths fails here: run on both engines
(BACKPROP_PURE_PYTHON=1 and without).
"""
import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.tensor import Tensor, _init_fields, _make, _new

FIELDS = [s for s in Tensor.__slots__ if s != "__weakref__"]


def _unset(t) -> list:
    missing = []
    for name in FIELDS:
        try:
            getattr(t, name)
        except AttributeError:
            missing.append(name)
    return missing


def test_init_fields_sets_every_slot():
    t = _new(Tensor)
    assert _unset(t) == FIELDS  # the check can see a missing field
    _init_fields(t, np.zeros(2))
    assert _unset(t) == []
    assert (t.grad_fn, t.grad, t._version, t._hooks, t._requires_grad) == (None, None, 0, None,
                                                                           False)


def _made():
    x = backprop.tensor([1.0, -2.0], requires_grad=True)
    y = x * 3.0                         # an op result in the graph
    with backprop.no_grad():
        z = x + 1.0                     # an op result outside it
    y.sum().backward()                  # x.grad: made by the engine
    return {"Tensor(2, 3)": Tensor(2, 3), "Tensor([1.0])": Tensor([1.0]),
            "backprop.tensor": backprop.tensor([1, 2]), "_make": _make(np.zeros(1)),
            "Parameter": nn.Parameter(backprop.ones(2)), "Parameter()": nn.Parameter(),
            "Buffer": nn.Buffer(backprop.ones(2)), "op result (graph)": y,
            "op result (no_grad)": z, "x.grad": x.grad, "x.detach()": x.detach(),
            "x.data": x.data}


@pytest.mark.parametrize("name", list(_made()))
def test_every_way_of_making_a_tensor_sets_every_field(name):
    t = _made()[name]
    assert isinstance(t, Tensor)
    assert _unset(t) == [], f"{name}: fields never set"
