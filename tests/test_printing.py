"""Tensors and shapes print as PyTorch prints them (dtypes as backprop's: ``backprop.float64``)."""
import pickle
import re

import numpy as np
import pytest

import backprop
from backprop._tensor_str import get_printoptions

NAN, INF = float("nan"), float("inf")

# name -> (data, NumPy dtype)
TENSORS = {
    "floats": ([1.0, 2.0, 3.0], "float32"),
    "fractions": ([[0.12345, 2.0]], "float32"),
    "negative": ([-1.5, 2.25], "float32"),
    "huge": ([1e10, 1.0], "float32"),
    "tiny": ([1e-5, 1.0], "float32"),
    "wide-range": ([0.001, 1000.0], "float32"),
    "range-over-1000": ([0.01, 1000.0], "float32"),
    "sci-negative": ([-1e-8, 3.0], "float32"),
    "integral-1e8": ([100000000.0, 1.0], "float32"),
    "int64": ([1, 2, 3], "int64"),
    "int32": ([1, -2, 300], "int32"),
    "uint8": ([1, 255], "uint8"),
    "large-int": ([123456789, 1], "int64"),
    "int-matrix": ([[1, 20], [300, 4]], "int64"),
    "bool": ([True, False], "bool"),
    "bool-matrix": ([[True, False], [False, True]], "bool"),
    "scalar": (3.0, "float32"),
    "scalar-fraction": (3.14159, "float32"),
    "scalar-int": (7, "int64"),
    "empty": ([], "float32"),
    "empty-2d": (np.zeros((0, 3)), "float32"),
    "empty-int": ([], "int64"),
    "float64": ([1.0, 2.5], "float64"),
    "float64-tenths": ([0.1, 0.2], "float64"),
    "float16": ([1.0, 2.5], "float16"),
    "nan-inf": ([NAN, 1.0, INF], "float32"),
    "all-nan": ([NAN], "float32"),
    "minus-inf": ([-INF, 2.5], "float32"),
    "zeros": ([0.0, 0.0], "float32"),
    "minus-zero": ([-0.0, 1.0], "float32"),
    "3-d": (np.arange(24.0).reshape(2, 3, 4), "float32"),
    "wrapped-row": (np.arange(30.0) / 7, "float32"),
    "summarised": (np.arange(2000.0), "float32"),
    "summarised-2d": (np.arange(2000.0).reshape(40, 50), "float32"),
    "summarised-3d": (np.arange(3000.0).reshape(10, 20, 15) / 3, "float32"),
    "summarised-int": (np.arange(1500), "int64"),
    "linspace-sci": (np.linspace(-1e6, 1e6, 7), "float32"),
    "long-float64": (np.arange(12.0).reshape(3, 4) / 3, "float64"),
}


def _torch_text(torch, data, dtype, **kw):
    t = torch.from_numpy(np.array(data, dtype=dtype))
    if kw.get("requires_grad"):
        t.requires_grad_(True)
    return repr(t).replace("torch.", "backprop.")


@pytest.mark.parametrize("name", sorted(TENSORS))
def test_repr_is_pytorchs(oracle, name):
    data, dtype = TENSORS[name]
    theirs = _torch_text(oracle, data, dtype)
    ours = backprop.tensor(np.array(data, dtype=dtype))
    assert repr(ours) == theirs
    assert str(ours) == theirs


def test_requires_grad_and_grad_fn_suffixes(oracle):
    for T in (oracle, backprop):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        w = T.tensor([[1.0, 2.0], [3.0, 4.5]], dtype=T.float64, requires_grad=True)
        texts = [repr(x), repr(x * 2), repr((x * 2).sum()), repr(w @ w), repr(w.sum(0))]
        if T is oracle:
            theirs = [s.replace("torch.", "backprop.") for s in texts]
        else:
            ours = texts
    assert ours == theirs


def test_suffixes_wrap_onto_a_new_line_as_pytorchs(oracle):
    data = np.arange(14.0) / 3  # one full line of elements: the suffixes go below
    theirs = repr(oracle.tensor(data, requires_grad=True)).replace("torch.", "backprop.")
    ours = repr(backprop.tensor(data, requires_grad=True))
    assert "\n" in ours.split("]")[-1]
    assert ours == theirs


def _unwrap(text):
    # "backprop.float64" is 3 characters longer than "torch.float64": near the line's
    # end one goes on a new line where the other does not
    return re.sub(r",\n +dtype=", ", dtype=", text)


@pytest.mark.parametrize("options", [
    {"precision": 2}, {"precision": 0}, {"sci_mode": True}, {"sci_mode": False},
    {"threshold": 5}, {"threshold": 5, "edgeitems": 1}, {"linewidth": 30},
    {"profile": "short"}, {"profile": "full"},
])
def test_set_printoptions_as_pytorchs(oracle, options):
    data = [np.arange(12.0).reshape(3, 4) / 7, np.array([1e-5, 3.0]), np.arange(2000.0),
            np.array([123.456, -0.5])]
    try:
        oracle.set_printoptions(**options)
        backprop.set_printoptions(**options)
        theirs = [_unwrap(repr(oracle.from_numpy(d)).replace("torch.", "backprop."))
                  for d in data]
        ours = [_unwrap(repr(backprop.tensor(d))) for d in data]
    finally:
        oracle.set_printoptions(profile="default", sci_mode=None)
        backprop.set_printoptions(profile="default", sci_mode=None)
    assert ours == theirs


def test_set_printoptions_restores_and_checks():
    default = get_printoptions()
    try:
        backprop.set_printoptions(precision=1, sci_mode=False)
        assert repr(backprop.tensor([0.25])) == "tensor([0.2])"
        backprop.set_printoptions(precision=4)  # sci_mode left out: back to automatic
        assert get_printoptions()["sci_mode"] is None
        with pytest.raises(ValueError, match="precision must be an int >= 0, got -1"):
            backprop.set_printoptions(precision=-1)
        with pytest.raises(ValueError, match="profile must be one of.*'long'"):
            backprop.set_printoptions(profile="long")
        with pytest.raises(ValueError, match="sci_mode must be True, False or None"):
            backprop.set_printoptions(sci_mode="yes")
    finally:
        backprop.set_printoptions(profile="default")
    assert get_printoptions() == default


def test_format_spec_of_one_element():
    assert f"{backprop.tensor(2.5):.2f}" == "2.50"
    assert f"{backprop.tensor([1.0, 2.0])}" == "tensor([1., 2.])"


# -- Size ------------------------------------------------------------------------------------
def test_size_prints_as_torch_size(oracle):
    for shape in [(10, 512), (), (5,), (2, 3, 4)]:
        assert repr(backprop.zeros(shape).shape) == repr(oracle.zeros(shape).shape)
        assert str(backprop.zeros(shape).size()) == str(oracle.zeros(shape).size())


def test_size_is_a_tuple_with_pytorchs_behaviour():
    s = backprop.zeros(2, 3, 4).shape
    assert isinstance(s, tuple) and type(s) is backprop.Size
    assert s == (2, 3, 4) and s != [2, 3, 4] and hash(s) == hash((2, 3, 4))
    assert s[0] == 2 and type(s[0]) is int and s[-1] == 4
    assert type(s[1:]) is backprop.Size and s[1:] == (3, 4)
    assert type(s + (5,)) is backprop.Size and s + (5,) == (2, 3, 4, 5)
    assert type((1,) + s) is backprop.Size and (1,) + s == (1, 2, 3, 4)
    assert type(s * 2) is backprop.Size and len(2 * s) == 6
    assert s.numel() == 24 and backprop.zeros(()).shape.numel() == 1
    a, b, c = s
    assert (a, b, c) == (2, 3, 4)
    assert backprop.zeros(2, 3).size() == backprop.Size([2, 3]) and backprop.zeros(2, 3).size(1) == 3
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(TypeError):
        s + [5]
