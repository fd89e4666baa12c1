"""backprop: backpropagation you can see, over NumPy.

A reverse-mode automatic-differentiation engine with PyTorch's names::

    import backprop
    x = backprop.tensor([0.5, 0.8], requires_grad=True)
    y = backprop.sigmoid(x @ backprop.tensor([0.4, 0.5]))
    y.backward()
    x.grad
"""
from backprop._allocator import keep_freed_memory_unless_disabled as _keep_freed_memory

# A training step frees and makes the same large arrays every step: keep freed memory for
# reuse rather than fault fresh pages in (half a CNN step; see backprop/_allocator.py).
_keep_freed_memory()

from backprop import autograd, cuda, data, functional, nn, ops, optim, random, utils  # noqa: E402
from backprop import accelerator, backends  # noqa: E402 (torch.accelerator, torch.backends)
from backprop.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from backprop.autograd.grad_mode import inference_mode
from backprop.creation import (
    arange, as_tensor, empty, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
    rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from backprop.creation import (  # noqa: E402 (PyTorch's other creation functions, defaults)
    empty_like, get_default_device, logspace, normal, randint_like, set_default_device,
)
from backprop.dtypes import (  # noqa: E402 (layouts and memory formats, the default dtype)
    channels_last, contiguous_format, get_default_dtype, layout, memory_format, preserve_format,
    set_default_dtype, strided,
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
from backprop.ops.attention import tril, triu  # noqa: E402
from backprop.ops import (  # noqa: E402 (more tensor maths: backprop/ops/math.py)
    acos, aminmax, arccos, arcsin, arctan, arctan2, asin, atan, atan2, atleast_1d, atleast_2d,
    atleast_3d, block_diag, broadcast_shapes, broadcast_tensors, ceil, column_stack,
    count_nonzero, cosh, cumprod, diag, diag_embed, diagonal, diff, dstack, erf, erfc, erfinv,
    fix, floor, fmod, frac, hstack, kron, kthvalue, lerp, log2, log10, logaddexp, logical_and,
    logical_or, logical_xor, median, meshgrid, mode, nan_to_num, reciprocal, repeat_interleave,
    roll, round, row_stack, signbit, sinh, std_mean, take, tan, tensordot, trace, trunc,
    var_mean, vstack, xlogy,
)
from backprop.ops import (  # noqa: E402 (indices, dtype facts, products: ops/math.py)
    addcdiv, addcmul, addmm, argwhere, baddbmm, bincount, bucketize, can_cast, cdist, finfo,
    histc, iinfo, index_add, index_copy, index_fill, is_floating_point, is_tensor,
    masked_scatter, nonzero, numel, promote_types, result_type, scatter, searchsorted, unique,
)
from backprop.ops import bernoulli, multinomial  # noqa: E402 (ops/sampling.py)
from backprop.ops.conv import (  # noqa: E402 (torch.conv1d, torch.conv_transpose2d, ...)
    avg_pool1d, conv1d, conv_transpose1d, conv_transpose2d, max_pool1d,
)
from backprop.nn.loss import cosine_similarity, pairwise_distance  # noqa: E402 (torch's names)
from backprop.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from backprop.serialization import SerializationError, load, save
from backprop.tensor import Device as device
from backprop.tensor import DeviceError  # noqa: E402
from backprop.tensor import Size, Tensor
from backprop._tensor_str import set_printoptions  # noqa: E402 (PyTorch's printing)

bool = bool_  # noqa: A001 (PyTorch's name: backprop.bool)
float = float32  # noqa: A001
int = int32  # noqa: A001

__version__ = "0.1.0"
