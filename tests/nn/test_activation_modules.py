"""The activation modules added for issue 12 (Hardtanh, ReLU6, Hardsigmoid, Hardswish,
LogSigmoid, Mish, PReLU) against PyTorch: outputs, input and weight gradients, reprs."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.errors import ShapeError
from backprop.nn import functional as F

MODULES = {
    "Hardtanh": ((), (-4, 4)),
    "Hardtanh-bounds": (("Hardtanh", -2.0, 0.5), (-4, 4)),
    "ReLU6": ((), (-3, 9)),
    "Hardsigmoid": ((), (-5, 5)),
    "Hardswish": ((), (-5, 5)),
    "LogSigmoid": ((), (-40, 40)),
    "Mish": ((), (-30, 30)),
    "PReLU": ((), (-3, 3)),
    "PReLU-per-channel": (("PReLU", 3, 0.1), (-3, 3)),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_activation_module_matches_torch(oracle, name):
    torch = oracle
    spec, (lo, hi) = MODULES[name]
    cls, args = (spec[0], spec[1:]) if spec else (name, ())
    ours = getattr(nn, cls)(*args).double()
    theirs = getattr(torch.nn, cls)(*args).double()
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).uniform(lo, hi, (2, 3, 4))
    a = backprop.tensor(x, requires_grad=True)
    b = torch.tensor(x, requires_grad=True)
    out, tout = ours(a), theirs(b)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12,
                               atol=1e-14)
    g = np.random.default_rng(1).standard_normal(x.shape)
    out.backward(backprop.tensor(g))
    tout.backward(torch.tensor(g))
    # NOTE: torch's hardsigmoid backward multiplies by 1/6 rounded to float32 even in
    # float64 (a 3e-8 relative error); ours is exact, hence rtol 1e-7 there.
    rtol = 1e-7 if name == "Hardsigmoid" else 1e-12
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-14)
    for (k, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12, err_msg=k)


def test_prelu_state_dict_and_errors(oracle):
    torch = oracle
    assert list(nn.PReLU(4).state_dict()) == list(torch.nn.PReLU(4).state_dict())
    np.testing.assert_array_equal(nn.PReLU(4, init=0.1).weight.detach().numpy(),
                                  np.full(4, 0.1, np.float32))
    with pytest.raises(ShapeError, match="prelu.*channel"):
        F.prelu(backprop.randn(2, 4), backprop.ones(3))
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="hardtanh: min_val"):
        F.hardtanh(backprop.randn(3), 2.0, 1.0)
