"""gradcheck: finite differences against the engine's gradients, and its failure reports."""
from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

import backprop
from backprop import DTypeError, GradcheckError
from backprop.autograd import Function, gradcheck

# the module (the package attribute of the same name is the function)
gradcheck_module = importlib.import_module("backprop.autograd.gradcheck")


def randn64(*shape, requires_grad=True):
    return backprop.randn(*shape, dtype=backprop.float64, requires_grad=requires_grad)


class Square(Function):
    """y = x²; dy/dx = 2x"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 2 * x


class WrongSquare(Function):
    """y = x², but backward returns twice the right gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 4 * x


class WrongSecondInput(Function):
    """out = a * b; b's gradient is doubled at its element 2 only."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        gb = grad_output * a
        gb[..., 2] *= 2.0
        return grad_output * b, gb


# -- passing -----------------------------------------------------------------------------


def test_passes_for_correct_custom_function():
    assert gradcheck(Square.apply, (randn64(4),)) is True


def test_passes_for_composite_of_core_ops():
    a, b = randn64(3, 4), randn64(4, 2)

    def f(a, b):
        h = a @ b
        return (h.exp() / (h.exp() + 1.0)).log().mean(dim=0) * 3.0 - b.sum()

    assert gradcheck(f, (a, b))


def test_passes_with_broadcasting_inputs():
    a, b = randn64(3, 1), randn64(1, 4)
    assert gradcheck(lambda a, b: a * b + a / (b * b + 1.0), (a, b))


def test_single_tensor_input_is_accepted():
    assert gradcheck(lambda x: (x * x).sum(), randn64(3))


def test_multiple_outputs():
    a, b = randn64(3), randn64(3)
    assert gradcheck(lambda a, b: (a * b, a.exp() + b, (a - b).sum()), (a, b))


def test_large_output_uses_random_probes_and_passes():
    n = gradcheck_module.FULL_JACOBIAN_MAX_OUTPUTS + 36
    x = randn64(n)
    assert x.numel() > gradcheck_module.FULL_JACOBIAN_MAX_OUTPUTS
    assert gradcheck(lambda t: t * t * 0.5 + t.exp(), (x,))


def test_non_tensor_and_constant_arguments():
    x = randn64(3)
    c = randn64(3, requires_grad=False)
    assert gradcheck(lambda x, c, k: x * c * k, (x, c, 2.5))


def test_input_an_output_does_not_depend_on():
    a, b = randn64(2), randn64(2)
    assert gradcheck(lambda a, b: (a * 2.0, (a * a).sum()), (a, b))


def test_inputs_restored_after_check():
    x = randn64(5)
    before = x.detach().numpy().copy()
    gradcheck(Square.apply, (x,))
    np.testing.assert_array_equal(x.detach().numpy(), before)
    assert x.grad is None  # gradcheck does not accumulate into .grad


# -- failing ----------------------------------------------------------------------------


def test_wrong_gradient_raises_naming_input_element_and_values():
    x = backprop.tensor([1.0, 2.0, 3.0], dtype=backprop.float64, requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSquare.apply, (x,))
    msg = str(info.value)
    assert "input 0" in msg
    assert "element (0,)" in msg
    # d(x0²)/dx0 at x0 = 1: analytic (wrong) 4, numerical 2
    assert re.search(r"analytic 4\b", msg), msg
    assert re.search(r"numerical 2\b", msg), msg


def test_wrong_gradient_of_second_input_names_it():
    a = backprop.tensor([[1.0, 2.0, 3.0]], dtype=backprop.float64, requires_grad=True)
    b = backprop.tensor([[4.0, 5.0, 6.0]], dtype=backprop.float64, requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(WrongSecondInput.apply, (a, b))
    msg = str(info.value)
    assert "input 1" in msg
    assert "element (0, 2)" in msg
    assert "output 0 element (0, 2)" in msg
    assert re.search(r"analytic 6\b", msg), msg  # 2 * a[0, 2]
    assert re.search(r"numerical 3\b", msg), msg  # a[0, 2]


def test_gradcheck_error_is_an_assertion_error():
    x = randn64(2)
    with pytest.raises(AssertionError):
        gradcheck(WrongSquare.apply, (x,))


def test_raise_exception_false_returns_false():
    x = randn64(3)
    assert gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False
    assert gradcheck(Square.apply, (x,), raise_exception=False) is True


def test_large_output_wrong_gradient_is_caught():
    x = randn64(100)
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(WrongSquare.apply, (x,))


def test_wrong_gradient_in_second_output_is_caught():
    x = randn64(3)
    with pytest.raises(GradcheckError, match="output 1"):
        gradcheck(lambda t: (Square.apply(t), WrongSquare.apply(t)), (x,))


def test_float32_input_is_refused():
    x = backprop.randn(3, requires_grad=True)
    assert x.dtype == backprop.float32
    with pytest.raises(DTypeError, match="input 0"):
        gradcheck(Square.apply, (x,))


def test_float32_second_input_is_refused():
    with pytest.raises(DTypeError, match="input 1"):
        gradcheck(lambda a, b: a * b, (randn64(2), backprop.randn(2, requires_grad=True)))


def test_nothing_to_check_raises():
    with pytest.raises(ValueError):
        gradcheck(lambda t: t * 2.0, (randn64(2, requires_grad=False),))


def test_tolerances_are_honoured():
    x = backprop.tensor([1.0, 2.0], dtype=backprop.float64, requires_grad=True)

    class SlightlyOff(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3.0

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 3.0 * (1 + 1e-4)

    assert gradcheck(SlightlyOff.apply, (x,))  # within rtol = 1e-3
    assert not gradcheck(SlightlyOff.apply, (x,), atol=1e-8, rtol=1e-6, raise_exception=False)
