"""backprop: backpropagation you can see, over NumPy.

A reverse-mode automatic-differentiation engine with PyTorch's names::

    import backprop
    x = backprop.tensor([0.5, 0.8], requires_grad=True)
    y = backprop.sigmoid(x @ backprop.tensor([0.4, 0.5]))
    y.backward()
    x.grad
"""
from backprop import autograd, ops, random
from backprop.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from backprop.creation import (
    arange, as_tensor, empty, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
    rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from backprop.dtypes import (
    bool_, double, dtype, float16, float32, float64, half, int8, int16, int32, int64, long,
    short, uint8,
)
from backprop.errors import (
    AnomalyError, BackpropError, DTypeError, GradcheckError, GradError, IndexOutOfRange,
    InplaceError, ShapeError,
)
from backprop.ops import (
    add, cast, clone, div, eq, exp, ge, gt, le, log, lt, matmul, mean, mul, ne, neg, permute,
    pow, reshape, sub, sum, t, transpose, view,
)
from backprop.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from backprop.tensor import Tensor

bool = bool_  # noqa: A001 (PyTorch's name: backprop.bool)
float = float32  # noqa: A001
int = int32  # noqa: A001

__version__ = "0.1.0"
