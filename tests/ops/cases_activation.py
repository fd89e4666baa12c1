"""Catalogue cases for the activations (activation.py), including large-magnitude inputs
where a naive formula overflows."""
import numpy as np

from backprop import ops as O
from tests.ops.catalogue import OpCase, away_from, randn

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = TF = None

# Far tails and the middle: every naive exp(x) or exp(-x) overflows somewhere in here.
EXTREME = np.array([-1000.0, -710.0, -100.0, -30.0, -8.0, -1.5, 0.7, 3.0, 30.0, 100.0, 710.0,
                    1000.0])


def _off(*points, shape=(3, 4), scale=1.0, gap=0.1):
    return lambda r: [away_from(r.standard_normal(shape) * scale, points, gap)]


def _extreme(r):
    return [EXTREME.copy()]


def _extreme_off_3(r):
    return [away_from(EXTREME, (-3.0, 3.0), 0.5)]  # the kinks of hardsigmoid / hardswish


def _int(*shape):
    return lambda r: [r.integers(-4, 5, shape)]


def _f(name):
    """torch.nn.functional.<name>, looked up when the case runs."""
    return lambda *a, **k: getattr(TF, name)(*a, **k)


CASES = [
    # -- relu / leaky_relu --------------------------------------------------------------------
    OpCase("relu", O.relu, _off(0.0), lambda a: torch.relu(a), covers=("ReLU",)),
    OpCase("relu/method-3d", lambda a: a.relu(), _off(0.0, shape=(2, 3, 2)),
           lambda a: a.relu(), covers=("ReLU",)),
    OpCase("relu/extreme", O.relu, _extreme, lambda a: torch.relu(a), covers=("ReLU",)),
    OpCase("relu/empty", O.relu, randn(0, 4), lambda a: torch.relu(a), covers=("ReLU",)),
    OpCase("relu/int", O.relu, _int(6), lambda a: torch.relu(a), covers=("ReLU",), grad=False),
    OpCase("leaky_relu", O.leaky_relu, _off(0.0), _f("leaky_relu"), covers=("LeakyReLU",)),
    OpCase("leaky_relu/slope-0.2-extreme", lambda a: O.leaky_relu(a, 0.2), _extreme,
           lambda a: TF.leaky_relu(a, 0.2), covers=("LeakyReLU",)),
    OpCase("leaky_relu/negative-slope", lambda a: O.leaky_relu(a, negative_slope=-0.5),
           _off(0.0, shape=(5,)), lambda a: TF.leaky_relu(a, negative_slope=-0.5),
           covers=("LeakyReLU",)),
    OpCase("leaky_relu/slope-above-1-0d", lambda a: O.leaky_relu(a, 1.5),
           lambda r: [np.array(-0.8)], lambda a: TF.leaky_relu(a, 1.5), covers=("LeakyReLU",)),
    # -- sigmoid / tanh / silu ----------------------------------------------------------------
    OpCase("sigmoid", O.sigmoid, randn(3, 4), lambda a: torch.sigmoid(a), covers=("Sigmoid",)),
    OpCase("sigmoid/method-extreme", lambda a: a.sigmoid(), _extreme, lambda a: a.sigmoid(),
           covers=("Sigmoid",)),
    OpCase("sigmoid/0d", O.sigmoid, randn(), lambda a: torch.sigmoid(a), covers=("Sigmoid",)),
    OpCase("sigmoid/empty", O.sigmoid, randn(2, 0), lambda a: torch.sigmoid(a),
           covers=("Sigmoid",)),
    OpCase("sigmoid/int-to-float32", O.sigmoid, _int(5), lambda a: torch.sigmoid(a),
           covers=("Sigmoid",), grad=False, atol=1e-7, rtol=1e-6),
    OpCase("tanh", O.tanh, randn(4, 3), lambda a: torch.tanh(a), covers=("Tanh",)),
    OpCase("tanh/method-extreme", lambda a: a.tanh(), _extreme, lambda a: a.tanh(),
           covers=("Tanh",)),
    OpCase("tanh/0d", O.tanh, randn(), lambda a: torch.tanh(a), covers=("Tanh",)),
    OpCase("silu", O.silu, randn(3, 4), _f("silu"), covers=("SiLU",)),
    OpCase("silu/extreme", O.silu, _extreme, _f("silu"), covers=("SiLU",)),
    # -- gelu ---------------------------------------------------------------------------------
    OpCase("gelu", O.gelu, lambda r: [r.standard_normal((4, 5)) * 3], _f("gelu"),
           covers=("GELU",)),
    OpCase("gelu/extreme", O.gelu, _extreme, _f("gelu"), covers=("GELU",)),
    OpCase("gelu/0d", lambda a: O.gelu(a), randn(), _f("gelu"), covers=("GELU",)),
    OpCase("gelu/empty", O.gelu, randn(0,), _f("gelu"), covers=("GELU",)),
    OpCase("gelu/tanh", lambda a: O.gelu(a, approximate="tanh"),
           lambda r: [r.standard_normal((3, 4)) * 3], lambda a: TF.gelu(a, approximate="tanh"),
           covers=("GELUTanh",)),
    OpCase("gelu/tanh-extreme", lambda a: O.gelu(a, approximate="tanh"), _extreme,
           lambda a: TF.gelu(a, approximate="tanh"), covers=("GELUTanh",)),
    # -- elu / softplus -----------------------------------------------------------------------
    OpCase("elu", O.elu, _off(0.0), _f("elu"), covers=("ELU",)),
    OpCase("elu/alpha-extreme", lambda a: O.elu(a, alpha=0.5), _extreme,
           lambda a: TF.elu(a, alpha=0.5), covers=("ELU",)),
    OpCase("elu/0d", lambda a: O.elu(a, 2.0), lambda r: [np.array(-0.7)],
           lambda a: TF.elu(a, 2.0), covers=("ELU",)),
    OpCase("softplus", O.softplus, randn(3, 4), _f("softplus"), covers=("Softplus",)),
    OpCase("softplus/extreme", O.softplus, lambda r: [away_from(EXTREME, (20.0,), 1.0)],
           _f("softplus"), covers=("Softplus",)),
    OpCase("softplus/beta-threshold", lambda a: O.softplus(a, beta=2.0, threshold=5.0),
           _off(2.5, shape=(4, 5), scale=4.0, gap=0.3),
           lambda a: TF.softplus(a, beta=2.0, threshold=5.0), covers=("Softplus",)),
    OpCase("softplus/beta-below-1-extreme", lambda a: O.softplus(a, beta=0.5), _extreme,
           lambda a: TF.softplus(a, beta=0.5), covers=("Softplus",)),
    OpCase("softplus/0d", O.softplus, randn(), _f("softplus"), covers=("Softplus",)),
    # -- hardtanh / relu6 / hardsigmoid / hardswish (kinks kept out of finite differences' reach)
    OpCase("hardtanh", O.hardtanh, _off(-1.0, 1.0, shape=(4, 5), scale=2.0), _f("hardtanh"),
           covers=("Hardtanh",)),
    OpCase("hardtanh/bounds-extreme", lambda a: O.hardtanh(a, -2.0, 0.5), _extreme,
           lambda a: TF.hardtanh(a, -2.0, 0.5), covers=("Hardtanh",)),
    OpCase("relu6", O.relu6, _off(0.0, 6.0, shape=(3, 5), scale=5.0), _f("relu6"),
           covers=("Hardtanh",)),
    OpCase("hardsigmoid", O.hardsigmoid, _off(-3.0, 3.0, shape=(3, 5), scale=4.0),
           _f("hardsigmoid"), covers=("Hardsigmoid",)),
    OpCase("hardsigmoid/extreme", O.hardsigmoid, _extreme_off_3, _f("hardsigmoid"),
           covers=("Hardsigmoid",)),
    OpCase("hardswish", O.hardswish, _off(-3.0, 3.0, shape=(3, 5), scale=4.0),
           _f("hardswish"), covers=("Hardswish",)),
    OpCase("hardswish/extreme", O.hardswish, _extreme_off_3, _f("hardswish"),
           covers=("Hardswish",)),
    # -- logsigmoid / mish / prelu ------------------------------------------------------------
    OpCase("logsigmoid", O.logsigmoid, randn(3, 4), _f("logsigmoid"), covers=("LogSigmoid",)),
    OpCase("logsigmoid/extreme", O.logsigmoid, _extreme, _f("logsigmoid"),
           covers=("LogSigmoid",)),
    OpCase("mish", O.mish, lambda r: [r.standard_normal((3, 4)) * 3], _f("mish"),
           covers=("Mul", "Tanh", "Softplus")),
    OpCase("mish/extreme", O.mish, lambda r: [away_from(EXTREME, (20.0,), 1.0)], _f("mish"),
           covers=("Mul", "Tanh", "Softplus")),
    OpCase("prelu/per-channel", O.prelu,
           lambda r: [away_from(r.standard_normal((2, 3, 4))), r.uniform(0.0, 0.5, 3)],
           _f("prelu"), covers=("Where", "Mul")),
    OpCase("prelu/shared-1d", O.prelu, lambda r: [away_from(r.standard_normal(5)),
                                                  np.array([0.25])],
           _f("prelu"), covers=("Where", "Mul")),
]
