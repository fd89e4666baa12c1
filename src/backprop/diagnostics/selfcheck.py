"""``run_selfcheck``: backprop checks its own gradients, op by op and layer by layer.

A compact catalogue of small float64 cases: at least one for every built-in
differentiable primitive (every ``Function`` subclass defined in the ``backprop``
package) and one for every ``nn`` layer, where both the input and the parameter
gradients are checked. Each case runs :func:`backprop.autograd.gradcheck`
(which decides pass or fail) and measures the largest disagreement between
autograd and central differences along a random projection of the output (the
``max_error`` column). ``backprop gradcheck`` prints the result.

This catalogue is for users (is my installation computing correct gradients?);
the test suite's catalogue (``tests/ops``) is larger and also compares with PyTorch.

Example::

    from backprop.diagnostics import run_selfcheck
    report = run_selfcheck(pattern="conv")
    print(report)            # a table, then "N passed, 0 failed in 0.1 s"
    report.passed            # True
"""
from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

import backprop.functional as BF
from backprop import nn
from backprop import ops as O
from backprop.autograd import Function, gradcheck, no_grad
from backprop.autograd import grad as autograd_grad
from backprop.autograd.function import AccumulateGrad
from backprop.creation import tensor
from backprop.errors import GradcheckError
from backprop.nn import functional as F
from backprop.ops.recurrent import GRUSequence, LSTMSequence, RNNSequence
from backprop.random import get_rng_state, manual_seed, set_rng_state
from backprop.tensor import Tensor
from backprop.utils._named import NamedRows

__all__ = ["SelfCheckResult", "SelfCheckReport", "run_selfcheck", "CASES",
           "builtin_primitives", "uncovered_primitives"]

#: The finite-difference step of the max-error measurement (gradcheck's own default;
#: a case's ``gradcheck_kw`` may set another).
EPS = 1e-6


@dataclass
class Case:
    """One self-check. ``make(rng)`` returns the arguments: float64 arrays become tensors
    that require grad, other arrays tensors without grad, anything else is passed as is.

    For an op, ``fn(*args)`` is the computation. For a layer, ``build()`` makes the
    module (seeded, converted to float64) and the computation is ``module(*args)``;
    its parameters are checked too. ``random``: the computation draws random numbers
    (Dropout), so the global random state is reset before each evaluation.
    """

    name: str
    kind: str
    make: Callable
    fn: Callable | None = None
    build: Callable | None = None
    random: bool = False
    gradcheck_kw: dict = field(default_factory=dict)


# -- input makers -----------------------------------------------------------------------------
def _n(*shapes):
    """Standard-normal float64 arrays, one per shape."""
    return lambda r: [r.standard_normal(s) for s in shapes]


def _pos(*shape, low=0.5, high=2.0):
    return lambda r: [r.uniform(low, high, shape)]


def _off(*shape, points=(0.0,), gap=0.1):
    """Normal values at least ``gap`` away from each kink in ``points``."""
    def make(r):
        x = r.standard_normal(shape)
        for p in points:
            close = np.abs(x - p) < gap
            x[close] = p + np.where(x[close] >= p, gap, -gap)
        return [x]
    return make


def _sep(*shape):
    """Distinct values 0.5 apart in random order: max/min/sort see no ties."""
    def make(r):
        n = int(np.prod(shape))
        return [(r.permutation(n) * 0.5 - n / 4).reshape(shape)]
    return make


def _idx(values):
    return np.asarray(values, dtype=np.int64)


def _apart(r, shape):
    """Two arrays whose elements differ by 0.3 to 1 (no ties for maximum/minimum, no
    kink of |a - b| within reach of the finite differences)."""
    a = r.standard_normal(shape)
    return [a, a + r.choice([-1.0, 1.0], shape) * r.uniform(0.3, 1.0, shape)]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _put_row(a, v):
    out = a * 1.0  # write into a copy: the input stays intact
    out[0] = v
    return out


def _put_through_view(a, v):
    out = a * 1.0
    view = out[:, 1:]  # the write reaches out through the view (CopySlices, AsStrided)
    view[0] = v
    return out + view.sum()


def _copy_into(a, v):
    out = a * 1.0
    out.copy_(v)  # every element replaced (Overwrite)
    return out * a


def _hooked(module):
    """``module`` with a full backward hook: its inputs and outputs pass through hook nodes."""
    module.register_full_backward_hook(lambda m, gin, gout: None)
    return module


def _frozen(module):
    """``module`` with its parameters fixed: only the inputs' gradients are checked."""
    module.requires_grad_(False)
    return module


def _op(name, fn, make, **kw):
    return Case(name, "op", make, fn=fn, **kw)


def _layer(name, build, make, **kw):
    return Case(name, "layer", make, build=build, **kw)


# Fixed running statistics for BatchNorm in eval mode (constants, not inputs).
_RM, _RV = np.array([0.2, -0.1, 0.3]), np.array([0.5, 1.5, 0.8])

_OPS = [
    # element-wise arithmetic and maths
    _op("add", lambda a, b: a + b, _n((2, 3), (3,))),
    _op("sub", lambda a, b: a - b, _n((2, 3), (2, 1))),
    _op("mul", lambda a, b: a * b, _n((2, 3), (3,))),
    _op("div", lambda a, b: a / b, lambda r: _n((2, 3))(r) + _pos(3)(r)),
    _op("neg", lambda a: -a, _n((2, 3))),
    _op("pow/scalar", lambda a: a ** 3, _n((2, 3))),
    _op("pow/tensor", lambda a, b: a ** b, lambda r: _pos(2, 3)(r) + _n((3,))(r)),
    _op("exp", O.exp, _n((2, 3))),
    _op("log", O.log, _pos(2, 3)),
    _op("log1p", O.log1p, _pos(2, 3, low=-0.5)),
    _op("expm1", O.expm1, _n((2, 3))),
    _op("sqrt", O.sqrt, _pos(2, 3)),
    _op("rsqrt", O.rsqrt, _pos(2, 3)),
    _op("sin", O.sin, _n((2, 3))),
    _op("cos", O.cos, _n((2, 3))),
    _op("square", O.square, _n((2, 3))),
    _op("abs", O.abs, _off(2, 3)),
    _op("sign", lambda a: O.sign(a) * a, _off(2, 3)),
    _op("clamp", lambda a: O.clamp(a, -0.5, 0.5), lambda r: [
        r.choice([-0.8, -0.2, 0.2, 0.8], (2, 3)) + r.uniform(-0.1, 0.1, (2, 3))]),
    _op("maximum", O.maximum, lambda r: _apart(r, (2, 3))),
    _op("minimum", O.minimum, lambda r: _apart(r, (2, 3))),
    _op("where", O.where, lambda r: [r.random((2, 3)) > 0.5, *_n((2, 3), (3,))(r)]),
    _op("cast", lambda a: a.float().double() * 1.0, _n((4,)),
        gradcheck_kw={"eps": 1e-3, "atol": 1e-4, "rtol": 1e-3}),  # float32 in the middle
    _op("clone", lambda a: a.clone() * 2.0, _n((2, 3))),
    # reductions
    _op("sum", lambda a: a.sum(1), _n((2, 3))),
    _op("mean", lambda a: a.mean(), _n((2, 3))),
    _op("prod", lambda a: a.prod(1), _n((2, 3))),
    _op("var", lambda a: a.var(1), _n((2, 3))),
    _op("std", lambda a: a.std(0), _n((3, 2))),
    _op("amax", lambda a: a.amax(1), _sep(2, 3)),
    _op("amin", lambda a: a.amin(0), _sep(2, 3)),
    _op("max/dim", lambda a: O.max(a, 1).values, _sep(2, 3)),
    _op("norm", lambda a: a.norm(), _n((2, 3))),
    _op("logsumexp", lambda a: O.logsumexp(a, 1), _n((2, 3))),
    _op("cumsum", lambda a: a.cumsum(1), _n((2, 3))),
    # shapes
    _op("reshape", lambda a: a.reshape(3, 2), _n((2, 3))),
    _op("permute", lambda a: a.permute(2, 0, 1), _n((2, 1, 3))),
    _op("expand", lambda a: a.expand(2, 3), _n((1, 3))),
    _op("narrow", lambda a: O.narrow(a, 1, 1, 2), _n((2, 3))),
    _op("cat", lambda a, b: O.cat([a, b], 0), _n((1, 3), (2, 3))),
    _op("stack", lambda a, b: O.stack([a, b], 1), _n((3,), (3,))),
    _op("flip", lambda a: O.flip(a, (1,)), _n((2, 3))),
    _op("repeat", lambda a: a.repeat(2, 1), _n((1, 3))),
    _op("pad", lambda a: O.pad(a, (1, 2)), _n((2, 2))),
    # indexing
    _op("getitem", lambda a: a[1:, ::2], _n((3, 3))),
    _op("gather", lambda a, i: a.gather(1, i), lambda r: [r.standard_normal((2, 3)),
                                                          _idx([[2, 0], [1, 1]])]),
    _op("index_select", lambda a, i: a.index_select(0, i),
        lambda r: [r.standard_normal((3, 2)), _idx([2, 0, 2])]),
    _op("masked_fill", lambda a, m: a.masked_fill(m, 0.5),
        lambda r: [r.standard_normal((2, 3)), np.array([[True, False, True], [False] * 3])]),
    _op("scatter_add", lambda a, i, s: a.scatter_add(0, i, s), lambda r: [
        r.standard_normal((3, 2)), _idx([[0, 2], [2, 2]]), r.standard_normal((2, 2))]),
    _op("setitem", _put_row, _n((2, 3), (3,))),
    _op("setitem through a view", _put_through_view, _n((2, 3), (2,))),
    _op("copy_", _copy_into, _n((2, 3), (3,))),
    # products
    _op("matmul", lambda a, b: a @ b, _n((2, 3), (3, 2))),
    _op("einsum", lambda a, b: O.einsum("ij,jk->ik", a, b), _n((2, 3), (3, 2))),
    _op("linear", O.linear, _n((2, 3), (2, 3), (2,))),
    # convolution and pooling
    _op("conv2d", O.conv2d, _n((1, 1, 3, 3), (2, 1, 2, 2), (2,))),
    _op("conv2d/stride-padding", lambda x, w: O.conv2d(x, w, stride=2, padding=1),
        _n((1, 1, 4, 4), (1, 1, 3, 3))),
    _op("max_pool2d", lambda x: O.max_pool2d(x, 2), _sep(1, 1, 4, 4)),
    _op("avg_pool2d", lambda x: O.avg_pool2d(x, 2), _n((1, 1, 4, 4))),
    _op("conv1d", lambda x, w, b: O.conv1d(x, w, b, stride=2, padding=1),
        _n((1, 2, 5), (2, 2, 3), (2,))),
    _op("conv_transpose2d", lambda x, w, b: O.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                               output_padding=1),
        _n((1, 2, 2, 2), (2, 1, 3, 3), (1,))),
    _op("conv_transpose1d", lambda x, w: O.conv_transpose1d(x, w, stride=2),
        _n((1, 2, 3), (2, 2, 2))),
    # activations
    _op("relu", O.relu, _off(2, 3)),
    _op("leaky_relu", lambda a: O.leaky_relu(a, 0.1), _off(2, 3)),
    _op("sigmoid", O.sigmoid, _n((2, 3))),
    _op("tanh", O.tanh, _n((2, 3))),
    _op("silu", O.silu, _n((2, 3))),
    _op("gelu", O.gelu, _n((2, 3))),
    _op("gelu/tanh", lambda a: O.gelu(a, approximate="tanh"), _n((2, 3))),
    _op("elu", O.elu, _off(2, 3)),
    _op("softplus", O.softplus, _n((2, 3))),
    _op("hardtanh", lambda a: O.hardtanh(a, -0.5, 0.5), lambda r: [
        r.choice([-0.8, -0.2, 0.2, 0.8], (2, 3)) + r.uniform(-0.1, 0.1, (2, 3))]),
    _op("hardsigmoid", O.hardsigmoid, _off(2, 3, points=(-3.0, 3.0))),
    _op("hardswish", O.hardswish, lambda r: [  # all three pieces, away from the kinks
        r.choice([-3.6, -1.0, 1.0, 3.6], (2, 3)) + r.uniform(-0.3, 0.3, (2, 3))]),
    _op("logsigmoid", O.logsigmoid, _n((2, 3))),
    # fused losses and the softmax family
    _op("softmax", lambda a: BF.softmax(a, 1), _n((2, 3))),
    _op("log_softmax", lambda a: BF.log_softmax(a, 1), _n((2, 3))),
    _op("cross_entropy", O.cross_entropy, lambda r: [r.standard_normal((4, 3)),
                                                     _idx([0, 2, 1, 2])]),
    _op("nll_loss", O.nll_loss, lambda r: [r.standard_normal((4, 3)), _idx([1, 0, 2, 2])]),
    _op("binary_cross_entropy", lambda p, t: O.binary_cross_entropy(p, t), lambda r: [
        r.uniform(0.1, 0.9, (2, 3)), r.uniform(0.0, 1.0, (2, 3))]),
    _op("bce_with_logits", O.binary_cross_entropy_with_logits, _n((2, 3), (2, 3))),
    _op("mse_loss", lambda x, t: O.fused.mse_loss(x, t), _n((2, 3), (2, 3))),
    # nn.functional primitives
    _op("batch_norm/train", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        _n((4, 3), (3,), (3,))),
    _op("batch_norm/eval", lambda x, w, b: F.batch_norm(x, tensor(_RM), tensor(_RV), w, b),
        _n((4, 3), (3,), (3,))),
    _op("layer_norm", lambda x, w, b: F.layer_norm(x, (3,), w, b), _n((2, 3), (3,), (3,))),
    _op("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), _n((2, 4, 3), (4,), (4,))),
    _op("instance_norm", lambda x: F.instance_norm(x), _n((2, 2, 3))),
    _op("interpolate/bilinear", lambda x: F.interpolate(x, size=(3, 4), mode="bilinear"),
        _n((1, 1, 2, 3))),
    _op("interpolate/nearest", lambda x: F.interpolate(x, scale_factor=2), _n((1, 1, 2, 2))),
    _op("embedding", lambda i, w: F.embedding(i, w), lambda r: [
        _idx([[0, 2], [2, 3]]), r.standard_normal((4, 2))]),
    # recurrent layers: a whole (packed) sequence per op
    _op("lstm_sequence", lambda xp, h, c, w: LSTMSequence.apply(xp, h, c, w, None, (2, 1), False),
        _n((3, 8), (2, 2), (2, 2), (8, 2))),
    _op("lstm_sequence/projection/reverse", lambda xp, h, c, w, wr: LSTMSequence.apply(
        xp, h, c, w, wr, (2, 1), True), _n((3, 8), (2, 1), (2, 2), (8, 1), (1, 2))),
    _op("gru_sequence", lambda xp, h, w, b: GRUSequence.apply(xp, h, w, b, (2, 1), False),
        _n((3, 6), (2, 2), (6, 2), (6,))),
    _op("rnn_sequence", lambda xp, h, w: RNNSequence.apply(xp, h, w, (2, 2), True, "tanh"),
        _n((4, 2), (2, 2), (2, 2))),
    # attention
    _op("scaled_dot_product_attention", lambda q, k, v, m: F.scaled_dot_product_attention(
        q, k, v, attn_mask=m), _n((1, 2, 2), (1, 3, 2), (1, 3, 2), (2, 3))),
    _op("tril", lambda a: a.tril(), _n((3, 3))),
    _op("triu", lambda a: a.triu(1), _n((2, 3))),
    # the graph nodes of module backward hooks (one input; several inputs)
    _op("backward_hook/one-input", lambda a: _hooked(nn.Identity())(a) * 2.0, _n((2, 3))),
    _op("backward_hook/two-inputs", lambda a, b: _hooked(nn.MSELoss())(a, b),
        _n((2, 3), (2, 3))),
]

# more tensor maths (backprop/ops/math.py)
_OPS += [
    _op("floor/ceil/round/trunc", lambda a: (O.floor(a) + O.ceil(a) + O.round(a) + O.trunc(a))
        * a, lambda r: [r.integers(-3, 3, (2, 3)) + r.uniform(0.1, 0.4, (2, 3))]),
    _op("tan", O.tan, lambda r: [r.uniform(-1.0, 1.0, (2, 3))]),
    _op("sinh", O.sinh, _n((2, 3))),
    _op("cosh", O.cosh, _n((2, 3))),
    _op("asin", O.asin, lambda r: [r.uniform(-0.9, 0.9, (2, 3))]),
    _op("acos", O.acos, lambda r: [r.uniform(-0.9, 0.9, (2, 3))]),
    _op("atan", O.atan, _n((2, 3))),
    _op("erf", O.erf, _n((2, 3))),
    _op("erfc", O.erfc, _n((2, 3))),
    _op("erfinv", O.erfinv, lambda r: [r.uniform(-0.9, 0.9, (2, 3))]),
    _op("log2", O.log2, _pos(2, 3)),
    _op("log10", O.log10, _pos(2, 3)),
    _op("reciprocal", O.reciprocal, _pos(2, 3)),
    _op("atan2", O.atan2, _n((2, 3), (3,))),
    _op("fmod", O.fmod, lambda r: [np.array([[1.3, -2.6, 0.4]]), np.array([0.5, 1.0, -0.3])]),
    _op("logaddexp", O.logaddexp, _n((2, 3), (3,))),
    _op("xlogy", O.xlogy, lambda r: _n((2, 3))(r) + _pos(2, 3)(r)),
    _op("nan_to_num", lambda a: O.nan_to_num(O.log(a - 1.0)),  # NaN below 1: gradient 0
        lambda r: [np.array([[0.5, 1.5, 2.0], [0.7, 3.0, 0.2]])]),
    _op("cumprod", lambda a: O.cumprod(a, 1), lambda r: [np.array([[0.5, 0.0, 2.0],
                                                                   [1.5, -0.7, 0.9]])]),
    _op("diagonal", lambda a: O.diagonal(a, 1), _n((3, 4))),
    _op("diag_embed", lambda a: O.diag_embed(a), _n((2, 3))),
    _op("roll", lambda a: O.roll(a, 1, 1), _n((2, 3))),
    _op("unfold", lambda a: a.unfold(1, 2, 1), _n((2, 4))),
    _op("scatter", lambda a, s: a.scatter(0, tensor(_idx([[1, 0, 1]])), s), _n((2, 3), (1, 3))),
]


def _bn_eval(cls, n):
    def build():
        m = cls(n)
        m.running_mean._data = _RM[:n].copy()
        m.running_var._data = _RV[:n].copy()
        return m.eval()
    return build


_LAYERS = [
    _layer("Linear", lambda: nn.Linear(3, 2), _n((2, 3))),
    _layer("Identity", nn.Identity, _n((2, 3))),
    _layer("Flatten", nn.Flatten, _n((2, 2, 2))),
    _layer("Unflatten", lambda: nn.Unflatten(1, (2, 2)), _n((2, 4))),
    _layer("Conv2d", lambda: nn.Conv2d(1, 2, 2), _n((1, 1, 3, 3))),
    _layer("Conv2d/padding", lambda: nn.Conv2d(2, 1, 3, padding=1, bias=False),
           _n((1, 2, 3, 3))),
    _layer("MaxPool2d", lambda: nn.MaxPool2d(2), _sep(1, 2, 4, 4)),
    _layer("AvgPool2d", lambda: nn.AvgPool2d(2), _n((1, 2, 4, 4))),
    _layer("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d(1), _n((1, 2, 3, 3))),
    _layer("Conv1d", lambda: nn.Conv1d(2, 3, 2, padding="same"), _n((2, 2, 4))),
    _layer("ConvTranspose2d", lambda: nn.ConvTranspose2d(2, 2, 2, stride=2), _n((1, 2, 2, 2))),
    _layer("ConvTranspose1d", lambda: nn.ConvTranspose1d(2, 1, 3, stride=2), _n((1, 2, 3))),
    _layer("MaxPool1d", lambda: nn.MaxPool1d(2), _sep(1, 2, 4)),
    _layer("AvgPool1d", lambda: nn.AvgPool1d(2), _n((1, 2, 4))),
    _layer("AdaptiveAvgPool1d", lambda: nn.AdaptiveAvgPool1d(2), _n((1, 2, 5))),
    _layer("AdaptiveMaxPool1d", lambda: nn.AdaptiveMaxPool1d(2), _sep(1, 2, 5)),
    _layer("AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d((2, 1)), _sep(1, 2, 3, 3)),
    _layer("Dropout2d", lambda: nn.Dropout2d(0.5), _n((2, 3, 2, 2)), random=True),
    _layer("Upsample", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), _n((1, 1, 2, 2))),
    _layer("PixelShuffle", lambda: nn.PixelShuffle(2), _n((1, 4, 2, 2))),
    _layer("PixelUnshuffle", lambda: nn.PixelUnshuffle(2), _n((1, 1, 2, 4))),
    _layer("UpsamplingNearest2d", lambda: nn.UpsamplingNearest2d(size=(3, 2)),
           _n((1, 1, 2, 2))),
    _layer("UpsamplingBilinear2d", lambda: nn.UpsamplingBilinear2d(scale_factor=1.5),
           _n((1, 1, 2, 3))),
    _layer("Dropout1d", lambda: nn.Dropout1d(0.5), _n((2, 3, 2)), random=True),
    _layer("Dropout3d", lambda: nn.Dropout3d(0.5), _n((2, 3, 1, 2, 2)), random=True),
    _layer("AlphaDropout", lambda: nn.AlphaDropout(0.5), _n((2, 3)), random=True),
    _layer("BatchNorm1d/train", lambda: nn.BatchNorm1d(3), _n((4, 3))),
    _layer("BatchNorm1d/eval", _bn_eval(nn.BatchNorm1d, 3), _n((4, 3))),
    _layer("BatchNorm2d/train", lambda: nn.BatchNorm2d(2), _n((2, 2, 2, 2))),
    _layer("LayerNorm", lambda: nn.LayerNorm(3), _n((2, 3))),
    _layer("GroupNorm", lambda: nn.GroupNorm(2, 4), _n((2, 4, 3))),
    _layer("InstanceNorm2d", lambda: nn.InstanceNorm2d(2, affine=True), _n((2, 2, 2, 3))),
    _layer("InstanceNorm1d", lambda: nn.InstanceNorm1d(2), _n((2, 2, 3))),
    _layer("Dropout", lambda: nn.Dropout(0.5), _n((2, 3)), random=True),
    _layer("Embedding", lambda: nn.Embedding(4, 2), lambda r: [_idx([[0, 2], [3, 2]])]),
    _layer("LSTM", lambda: nn.LSTM(2, 2), _n((2, 1, 2))),
    _layer("LSTM/projection", lambda: nn.LSTM(2, 2, proj_size=1), _n((2, 1, 2))),
    _layer("GRU", lambda: nn.GRU(2, 2, batch_first=True), _n((1, 2, 2))),
    _layer("RNN", lambda: nn.RNN(2, 2, bidirectional=True), _n((2, 1, 2))),
    _layer("RNNBase", lambda: nn.RNNBase("RNN_TANH", 2, 2), _n((2, 2))),
    _layer("RNNCell", lambda: nn.RNNCell(3, 2), _n((2, 3))),
    _layer("LSTMCell", lambda: nn.LSTMCell(3, 2), _n((2, 3))),
    _layer("GRUCell", lambda: nn.GRUCell(3, 2), _n((2, 3))),
    _layer("Sequential", lambda: nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2)),
           _n((2, 3))),
    _layer("Residual", lambda: nn.Residual(nn.Sequential(nn.Linear(3, 3), nn.Tanh())),
           _n((2, 3))),
    _layer("ReLU", nn.ReLU, _off(2, 3)),
    _layer("LeakyReLU", lambda: nn.LeakyReLU(0.1), _off(2, 3)),
    _layer("Sigmoid", nn.Sigmoid, _n((2, 3))),
    _layer("Tanh", nn.Tanh, _n((2, 3))),
    _layer("GELU", nn.GELU, _n((2, 3))),
    _layer("ELU", nn.ELU, _off(2, 3)),
    _layer("Softplus", nn.Softplus, _n((2, 3))),
    _layer("SiLU", nn.SiLU, _n((2, 3))),
    _layer("Hardtanh", nn.Hardtanh, _off(2, 3, points=(-1.0, 1.0))),
    _layer("ReLU6", nn.ReLU6, lambda r: [r.uniform(0.1, 5.9, (2, 3))]),
    _layer("Hardsigmoid", nn.Hardsigmoid, _off(2, 3, points=(-3.0, 3.0))),
    _layer("Hardswish", nn.Hardswish, _off(2, 3, points=(-3.0, 3.0))),
    _layer("LogSigmoid", nn.LogSigmoid, _n((2, 3))),
    _layer("Mish", nn.Mish, _n((2, 3))),
    _layer("PReLU", lambda: nn.PReLU(3), _off(2, 3)),
    _layer("Softmax", lambda: nn.Softmax(dim=1), _n((2, 3))),
    _layer("LogSoftmax", lambda: nn.LogSoftmax(dim=1), _n((2, 3))),
    _layer("MSELoss", nn.MSELoss, _n((2, 3), (2, 3))),
    _layer("L1Loss", nn.L1Loss, lambda r: _apart(r, (2, 3))),
    # |a - b| between 0.3 and 1: away from the kinks at delta = beta = 0.65
    _layer("HuberLoss", lambda: nn.HuberLoss(delta=0.65), lambda r: _huber_pair(r)),
    _layer("SmoothL1Loss", lambda: nn.SmoothL1Loss(beta=0.65), lambda r: _huber_pair(r)),
    _layer("BCELoss", nn.BCELoss, lambda r: [r.uniform(0.1, 0.9, (2, 3)),
                                            r.uniform(0.0, 1.0, (2, 3))]),
    _layer("BCEWithLogitsLoss", nn.BCEWithLogitsLoss, _n((2, 3), (2, 3))),
    _layer("CrossEntropyLoss", nn.CrossEntropyLoss, lambda r: [r.standard_normal((4, 3)),
                                                              _idx([0, 2, 1, 1])]),
    _layer("NLLLoss", nn.NLLLoss, lambda r: [r.standard_normal((4, 3)), _idx([2, 0, 1, 1])]),
    # distances and the composite losses of nn/loss.py (±1 labels as ints: not inputs)
    _layer("CosineSimilarity", nn.CosineSimilarity, _n((2, 3), (2, 3))),
    _layer("PairwiseDistance", nn.PairwiseDistance, _n((2, 3), (2, 3))),
    _layer("KLDivLoss", lambda: nn.KLDivLoss(reduction="batchmean"),
           lambda r: [r.standard_normal((2, 3)), r.uniform(0.1, 1.0, (2, 3))]),
    _layer("CosineEmbeddingLoss", lambda: nn.CosineEmbeddingLoss(margin=-0.9),
           lambda r: [*_n((3, 2), (3, 2))(r), _idx([1, -1, 1])]),
    _layer("MarginRankingLoss", nn.MarginRankingLoss,
           lambda r: [*_apart(r, (3,)), _idx([1, -1, 1])]),
    _layer("HingeEmbeddingLoss", lambda: nn.HingeEmbeddingLoss(margin=3.0),
           lambda r: [r.uniform(0.1, 2.0, (2, 3)), _idx([[1, -1, -1], [1, 1, -1]])]),
    _layer("SoftMarginLoss", nn.SoftMarginLoss, lambda r: [r.standard_normal((2, 3)),
                                                          _idx([[1, -1, 1], [-1, -1, 1]])]),
    _layer("TripletMarginLoss", lambda: nn.TripletMarginLoss(margin=5.0, swap=True),
           _n((2, 3), (2, 3), (2, 3))),
    _layer("TripletMarginWithDistanceLoss",
           lambda: nn.TripletMarginWithDistanceLoss(margin=5.0), _n((2, 3), (2, 3), (2, 3))),
    _layer("GaussianNLLLoss", nn.GaussianNLLLoss,
           lambda r: [*_n((2, 3), (2, 3))(r), r.uniform(0.5, 2.0, (2, 1))]),
    _layer("PoissonNLLLoss", lambda: nn.PoissonNLLLoss(full=True),
           lambda r: [r.standard_normal((2, 3)), r.uniform(1.5, 4.0, (2, 3))]),
    _layer("MultiLabelSoftMarginLoss", nn.MultiLabelSoftMarginLoss,
           lambda r: [r.standard_normal((2, 3)), r.uniform(0.0, 1.0, (2, 3))]),
    # values 0.5 apart and margin 0.75: no hinge sits at its kink
    _layer("MultiMarginLoss", lambda: nn.MultiMarginLoss(p=2, margin=0.75),
           lambda r: [*_sep(2, 3)(r), _idx([2, 0])]),
    _layer("MultiLabelMarginLoss", nn.MultiLabelMarginLoss,
           lambda r: [*_sep(2, 3)(r), _idx([[2, 0, -1], [1, -1, 0]])]),
    # padding layers (nn/padding.py): every mode, through F.pad's primitive
    _layer("ZeroPad1d", lambda: nn.ZeroPad1d((1, 2)), _n((1, 2, 3))),
    _layer("ZeroPad2d", lambda: nn.ZeroPad2d((1, 0, -1, 1)), _n((1, 2, 3))),
    _layer("ZeroPad3d", lambda: nn.ZeroPad3d((1, 0, 0, 0, 0, 1)), _n((1, 1, 1, 2))),
    _layer("ConstantPad1d", lambda: nn.ConstantPad1d(1, 0.5), _n((2, 3))),
    _layer("ConstantPad2d", lambda: nn.ConstantPad2d((0, 1, 1, 0), -1.0), _n((1, 2, 2))),
    _layer("ConstantPad3d", lambda: nn.ConstantPad3d((1, 0, 0, 1, 1, 0), 2.0),
           _n((1, 2, 1, 2))),
    _layer("ReflectionPad1d", lambda: nn.ReflectionPad1d((2, 1)), _n((1, 2, 3))),
    _layer("ReflectionPad2d", lambda: nn.ReflectionPad2d((1, 0, 0, 1)), _n((1, 2, 3))),
    _layer("ReflectionPad3d", lambda: nn.ReflectionPad3d((1, 0, 0, 0, 0, 1)),
           _n((1, 2, 1, 2))),
    _layer("ReplicationPad1d", lambda: nn.ReplicationPad1d((2, 1)), _n((1, 2, 3))),
    _layer("ReplicationPad2d", lambda: nn.ReplicationPad2d((1, 0, 2, 1)), _n((1, 2, 3))),
    _layer("ReplicationPad3d", lambda: nn.ReplicationPad3d((0, 1, 1, 0, 0, 1)),
           _n((1, 1, 2, 2))),
    _layer("CircularPad1d", lambda: nn.CircularPad1d((1, 2)), _n((1, 2, 3))),
    _layer("CircularPad2d", lambda: nn.CircularPad2d((1, 0, 0, 1)), _n((1, 2, 3))),
    _layer("CircularPad3d", lambda: nn.CircularPad3d((1, 0, 0, 0, 0, 1)),
           _n((1, 2, 1, 2))),
    # attention: tiny sizes, since every element costs four evaluations; the stacks reuse
    # the layers checked above, so only their inputs are checked (parameters frozen)
    _layer("MultiheadAttention", lambda: nn.MultiheadAttention(2, 1, kdim=1),
           _n((2, 1, 2), (2, 1, 1), (2, 1, 2))),
    _layer("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(
        2, 1, 1, dropout=0.0, bias=False, norm_first=True), _n((2, 1, 2))),
    _layer("TransformerDecoderLayer", lambda: _frozen(nn.TransformerDecoderLayer(
        4, 2, 2, dropout=0.0, norm_first=True)), _n((1, 1, 4), (2, 1, 4))),
    _layer("TransformerEncoder", lambda: _frozen(nn.TransformerEncoder(
        nn.TransformerEncoderLayer(4, 2, 2, dropout=0.0), 1, norm=nn.LayerNorm(4))),
           _n((2, 1, 4))),
    _layer("TransformerDecoder", lambda: _frozen(nn.TransformerDecoder(
        nn.TransformerDecoderLayer(4, 2, 2, dropout=0.0), 1)), _n((1, 1, 4), (2, 1, 4))),
    _layer("Transformer", lambda: _frozen(nn.Transformer(4, 2, 1, 1, 2, dropout=0.0,
                                                         batch_first=True)),
           _n((1, 2, 4), (1, 1, 4))),
]


def _huber_pair(r):
    a = r.standard_normal((2, 3))
    gap = r.choice([0.3, 0.4, 0.9, 1.0], (2, 3)) * r.choice([-1.0, 1.0], (2, 3))
    return [a, a + gap]


CASES: list = _OPS + _LAYERS
"""Every self-check, ops first."""


# -- results ----------------------------------------------------------------------------------
@dataclass
class SelfCheckResult:
    """One row: ``max_error`` is max |autograd - finite differences| over every checked
    input element, along one random projection of the output (NaN when the case could not
    run); ``message`` says what went wrong when ``passed`` is False."""

    name: str
    kind: str
    passed: bool
    max_error: float
    seconds: float
    message: str = ""


class SelfCheckReport(NamedRows):
    """The rows of :func:`run_selfcheck`, in catalogue order.

    ``passed`` (all rows passed), ``failed`` (their names), ``str()`` a table with a
    summary line, ``summary()`` the summary line alone, ``to_dict()`` plain data.
    ``uncovered`` lists built-in primitives that no op case reached (None when only
    part of the catalogue ran).

    Example::

        report = run_selfcheck(layers=False, pattern="pool")
        print(report)            # one row per case, then "3 passed, 0 failed in 0.05 s"
        report.passed, report.failed
    """

    _rows_attr, _noun = "results", "case"

    def __init__(self, results: list, seconds: float, uncovered: list | None = None):
        self.results = list(results)
        self.seconds = seconds
        self.uncovered = uncovered

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and not self.uncovered

    @property
    def failed(self) -> list:
        return [r.name for r in self.results if not r.passed]

    def summary(self) -> str:
        """The last line of the table: counts, time, and what failed or was not reached."""
        n_fail = len(self.failed)
        line = (f"{len(self.results) - n_fail} passed, {n_fail} failed "
                f"in {self.seconds:.2f} s")
        if n_fail:
            line += f" (failed: {', '.join(self.failed)})"
        if self.uncovered:
            line += f"; no self-check case reaches: {', '.join(self.uncovered)}"
        return line

    def to_dict(self) -> dict:
        """``{"passed", "seconds", "uncovered", "results": [row dicts]}``, plain data."""
        return {"passed": self.passed, "seconds": self.seconds, "uncovered": self.uncovered,
                "results": [asdict(r) for r in self.results]}

    def __repr__(self) -> str:
        return f"<SelfCheckReport {self.summary()}>"

    def __str__(self) -> str:
        return self.table()

    def table(self, failed_only: bool = False) -> str:
        """The table (every row, or the failing ones), failure details, the summary line."""
        head = ("check", "kind", "result", "max error", "ms")
        rows = [(r.name, r.kind, "ok" if r.passed else "FAIL", f"{r.max_error:.1e}",
                 f"{r.seconds * 1e3:.1f}") for r in self.results
                if not (failed_only and r.passed)]
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.rjust(w) if i >= 3 else v.ljust(w)
                            for i, (v, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                  for row in rows]
        for r in self.results:
            if not r.passed and r.message:
                lines.append(f"{r.name}: {r.message}")
        lines.append(self.summary())
        return "\n".join(lines)


# -- running ----------------------------------------------------------------------------------
def builtin_primitives() -> set:
    """Registry keys of the Function subclasses defined inside the ``backprop`` package."""
    return {key for key, cls in Function.registry.items()
            if cls.__module__ == "backprop" or cls.__module__.startswith("backprop.")}


def _args(values) -> list:
    out = []
    for v in values:
        if isinstance(v, np.ndarray):
            out.append(tensor(v, requires_grad=v.dtype == np.float64))
        else:
            out.append(v)
    return out


def _prepare(case: Case, rng_state):
    """(fn of the checked tensors, the checked tensors) for one case."""
    args = _args(case.make(np.random.default_rng(0)))
    if case.kind == "layer":
        assert case.build is not None, f"layer case {case.name} has no build()"
        module = case.build().double()
        call, params = module, [p for p in module.parameters() if p.requires_grad]
    else:
        call, params = case.fn, []
    slots = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    checked = [args[i] for i in slots] + params

    def fn(*tensors):
        # the parameters are passed in but used through the module: gradcheck nudges the
        # very Parameter objects the module holds (so zip stops at the last of the slots)
        full = list(args)
        for i, t in zip(slots, tensors, strict=False):
            full[i] = t
        if case.random:
            set_rng_state(rng_state)  # the same dropout mask on every evaluation
        return _first(call(*full))
    return fn, checked


def _graph_ops(out: Tensor) -> set:
    """The Function classes in the graph behind ``out`` (walked before backward frees it)."""
    seen, found = set(), set()
    stack = [out.grad_fn] if out.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.add(node.op)
        for nxt, _ in node.next_functions:
            if nxt is not None and not isinstance(nxt, AccumulateGrad):  # a leaf's node
                stack.append(nxt)
    return found


def _max_error(fn, checked: list, out: Tensor, eps: float) -> float:
    """max |autograd - central differences| of v·out for a random v, over every element."""
    v = np.random.default_rng(1).standard_normal(out.shape)
    grads = autograd_grad(out, checked, grad_outputs=tensor(v.astype(out._data.dtype)),
                          allow_unused=True)
    worst = 0.0
    with no_grad():
        for t, g in zip(checked, grads, strict=True):
            analytic = np.zeros(t._data.shape) if g is None else g._data.astype(np.float64)
            flat = t._data.reshape(-1)
            num = np.empty(flat.size)
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                plus = float(np.sum(fn(*checked)._data * v))
                flat[j] = orig - eps
                minus = float(np.sum(fn(*checked)._data * v))
                flat[j] = orig
                num[j] = (plus - minus) / (2 * eps)
            if flat.size:
                worst = max(worst, float(np.max(np.abs(analytic.reshape(-1) - num))))
    return worst


def _run_case(case: Case, found: set) -> SelfCheckResult:
    started = time.perf_counter()
    try:
        manual_seed(0)  # layer weights (and dropout masks) are the same on every run
        state = get_rng_state()
        fn, checked = _prepare(case, state)
        if not checked:
            raise ValueError("nothing requires grad in this case")
        out = fn(*checked)
        found |= _graph_ops(out)
        max_error = _max_error(fn, checked, out, case.gradcheck_kw.get("eps", EPS))
        ok, message = True, ""
        try:
            gradcheck(fn, tuple(checked), **case.gradcheck_kw)
        except GradcheckError as e:
            ok, message = False, str(e)
    except Exception as e:  # a case that cannot even run is a failure to report, not a crash
        ok, message, max_error = False, f"{type(e).__name__}: {e}", float("nan")
    return SelfCheckResult(case.name, case.kind, ok, max_error, time.perf_counter() - started,
                           message)


def _matches(name: str, pattern: str | None) -> bool:
    if not pattern:
        return True
    name, pattern = name.lower(), pattern.lower()
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def uncovered_primitives(found: set | None = None) -> list:
    """Built-in primitives (registry keys) that no op case of the catalogue reaches.

    Runs every op case forward (cheap) unless ``found``, the set of Function classes
    seen, is given.
    """
    if found is None:
        found = set()
        state = get_rng_state()
        try:
            for case in _OPS:
                manual_seed(0)
                fn, checked = _prepare(case, get_rng_state())
                found |= _graph_ops(fn(*checked))
        finally:
            set_rng_state(state)
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in found}
    return sorted(builtin_primitives() - names)


def run_selfcheck(ops: bool = True, layers: bool = True, pattern: str | None = None,
                  progress: Callable | None = None) -> SelfCheckReport:
    """Gradient-check backprop's own primitives and layers in float64.

    Args:
        ops: run the op cases (one or two per built-in primitive).
        layers: run the layer cases (input and parameter gradients of every nn layer).
        pattern: keep only cases whose name contains this text (case-insensitive), or
            matches it as a glob when it has ``*``, ``?`` or ``[``.
        progress: called with each :class:`SelfCheckResult` as it is done.

    Returns:
        A :class:`SelfCheckReport`; the global random state is left as it was.

    Example::

        report = run_selfcheck(layers=False, pattern="pool")
        assert report.passed, report
    """
    chosen = [c for c in CASES if (ops if c.kind == "op" else layers) and _matches(c.name, pattern)]
    state = get_rng_state()
    started = time.perf_counter()
    results: list = []
    found: set[str] = set()
    try:
        for case in chosen:
            result = _run_case(case, found)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        set_rng_state(state)
    uncovered = uncovered_primitives(found) if ops and not pattern else None
    return SelfCheckReport(results, time.perf_counter() - started, uncovered)
