"""Errors: the right class (a subclass of the natural Python one) and a message that helps."""
from __future__ import annotations

import re

import numpy as np
import pytest

import backprop
from backprop import (
    AnomalyError, BackpropError, DTypeError, GradcheckError, GradError, IndexOutOfRange,
    InplaceError, ShapeError,
)


@pytest.mark.parametrize("cls,base", [
    (ShapeError, ValueError),
    (DTypeError, TypeError),
    (GradError, RuntimeError),
    (InplaceError, RuntimeError),
    (AnomalyError, RuntimeError),
    (GradcheckError, AssertionError),
    (IndexOutOfRange, IndexError),
])
def test_hierarchy(cls, base):
    assert issubclass(cls, base)
    assert issubclass(cls, BackpropError)
    assert cls is getattr(backprop.errors, cls.__name__)


def test_errors_can_be_caught_as_the_natural_exception():
    with pytest.raises(ValueError):
        backprop.randn(2, 3) @ backprop.randn(4, 5)
    with pytest.raises(TypeError):
        backprop.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError):
        (backprop.randn(2, requires_grad=True) * 2.0).backward()


# -- shapes ----------------------------------------------------------------------------------


def test_matmul_message_exact():
    a, b = backprop.randn(32, 784), backprop.randn(512, 10)
    with pytest.raises(ShapeError) as info:
        a @ b
    assert str(info.value) == "matmul: shapes (32, 784) and (512, 10) are not aligned: 784 != 512"


def test_matmul_message_for_function_and_vectors():
    with pytest.raises(ShapeError, match=re.escape("matmul: shapes (3,) and (4,) are not "
                                                   "aligned: 3 != 4")):
        backprop.matmul(backprop.randn(3), backprop.randn(4))
    with pytest.raises(ShapeError, match="matmul"):
        backprop.randn(2, 3) @ backprop.randn(2)
    with pytest.raises(TypeError, match=r"matmul: expected two tensors, got Tensor and int"):
        backprop.randn(3) @ 2
    with pytest.raises(TypeError, match=r"matmul: expected two tensors, got float and Tensor"):
        2.5 @ backprop.randn(3)


@pytest.mark.parametrize("name,op", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                                     ("mul", lambda a, b: a * b), ("div", lambda a, b: a / b)])
def test_broadcast_mismatch_names_op_and_shapes(name, op):
    a, b = backprop.randn(2, 3), backprop.randn(4)
    with pytest.raises(ShapeError) as info:
        op(a, b)
    msg = str(info.value)
    assert msg.startswith(name)
    assert "(2, 3)" in msg and "(4,)" in msg


def test_broadcast_mismatch_with_grad_builds_no_graph():
    a = backprop.randn(2, 3, requires_grad=True)
    with pytest.raises(ShapeError):
        a * backprop.randn(3, 2)


def test_reshape_and_permute_messages():
    x = backprop.randn(2, 3)
    with pytest.raises(ShapeError, match=re.escape("(2, 3)")) as info:
        x.reshape(4)
    assert "reshape" in str(info.value)
    with pytest.raises(ShapeError, match="permute"):
        x.permute(0, 0)


def test_dim_out_of_range_names_op():
    with pytest.raises(IndexOutOfRange, match=r"sum.*\b2\b"):
        backprop.randn(2, 3).sum(dim=2)
    with pytest.raises(IndexError):
        backprop.randn(2, 3).mean(dim=-3)


def test_wrong_operand_type():
    with pytest.raises(TypeError):
        backprop.randn(2) + "a"
    with pytest.raises(TypeError):
        backprop.randn(2) * object()


# -- autograd misuse --------------------------------------------------------------------------


def test_backward_on_non_scalar_without_gradient():
    x = backprop.randn(2, 3, requires_grad=True)
    with pytest.raises(GradError) as info:
        (x * 2.0).backward()
    msg = str(info.value)
    assert "scalar" in msg and "(2, 3)" in msg and "gradient" in msg


def test_backward_twice():
    x = backprop.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GradError, match="second time") as info:
        y.backward()
    assert "retain_graph=True" in str(info.value)
    assert "SumBackward" in str(info.value)  # the first node of the spent graph is named


def test_backward_on_tensor_that_does_not_require_grad():
    with pytest.raises(GradError, match="does not require grad"):
        backprop.randn(3).sum().backward()


def test_autograd_grad_of_input_without_grad():
    x = backprop.randn(3, requires_grad=True)
    c = backprop.randn(3)
    with pytest.raises(GradError, match=r"inputs\[0\].*does not require grad"):
        backprop.autograd.grad((x * c).sum(), c)


def test_autograd_grad_output_without_grad():
    x = backprop.randn(3, requires_grad=True)
    with pytest.raises(GradError, match=r"outputs\[0\]"):
        backprop.autograd.grad(backprop.randn(3).sum(), x)


def test_autograd_grad_wrong_number_of_grad_outputs():
    x = backprop.randn(3, requires_grad=True)
    with pytest.raises(GradError, match="grad_outputs"):
        backprop.autograd.grad([x * 2.0, x * 3.0], x, grad_outputs=[backprop.ones(3)])


def test_inplace_on_tensor_needed_for_backward():
    w = backprop.randn(3)
    x = backprop.randn(3, requires_grad=True)
    y = (w * x).sum()
    w.mul_(2.0)
    with pytest.raises(InplaceError) as info:
        y.backward()
    msg = str(info.value)
    assert "MulBackward" in msg and "in-place" in msg and "(3,)" in msg


def test_inplace_on_leaf_requiring_grad():
    w = backprop.randn(3, requires_grad=True)
    with pytest.raises(InplaceError, match=r"add_.*no_grad"):
        w.add_(1.0)


def test_numpy_on_tensor_requiring_grad():
    with pytest.raises(GradError, match="detach"):
        backprop.randn(2, requires_grad=True).numpy()


def test_item_on_many_elements():
    with pytest.raises(ShapeError, match=re.escape("(2,)")):
        backprop.randn(2).item()


# -- dtypes ----------------------------------------------------------------------------------


def test_requires_grad_on_integer_tensor():
    with pytest.raises(DTypeError, match="int64"):
        backprop.tensor([1, 2], requires_grad=True)
    with pytest.raises(DTypeError, match="bool"):
        backprop.tensor([True]).requires_grad_()


def test_gradcheck_wants_float64():
    x = backprop.randn(2, requires_grad=True)
    with pytest.raises(DTypeError, match="float64"):
        backprop.autograd.gradcheck(lambda t: t * 2.0, (x,))


def test_unknown_dtype():
    with pytest.raises(DTypeError):
        backprop.tensor([1.0], dtype="complex128")
    with pytest.raises(DTypeError):
        backprop.from_numpy(np.array([1 + 2j]))


def test_float_index():
    if not hasattr(backprop.Tensor, "__getitem__"):
        pytest.skip("indexing not there yet")
    x = backprop.randn(3)
    with pytest.raises(DTypeError, match="float"):
        x[1.5]
    with pytest.raises(DTypeError, match="float32"):
        x[backprop.tensor([0.0, 1.0])]


def test_index_out_of_range():
    if not hasattr(backprop.Tensor, "__getitem__"):
        pytest.skip("indexing not there yet")
    with pytest.raises(IndexError, match="5"):
        backprop.randn(3)[5]


def test_mean_of_integer_tensor():
    with pytest.raises(DTypeError, match="mean"):
        backprop.tensor([1, 2]).mean()
