"""The padding layers (nn.ZeroPad2d, ConstantPad1d, ReflectionPad2d, ReplicationPad1d,
CircularPad2d, ...) against torch: values, gradients, repr, and errors."""
import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.errors import ShapeError

LAYERS = [
    ("ZeroPad1d", (2,), (2, 3, 5)),
    ("ZeroPad1d", ((1, 3),), (3, 4)),
    ("ZeroPad2d", ((1, 0, 2, 1),), (2, 3, 4, 5)),
    ("ZeroPad2d", ((-1, 2, 0, -2),), (1, 4, 5)),  # negative sizes crop
    ("ZeroPad3d", (1,), (1, 2, 3, 3, 3)),
    ("ConstantPad1d", ((2, 1), 3.5), (2, 3, 4)),
    ("ConstantPad2d", (1, -0.5), (2, 3, 4)),
    ("ConstantPad3d", ((1, 0, 0, 2, 1, 1), 2.0), (2, 2, 2, 3)),
    ("ReflectionPad1d", (2,), (2, 3, 5)),
    ("ReflectionPad1d", ((3, 1),), (3, 4)),
    ("ReflectionPad2d", ((1, 2, 3, 0),), (2, 3, 4, 5)),
    ("ReflectionPad2d", (1,), (3, 4, 4)),
    ("ReflectionPad3d", (1,), (1, 2, 3, 3, 3)),
    ("ReplicationPad1d", ((4, 2),), (2, 3, 3)),
    ("ReplicationPad2d", ((2, 0, 1, 3),), (2, 3, 4, 5)),
    ("ReplicationPad3d", (1,), (1, 2, 2, 3, 2)),
    ("CircularPad1d", ((2, 3),), (2, 3, 5)),
    ("CircularPad2d", ((1, 2, 2, 1),), (1, 2, 4, 5)),
    ("CircularPad2d", (1,), (2, 3, 3)),
    ("CircularPad3d", (1,), (1, 1, 2, 3, 2)),
]


@pytest.mark.parametrize("name, args, shape", LAYERS,
                         ids=[f"{n}-{s}" for n, _, s in LAYERS])
def test_padding_layer_matches_torch(oracle, name, args, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    ours, theirs = getattr(nn, name)(*args), getattr(oracle.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    bx = backprop.tensor(x, requires_grad=True)
    tx = oracle.tensor(x, requires_grad=True)
    out, ref = ours(bx), theirs(tx)
    assert tuple(out.shape) == tuple(ref.shape)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    g = np.random.default_rng(1).standard_normal(tuple(out.shape))
    out.backward(backprop.tensor(g))
    ref.backward(oracle.tensor(g))
    np.testing.assert_allclose(bx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_padding_in_a_model_keeps_dtype_and_trains():
    model = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(2, 3, 3), nn.ReLU(),
                          nn.ZeroPad2d((0, 1, 0, 1)))
    x = backprop.randn(2, 2, 5, 5)
    out = model(x)
    assert out.shape == (2, 3, 6, 6) and out.dtype == x.dtype
    out.sum().backward()
    assert model[1].weight.grad is not None


@pytest.mark.parametrize("build, match", [
    (lambda: nn.ZeroPad2d((1, 2)), r"ZeroPad2d: padding must be an int or a tuple of 4 ints"),
    (lambda: nn.ReflectionPad1d((1, 2, 3)), "ReflectionPad1d: padding must be"),
    (lambda: nn.CircularPad2d(1.5), "CircularPad2d: padding must be"),
    (lambda: nn.ConstantPad1d(True, 0.0), "ConstantPad1d: padding must be"),
])
def test_bad_padding_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_inputs_name_the_layer():
    with pytest.raises(ShapeError, match=r"ReflectionPad2d: expected 3D or 4D input \(got 2D"):
        nn.ReflectionPad2d(1)(backprop.randn(4, 4))
    with pytest.raises(ShapeError, match=r"CircularPad1d: expected 2D or 3D input \(got 4D"):
        nn.CircularPad1d(1)(backprop.randn(1, 2, 3, 4))
    with pytest.raises(ShapeError, match="reflect padding must be less than"):
        nn.ReflectionPad1d(3)(backprop.randn(1, 2, 3))
    with pytest.raises(TypeError, match="ZeroPad1d: expected a Tensor"):
        nn.ZeroPad1d(1)([1.0, 2.0])
    with pytest.raises(TypeError, match="ConstantPad2d: value must be a number"):
        nn.ConstantPad2d(1, "0")
