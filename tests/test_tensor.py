"""The Tensor API: attributes, conversions, repr, comparisons, dtype objects."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop import GradError, ShapeError


def t64(data, requires_grad=False):
    return backprop.tensor(data, dtype=backprop.float64, requires_grad=requires_grad)


# -- attributes ---------------------------------------------------------------------------


def test_shape_ndim_dtype_size_numel():
    t = backprop.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3 and t.dim() == 3
    assert t.dtype == backprop.float32
    assert t.size() == (2, 3, 4)
    assert t.size(0) == 2 and t.size(-1) == 4
    assert t.numel() == 24
    assert len(t) == 2
    assert t.device == "cpu"
    assert t.element_size() == 4


def test_size_out_of_range():
    with pytest.raises(IndexError):
        backprop.zeros(2, 3).size(2)


def test_len_of_zero_dim_raises():
    with pytest.raises(TypeError):
        len(backprop.tensor(1.0))


def test_T_and_mT(oracle):
    a = np.arange(6.0).reshape(2, 3)
    t = backprop.tensor(a)
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    b = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(backprop.tensor(b).mT.numpy(), oracle.tensor(b).mT.numpy())
    assert backprop.tensor([1.0, 2.0]).T.shape == (2,)


def test_T_gradient():
    x = t64(np.arange(6.0).reshape(2, 3), requires_grad=True)
    w = t64(np.arange(6.0).reshape(3, 2))
    (x.T * w).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), w.numpy().T)


def test_item():
    assert backprop.tensor(2.5).item() == 2.5
    assert isinstance(backprop.tensor(2.5).item(), float)
    assert backprop.tensor([[7]]).item() == 7
    assert isinstance(backprop.tensor(7).item(), int)
    assert backprop.tensor(True).item() is True
    with pytest.raises(ShapeError):
        backprop.tensor([1.0, 2.0]).item()


def test_python_number_conversions():
    t = backprop.tensor(2.75)
    assert float(t) == 2.75 and int(t) == 2
    assert f"{t:.1f}" == "2.8"
    assert bool(backprop.tensor([1.0])) is True
    assert bool(backprop.tensor(0.0)) is False
    with pytest.raises(backprop.BackpropError):  # PyTorch: RuntimeError; here a ShapeError
        bool(backprop.tensor([1.0, 2.0]))


def test_numpy_shares_memory():
    t = backprop.tensor([1.0, 2.0])
    a = t.numpy()
    a[0] = 5.0
    assert t.tolist() == [5.0, 2.0]
    assert isinstance(a, np.ndarray)


def test_numpy_refused_for_tensor_requiring_grad():
    x = t64([1.0], requires_grad=True)
    with pytest.raises(GradError, match="detach"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0]


def test_np_asarray_and_mixed_arithmetic():
    t = backprop.tensor([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(t), [1.0, 2.0])
    out = np.array([2.0, 3.0]) * t  # the Tensor wins, not NumPy
    assert isinstance(out, backprop.Tensor)
    np.testing.assert_allclose(out.numpy(), [2.0, 6.0])


def test_tolist():
    assert backprop.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert backprop.tensor(3.5).tolist() == 3.5


def test_requires_grad_():
    t = backprop.tensor([1.0])
    assert t.requires_grad_() is t
    assert t.requires_grad
    t.requires_grad_(False)
    assert not t.requires_grad
    t.requires_grad = True
    assert t.requires_grad


def test_detach_shares_data_and_has_no_graph():
    x = t64([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), x.detach().numpy())
    with backprop.no_grad():
        x.add_(1.0)
    assert d.tolist() == [2.0, 3.0]


def test_detach_in_place():
    x = t64([1.0], requires_grad=True)
    h = x * 2.0
    assert h.detach_() is h
    assert h.grad_fn is None and not h.requires_grad


def test_clone_copies_and_passes_gradient():
    x = t64([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert not np.shares_memory(c.detach().numpy(), x.detach().numpy())
    assert c.requires_grad and not c.is_leaf
    (c * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    p = backprop.tensor([1.0])
    q = p.clone()
    q.add_(1.0)
    assert p.tolist() == [1.0]


def test_data_attribute():
    x = t64([1.0, 2.0], requires_grad=True)
    d = x.data
    assert not d.requires_grad
    d.mul_(2.0)  # as in PyTorch: writes through, outside the graph
    assert x.detach().tolist() == [2.0, 4.0]
    x.data = backprop.tensor([9.0], dtype=backprop.float64)
    assert x.detach().tolist() == [9.0] and x.requires_grad


def test_dtype_conversions():
    t = backprop.tensor([1.5, -2.5])
    assert t.double().dtype == backprop.float64
    assert t.float().dtype == backprop.float32
    assert t.long().dtype == backprop.int64
    assert t.long().tolist() == [1, -2]
    assert t.int().dtype == backprop.int32
    assert t.bool().dtype == backprop.bool
    assert t.half().dtype == backprop.float16
    assert t.to(backprop.float64).dtype == backprop.float64
    assert t.to("cpu") is t
    assert t.to(backprop.tensor([1])).dtype == backprop.int64
    assert t.type() == "backprop.float32"
    assert t.is_floating_point() and not t.long().is_floating_point()
    with pytest.raises(ValueError):
        t.to(device="cuda")


def test_cast_is_differentiable():
    x = backprop.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3.0).sum().backward()
    assert x.grad.dtype == backprop.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_tensors_are_hashable_by_identity():
    a, b = backprop.tensor([1.0]), backprop.tensor([1.0])
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"


# -- repr ----------------------------------------------------------------------------------

# Expressions over ``T`` (evaluated with T = backprop and T = torch).
REPR_SAME = [
    "T.tensor([1.0, 2.5])",
    "T.tensor([1., 2.])",
    "T.tensor(3.5)",
    "T.tensor(2.)",
    "T.tensor([1, 20])",
    "T.tensor([True, False])",
    "T.tensor([[1., 2.], [3., 4.]])",
    "T.tensor([[0.5, 0.25], [0.125, 1.0]])",
    "T.tensor([1e10, 1.0])",
    "T.tensor([1e-5, 1.])",
    "T.tensor(1e-10)",
    "T.tensor([1e-3, 1.])",
    "T.tensor([float('inf'), 1.])",
    "T.tensor([0., 0.])",
    "T.tensor([[1, 2], [3, 4]], dtype=T.int32)",
    "T.ones(2, 3, 2)",
    "T.ones(100)",  # wraps at 80 columns like PyTorch
]

REPR_DIFFERENT = [
    # PyTorch pads every element to the width of the widest one; backprop does not.
    "T.tensor([100., 2000.])",
    "T.tensor([-1.5, 2.25])",
    "T.tensor([0.1, 0.25, -3.])",
    "T.tensor([1.123456789, 100.5])",
    "T.tensor([float('nan'), 1.5])",
    "T.tensor([[-1., 2.5], [3., -4.125]])",
    # PyTorch omits the default dtype of empty tensors.
    "T.tensor([])",
    "T.zeros(0, 3)",
    # PyTorch switches to scientific notation when max/min > 1000.
    "T.tensor([12345.678, 1.])",
    "T.arange(2000.)",
    # PyTorch separates the summary ellipsis with two spaces: "2,  ..., 4997".
    "T.arange(5000)",
]


def _reprs(expr, torch_module):
    ours = repr(eval(expr, {"T": backprop}))
    theirs = repr(eval(expr, {"T": torch_module}))
    return ours, theirs.replace("torch.", "backprop.")


@pytest.mark.parametrize("expr", REPR_SAME)
def test_repr_matches_torch(expr, oracle):
    ours, theirs = _reprs(expr, oracle)
    assert ours == theirs


@pytest.mark.parametrize("expr", REPR_DIFFERENT)
def test_repr_matches_torch_formats_that_differ(expr, oracle):
    ours, theirs = _reprs(expr, oracle)
    assert ours == theirs


def test_repr_literals():
    assert repr(backprop.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(backprop.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(backprop.tensor([1.0, 2.0], requires_grad=True)) == \
        "tensor([1., 2.], requires_grad=True)"
    x = backprop.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x * 2.0) == "tensor([2., 4.], grad_fn=<MulBackward0>)"
    assert repr(backprop.tensor([1.0, 2.0], dtype=backprop.float64)) == \
        "tensor([1., 2.], dtype=backprop.float64)"
    assert str(backprop.tensor([1, 2])) == "tensor([1, 2])"


def test_repr_suffixes_match_torch(oracle):
    cases = [
        (backprop.tensor([1.0, 2.0], requires_grad=True),
         oracle.tensor([1.0, 2.0], requires_grad=True)),
        (backprop.tensor([1.0, 2.0], dtype=backprop.float64, requires_grad=True),
         oracle.tensor([1.0, 2.0], dtype=oracle.float64, requires_grad=True)),
        (backprop.tensor([1, 2], dtype=backprop.int32), oracle.tensor([1, 2], dtype=oracle.int32)),
        (backprop.tensor([0.5, 1.5], dtype=backprop.float64),
         oracle.tensor([0.5, 1.5], dtype=oracle.float64)),
    ]
    for ours, theirs in cases:
        assert repr(ours) == repr(theirs).replace("torch.", "backprop.")
    x = backprop.tensor([1.0, 2.0], requires_grad=True)
    xt = oracle.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x * 2.0) == repr(xt * 2.0)  # grad_fn names are PyTorch's: <MulBackward0>
    assert repr((x * 2.0).sum()) == repr((xt * 2.0).sum())


def test_repr_of_large_tensor_is_summarised():
    r = repr(backprop.arange(5000))
    assert r.startswith("tensor([   0,    1,    2,") and "..." in r
    assert r.endswith("4997, 4998, 4999])")
    assert len(r) < 200


# -- comparisons ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
def test_comparisons_return_bool_tensors_without_grad(op):
    av, bv = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    a = t64(av, requires_grad=True)
    b = t64(bv)
    for other, other_np in ((b, bv), (2.0, 2.0)):
        out = getattr(a, op)(other)
        assert isinstance(out, backprop.Tensor)
        assert out.dtype == backprop.bool
        assert not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.numpy(), getattr(av, op)(other_np))


def test_comparison_functions_and_broadcasting():
    a = backprop.tensor([[1.0], [2.0]])
    b = backprop.tensor([1.0, 2.0, 3.0])
    out = backprop.lt(a, b)
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out.numpy(), np.array([[1.0], [2.0]]) < np.array([1.0, 2.0, 3.0]))
    assert backprop.eq(a, 1.0).tolist() == [[True], [False]]


def test_comparison_result_counts_with_sum():
    x = backprop.tensor([0.5, 1.5, 2.5])
    assert (x > 1.0).sum().item() == 2


# -- dtype objects --------------------------------------------------------------------------


def test_dtype_objects():
    x = backprop.tensor([1.0])
    assert backprop.float32 == x.dtype
    assert x.dtype == np.float32
    assert x.dtype != backprop.float64
    assert backprop.float is backprop.float32
    assert backprop.double is backprop.float64
    assert backprop.long is backprop.int64
    assert backprop.half is backprop.float16
    assert backprop.bool is backprop.bool_
    assert repr(backprop.float64) == "backprop.float64"
    assert backprop.float32.is_floating_point and not backprop.int64.is_floating_point
    assert backprop.float64.itemsize == 8
    assert hash(backprop.float32) == hash(x.dtype)
    assert {backprop.float32: 1}[x.dtype] == 1


def test_dtype_names_match_torch(oracle):
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                 "bool"):
        assert repr(getattr(backprop, name)) == repr(getattr(oracle, name)).replace("torch.",
                                                                                      "backprop.")


def test_python_types_as_dtypes():
    assert backprop.tensor([1, 2], dtype=float).dtype == backprop.float32
    assert backprop.tensor([1.5], dtype=int).dtype == backprop.int64
