"""backprop: backpropagation you can see, over NumPy.

A reverse-mode automatic-differentiation engine with PyTorch's names::

    import backprop
    x = backprop.tensor([0.5, 0.8], requires_grad=True)
    y = backprop.sigmoid(x @ backprop.tensor([0.4, 0.5]))
    y.backward()
    x.grad
"""
from backprop import autograd, cuda, data, functional, nn, ops, optim, random, utils
from backprop.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from backprop.autograd.grad_mode import inference_mode
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
from backprop.functional import dropout, log_softmax, softmax
from backprop.ops import (
    abs, absolute, add, amax, amin, argmax, argmin, avg_pool2d, bmm, broadcast_to, cast, cat,
    chunk, clamp, clamp_max, clamp_min, clip, clone, concat, concatenate, conv2d, cos, div, dot,
    einsum, elu, eq, exp, expand, flatten, flip, gather, ge, gelu, ger, gt, index_select, le,
    leaky_relu, linear, log, logsumexp, lt, masked_fill, masked_select, matmul, max, max_pool2d,
    maximum, mean, min, minimum, mm, moveaxis, movedim, mul, narrow, ne, neg, norm, outer, pad,
    permute, pow, prod, ravel, relu, repeat, reshape, rsqrt, scatter_add, sgn, sigmoid, sign, silu,
    sin, softplus, split, sqrt, square, squeeze, stack, std, sub, sum, swapaxes, swapdims, t,
    take_along_dim, tanh, tile, transpose, unbind, unflatten, unsqueeze, var, view, where,
)
from backprop.ops import (  # noqa: E402 (added after the first group; kept separate for diffs)
    all, allclose, any, argsort, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, cumsum, equal,
    expm1, floor_divide, isclose, isfinite, isinf, isnan, log1p, logical_not, remainder, sort,
    topk,
)
from backprop.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from backprop.serialization import SerializationError, load, save
from backprop.tensor import Device as device
from backprop.tensor import Size, Tensor

bool = bool_  # noqa: A001 (PyTorch's name: backprop.bool)
float = float32  # noqa: A001
int = int32  # noqa: A001

__version__ = "0.1.0"
