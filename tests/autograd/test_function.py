"""Custom ``Function`` subclasses: the documented example, ctx, and the engine's checks."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

import backprop
import backprop.autograd.function as function_module
from backprop import GradError, ShapeError
from backprop.autograd import Function, gradcheck


def t64(data, requires_grad=True):
    return backprop.tensor(data, dtype=backprop.float64, requires_grad=requires_grad)


# -- the documented example ------------------------------------------------------------------


def _docstring_example() -> str:
    doc = function_module.__doc__
    start = doc.index("Example")
    block = doc[doc.index("::", start) + 2:]
    return textwrap.dedent(block)


def test_docstring_example_runs_as_written():
    code = _docstring_example()
    assert "class Cube(Function)" in code
    ns = {"backprop": backprop, "__name__": "tests.autograd.docstring_example"}
    exec(compile(code, "<function.py docstring>", "exec"), ns)
    x = ns["x"]
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.detach().numpy() ** 2)
    assert gradcheck(ns["Cube"].apply, (t64([0.5, -1.5, 2.0]),))


class Cube(Function):
    """y = x³;  dy/dx = 3x²"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x ** 2


def test_cube_example():
    x = t64([1.0, -2.0, 0.5])
    y = Cube.apply(x)
    np.testing.assert_allclose(y.detach().numpy(), [1.0, -8.0, 0.125])
    assert y.grad_fn.op is Cube  # (in PyTorch too, grad_fn is not an instance of Cube)
    assert y.grad_fn.name() == "CubeBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0, 0.75])
    assert gradcheck(Cube.apply, (t64([0.3, -1.1]),))


def test_forward_and_backward_see_arrays():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, x):
            seen["forward"] = type(x)
            return x * 2.0

        @staticmethod
        def backward(ctx, grad_output):
            seen["backward"] = type(grad_output)
            return grad_output * 2.0

    Probe.apply(t64([1.0])).sum().backward()
    assert seen == {"forward": np.ndarray, "backward": np.ndarray}


# -- ctx ---------------------------------------------------------------------------------


def test_ctx_attributes_reach_backward():
    class Scale(Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            ctx.note = "kept"
            return x * k

        @staticmethod
        def backward(ctx, grad_output):
            assert ctx.note == "kept"
            return grad_output * ctx.k, None

    x = t64([1.0, 2.0])
    y = Scale.apply(x, 4.0)
    assert y.grad_fn.k == 4.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_needs_input_grad():
    seen = {}

    class ThreeArgs(Function):
        @staticmethod
        def forward(ctx, a, b, k):
            seen["forward"] = ctx.needs_input_grad
            return a * b * k

        @staticmethod
        def backward(ctx, grad_output):
            seen["backward"] = ctx.needs_input_grad
            return grad_output * 2.0 * 3.0, None, None

    a, b = t64([1.0]), t64([2.0], requires_grad=False)
    ThreeArgs.apply(a, b, 3.0).sum().backward()
    assert seen["forward"] == (True, False, False)
    assert seen["backward"] == (True, False, False)
    np.testing.assert_allclose(a.grad.numpy(), [6.0])
    assert b.grad is None


def test_needs_input_grad_all_false_under_no_grad():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["needs"] = ctx.needs_input_grad
            return a + b

    with backprop.no_grad():
        y = Probe.apply(t64([1.0]), t64([2.0]))
    assert seen["needs"] == (False, False)
    assert y.grad_fn is None and not y.requires_grad


def test_saved_tensors_freed_after_backward():
    x = t64([2.0])
    y = Cube.apply(x)
    ctx = y.grad_fn
    assert len(ctx.saved_tensors) == 1
    y.sum().backward()
    assert ctx.saved_tensors is None


def test_no_graph_when_no_input_requires_grad():
    y = Cube.apply(t64([2.0], requires_grad=False))
    assert not y.requires_grad and y.grad_fn is None


# -- what backward may return ---------------------------------------------------------------


def test_backward_may_return_a_tuple_a_list_or_a_bare_array():
    class Pair(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad_output):
            return [grad_output, grad_output * 2.0]

    a, b = t64([1.0]), t64([1.0])
    Pair.apply(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.0])
    np.testing.assert_allclose(b.grad.numpy(), [2.0])

    class Bare(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 5.0

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 5.0

    c = t64([1.0])
    Bare.apply(c).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), [5.0])


def test_backward_may_return_tensors():
    class TensorGrad(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2.0

        @staticmethod
        def backward(ctx, grad_output):
            return backprop.tensor(grad_output * 2.0)

    x = t64([1.0, 2.0])
    TensorGrad.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_forward_may_return_a_tensor_or_a_scalar():
    class TensorOut(Function):
        @staticmethod
        def forward(ctx, a):
            return backprop.tensor(a * 2.0)

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * 2.0

    class ScalarOut(Function):
        @staticmethod
        def forward(ctx, a):
            return float(a.sum())

        @staticmethod
        def backward(ctx, grad_output):
            return np.ones(2) * grad_output

    x = t64([1.0, 2.0])
    y = TensorOut.apply(x)
    assert isinstance(y, backprop.Tensor) and y.requires_grad
    s = ScalarOut.apply(x)
    assert s.shape == () and s.item() == 3.0
    s.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_broadcast_gradient_is_reduced_by_the_engine():
    class BroadcastAdd(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output, grad_output  # both in the output's (broadcast) shape

    a, b = t64(np.zeros((3, 1))), t64(np.zeros(4))
    BroadcastAdd.apply(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 3.0))


def test_gradient_cast_to_input_dtype():
    class Upcast(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output.astype(np.float64) * 2

    x = backprop.tensor([1.0, 2.0], requires_grad=True)  # float32
    Upcast.apply(x).sum().backward()
    assert x.grad.dtype == backprop.float32


def test_none_gradient_for_an_input_that_requires_grad():
    class OnlyFirst(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * 1.0 + b * 0.0

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output, None

    a, b = t64([1.0]), t64([1.0])
    OnlyFirst.apply(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.0])
    assert b.grad is None  # a None gradient is "no gradient", as in PyTorch


def test_none_gradient_for_a_non_leaf_input():
    class Blocks(Function):
        @staticmethod
        def forward(ctx, a):
            return a.copy()

        @staticmethod
        def backward(ctx, grad_output):
            return None

    x = t64([1.0, 2.0])
    y = (x * 2.0 + Blocks.apply(x * 3.0)).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


# -- the engine's checks -------------------------------------------------------------------


class TooMany(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 2.0, grad_output


class TooFew(Function):
    @staticmethod
    def forward(ctx, a, b, k):
        return a * b * k

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output


class WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x.sum(axis=1)

    @staticmethod
    def backward(ctx, grad_output):
        return np.ones((5, 7))


def test_too_many_gradients_raises_naming_the_op():
    x = t64([1.0])
    with pytest.raises(GradError, match="TooManyBackward") as info:
        TooMany.apply(x).sum().backward()
    assert re.search(r"\b2\b", str(info.value)) and re.search(r"\b1\b", str(info.value))


def test_too_few_gradients_raises_naming_the_op():
    a, b = t64([1.0]), t64([2.0])
    with pytest.raises(GradError, match="TooFewBackward"):
        TooFew.apply(a, b, 3.0).sum().backward()


def test_wrongly_shaped_gradient_raises_naming_the_op():
    x = t64(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="WrongShapeBackward") as info:
        WrongShape.apply(x).sum().backward()
    msg = str(info.value)
    assert "(5, 7)" in msg and "(2, 3)" in msg


def test_missing_backward_raises_not_implemented():
    class NoBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

    with pytest.raises(NotImplementedError):
        NoBackward.apply(t64([1.0])).sum().backward()


# -- arguments --------------------------------------------------------------------------------


def test_non_tensor_arguments_pass_through_unchanged():
    seen = {}

    class Mixed(Function):
        @staticmethod
        def forward(ctx, x, k, name, axes, flag=False):
            seen.update(k=k, name=name, axes=axes, flag=flag)
            ctx.k = k
            return x * k

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.k, None, None, None

    x = t64([1.0, 2.0])
    y = Mixed.apply(x, 3, "scale", (0, 1), flag=True)
    assert seen == {"k": 3, "name": "scale", "axes": (0, 1), "flag": True}
    assert len(y.grad_fn.next_functions) == 1  # plain values have no entry, as in PyTorch
    assert y.grad_fn.next_functions[0][0].variable is x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    assert y.grad_fn.next_functions == ()  # backward freed the node's links


def test_same_tensor_passed_twice():
    class MulF(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad_output):
            a, b = ctx.saved_tensors
            return grad_output * b, grad_output * a

    x = t64([3.0])
    MulF.apply(x, x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0])


# -- registry -----------------------------------------------------------------------------


def test_registry_holds_built_in_and_user_ops():
    reg = Function.registry
    assert reg["backprop.ops.elementwise.Mul"].__name__ == "Mul"
    assert reg[f"{Cube.__module__}.{Cube.__qualname__}"] is Cube
    assert reg[f"{TooMany.__module__}.TooMany"] is TooMany


def test_subclass_defined_later_is_registered():
    class Late(Function):
        @staticmethod
        def forward(ctx, x):
            return x

    key = f"{__name__}.{Late.__qualname__}"
    assert Function.registry[key] is Late
    assert "<locals>" in key
