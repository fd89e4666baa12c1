"""Integer and Python-number promotion follows PyTorch under either default dtype (issue 12).

NumPy promotes ``int64 * 0.5`` and ``sqrt(int64)`` to float64; PyTorch gives the default
dtype (float32 unless ``set_default_dtype`` changed it), keeps a float32 tensor float32 beside
a 0-d float64 tensor, and lets a 0-d float64 tensor decide beside an integer tensor.
"""
import pytest

import backprop

EXPRESSIONS = {
    "int * float": lambda L: L.arange(3) * 0.5,
    "float + int": lambda L: 1.5 + L.arange(3),
    "int / int": lambda L: L.arange(1, 4) / L.arange(1, 4),
    "int / number": lambda L: L.arange(3) / 2,
    "int - 0-d f64": lambda L: L.arange(3) - L.tensor(0.5, dtype=L.float64),
    "int * 0-d f32": lambda L: L.arange(3) * L.tensor(0.5, dtype=L.float32),
    "f32 * 0-d f64": lambda L: L.ones(2, dtype=L.float32) * L.tensor(0.5, dtype=L.float64),
    "f32 * number": lambda L: L.ones(2, dtype=L.float32) * 0.5,
    "sqrt(int)": lambda L: L.sqrt(L.arange(3)),
    "exp(int)": lambda L: L.exp(L.arange(3)),
    "sigmoid(int)": lambda L: L.sigmoid(L.arange(3)),
    "tanh(int)": lambda L: L.tanh(L.arange(3)),
    "clamp(int, float)": lambda L: L.clamp(L.arange(3), min=0.5),
    "atan2(int, int)": lambda L: L.atan2(L.arange(3), L.arange(1, 4)),
    "python float": lambda L: L.tensor(0.5),
    "int + int": lambda L: L.arange(3) + L.arange(3),
}


@pytest.fixture(params=["float32", "float64"])
def default(request, oracle):
    before = backprop.get_default_dtype(), oracle.get_default_dtype()
    backprop.set_default_dtype(getattr(backprop, request.param))
    oracle.set_default_dtype(getattr(oracle, request.param))
    yield request.param
    backprop.set_default_dtype(before[0])
    oracle.set_default_dtype(before[1])


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_result_dtype_matches_pytorch(name, default, oracle):
    ours = EXPRESSIONS[name](backprop)
    theirs = EXPRESSIONS[name](oracle)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1], (name, default)
