"""Catalogue cases for the element-wise ops beyond the core arithmetic (elementwise.py):
sqrt, rsqrt, abs, sign, sin, cos, square, clamp, maximum/minimum, where."""
import numpy as np

from backprop import ops as O
from tests.ops.catalogue import OpCase, away_from, positive, randn

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _t(name):
    """torch.<name>, looked up when the case runs (torch is optional)."""
    return lambda *a, **k: getattr(torch, name)(*a, **k)


def _off_zero(*shape, scale=1.0):
    return lambda r: [away_from(r.standard_normal(shape) * scale)]


def _int(*shape, low=-5, high=6):
    return lambda r: [r.integers(low, high, shape)]


def _clamp_inputs(x_shape, lo_shape, hi_shape):
    """x well away from both bounds (|x - bound| > 0.1), bounds as float64 tensors."""
    def make(r):
        x = r.choice([-1.2, -0.1, 0.1, 1.2], x_shape) + r.uniform(-0.05, 0.05, x_shape)
        lo = r.uniform(-0.7, -0.3, lo_shape)
        hi = r.uniform(0.3, 0.7, hi_shape)
        return [x, lo, hi]
    return make


def _distinct_pair(a_shape, b_shape):
    """Two arrays whose broadcast elements differ by more than 0.1 (no ties)."""
    def make(r):
        a = r.standard_normal(a_shape)
        b = r.standard_normal(b_shape)
        close = np.abs(np.broadcast_to(a, np.broadcast_shapes(a_shape, b_shape)) - b) < 0.1
        while close.any():
            b = r.standard_normal(b_shape)
            close = np.abs(np.broadcast_to(a, np.broadcast_shapes(a_shape, b_shape)) - b) < 0.1
        return [a, b]
    return make


def _cond(shape, *rest):
    return lambda r: [r.random(shape) > 0.5] + [r.standard_normal(s) for s in rest]


CASES = [
    # -- roots, powers, trigonometry ----------------------------------------------------------
    OpCase("sqrt", O.sqrt, positive(3, 4, low=0.1, high=5.0), _t("sqrt"), covers=("Sqrt",)),
    OpCase("sqrt/method-large", lambda a: a.sqrt(), lambda r: [r.uniform(1e3, 1e8, (5,))],
           lambda a: a.sqrt(), covers=("Sqrt",)),
    OpCase("sqrt/empty", O.sqrt, positive(0, 3), _t("sqrt"), covers=("Sqrt",)),
    OpCase("sqrt/int-to-float32", O.sqrt, _int(4, low=0), _t("sqrt"), covers=("Sqrt",),
           grad=False, atol=1e-6, rtol=1e-6),
    OpCase("rsqrt", O.rsqrt, positive(2, 3, low=0.2, high=5.0), _t("rsqrt"), covers=("Rsqrt",)),
    OpCase("rsqrt/method-0d", lambda a: a.rsqrt(), positive(), lambda a: a.rsqrt(),
           covers=("Rsqrt",)),
    OpCase("sin", O.sin, randn(3, 4), _t("sin"), covers=("Sin",)),
    OpCase("sin/large", lambda a: a.sin(), lambda r: [r.uniform(-1e3, 1e3, (6,))],
           lambda a: a.sin(), covers=("Sin",), atol=1e-9),
    OpCase("cos", O.cos, randn(2, 5), _t("cos"), covers=("Cos",)),
    OpCase("cos/method-empty", lambda a: a.cos(), randn(0,), lambda a: a.cos(), covers=("Cos",)),
    OpCase("square", O.square, randn(3, 2), _t("square"), covers=("Square",)),
    OpCase("square/method-0d", lambda a: a.square(), randn(), lambda a: a.square(),
           covers=("Square",)),
    OpCase("square/int", O.square, _int(5), _t("square"), covers=("Square",), grad=False),
    # -- abs and sign -------------------------------------------------------------------------
    OpCase("abs", O.abs, _off_zero(3, 4), _t("abs"), covers=("Abs",)),
    OpCase("abs/method", lambda a: a.abs(), _off_zero(5), lambda a: a.abs(), covers=("Abs",)),
    OpCase("absolute", O.absolute, _off_zero(2, 2), _t("absolute"), covers=("Abs",)),
    OpCase("abs/int", O.abs, _int(6), _t("abs"), covers=("Abs",), grad=False),
    OpCase("sign", O.sign, _off_zero(3, 3), _t("sign"), covers=("Sign",)),
    OpCase("sign/method-zeros", lambda a: a.sign() * a, lambda r: [np.array([-2.0, 0.0, 3.0])],
           lambda a: a.sign() * a, covers=("Sign",)),
    OpCase("sgn", O.sgn, _off_zero(4), _t("sign"), covers=("Sign",)),
    OpCase("sign/int", O.sign, _int(7), _t("sign"), covers=("Sign",), grad=False),
    # -- clamp --------------------------------------------------------------------------------
    OpCase("clamp/scalars", lambda a: O.clamp(a, -0.5, 0.5),
           lambda r: [away_from(r.standard_normal((4, 5)), (-0.5, 0.5))],
           lambda a: torch.clamp(a, -0.5, 0.5), covers=("Clamp",)),
    OpCase("clamp/min-only", lambda a: a.clamp(min=0.2),
           lambda r: [away_from(r.standard_normal((3, 4)), (0.2,))],
           lambda a: a.clamp(min=0.2), covers=("Clamp",)),
    OpCase("clamp/max-only", lambda a: a.clamp(max=-0.3),
           lambda r: [away_from(r.standard_normal(6), (-0.3,))],
           lambda a: a.clamp(max=-0.3), covers=("Clamp",)),
    OpCase("clip/method", lambda a: a.clip(-1, 1),
           lambda r: [away_from(r.standard_normal(7) * 2, (-1.0, 1.0))],
           lambda a: a.clip(-1, 1), covers=("Clamp",)),
    OpCase("clamp_min-clamp_max", lambda a: O.clamp_max(O.clamp_min(a, -1.0), 1.0),
           lambda r: [away_from(r.standard_normal(8) * 2, (-1.0, 1.0))],
           lambda a: torch.clamp_max(torch.clamp_min(a, -1.0), 1.0), covers=("Clamp",)),
    OpCase("clamp/tensor-bounds-broadcast", lambda x, lo, hi: O.clamp(x, lo, hi),
           _clamp_inputs((3, 4), (4,), (3, 1)), lambda x, lo, hi: torch.clamp(x, lo, hi),
           covers=("Clamp",)),
    OpCase("clamp/tensor-min-broadcasts-input", lambda x, lo: O.clamp(x, min=lo),
           lambda r: _clamp_inputs((4,), (2, 1), ())(r)[:2],
           lambda x, lo: torch.clamp(x, min=lo), covers=("Clamp",)),
    OpCase("clamp/tensor-max", lambda x, hi: x.clamp(max=hi),
           lambda r: [_clamp_inputs((5,), (), (5,))(r)[i] for i in (0, 2)],
           lambda x, hi: x.clamp(max=hi), covers=("Clamp",)),
    OpCase("clamp/min-above-max", lambda x, lo, hi: O.clamp(x, lo, hi),
           lambda r: [r.standard_normal(5), r.uniform(1.0, 2.0, 5), r.uniform(-2.0, -1.0, 5)],
           lambda x, lo, hi: torch.clamp(x, lo, hi), covers=("Clamp",)),
    OpCase("clamp/empty", lambda a: a.clamp(0, 1), randn(0, 2), lambda a: a.clamp(0, 1),
           covers=("Clamp",)),
    OpCase("clamp/int-float-bound", lambda a: a.clamp(min=0.5), _int(6),
           lambda a: a.clamp(min=0.5), covers=("Clamp",), grad=False),
    OpCase("clamp/int", lambda a: a.clamp(-2, 2), _int(6), lambda a: a.clamp(-2, 2),
           covers=("Clamp",), grad=False),
    # -- maximum / minimum --------------------------------------------------------------------
    OpCase("maximum", O.maximum, _distinct_pair((3, 4), (3, 4)), _t("maximum"),
           covers=("Maximum",)),
    OpCase("maximum/broadcast", lambda a, b: a.maximum(b), _distinct_pair((2, 1, 3), (4, 1)),
           lambda a, b: a.maximum(b), covers=("Maximum",)),
    OpCase("maximum/number", lambda a: O.maximum(a, 0.25),
           lambda r: [away_from(r.standard_normal(6), (0.25,))],
           lambda a: torch.maximum(a, torch.tensor(0.25, dtype=a.dtype)), covers=("Maximum",)),
    OpCase("maximum/size-1-and-empty", O.maximum, _distinct_pair((0, 3), (1,)), _t("maximum"),
           covers=("Maximum",)),
    OpCase("maximum/int-float32", O.maximum, lambda r: [r.integers(-3, 3, 5),
           r.standard_normal(5).astype(np.float32)], _t("maximum"), covers=("Maximum",),
           grad=False, atol=1e-6),
    OpCase("minimum", O.minimum, _distinct_pair((4,), (4,)), _t("minimum"), covers=("Minimum",)),
    OpCase("minimum/broadcast", lambda a, b: a.minimum(b), _distinct_pair((3, 1), (1, 5)),
           lambda a, b: a.minimum(b), covers=("Minimum",)),
    OpCase("minimum/0d", O.minimum, _distinct_pair((), (3,)), _t("minimum"), covers=("Minimum",)),
    # -- where --------------------------------------------------------------------------------
    OpCase("where", O.where, _cond((3, 4), (3, 4), (3, 4)), _t("where"), covers=("Where",)),
    OpCase("where/broadcast-all", O.where, _cond((3, 1), (1, 4), (4,)), _t("where"),
           covers=("Where",)),
    OpCase("where/cond-broadcasts-inputs", O.where, _cond((2, 3, 1), (), (1,)), _t("where"),
           covers=("Where",)),
    OpCase("where/number-other", lambda c, x: O.where(c, x, 0.0), _cond((5,), (5,)),
           lambda c, x: torch.where(c, x, 0.0), covers=("Where",)),
    OpCase("where/number-input", lambda c, y: O.where(c, -1.5, y), _cond((2, 2), (2, 1)),
           lambda c, y: torch.where(c, -1.5, y), covers=("Where",)),
    OpCase("where/method", lambda c, x, y: x.where(c, y), _cond((4,), (4,), (4,)),
           lambda c, x, y: x.where(c, y), covers=("Where",)),
    OpCase("where/empty", O.where, _cond((0, 2), (0, 2), (2,)), _t("where"), covers=("Where",)),
    OpCase("where/numbers-float32", lambda c: O.where(c, 1.0, 0.0), lambda r: [r.random(4) > 0.5],
           lambda c: torch.where(c, 1.0, 0.0), covers=("Where",), grad=False),
    OpCase("where/int-and-float-number", lambda c, x: O.where(c, x, 0.5),
           lambda r: [r.random(4) > 0.5, r.integers(0, 9, 4)],
           lambda c, x: torch.where(c, x, 0.5), covers=("Where",), grad=False),
    # -- the rest of the element-wise family through the new ops ------------------------------
    OpCase("exp/int-to-float32", O.exp, _int(4), _t("exp"), covers=("Exp",), grad=False,
           atol=1e-4, rtol=1e-6),
    OpCase("pow/int-nonnegative", lambda a: a ** 2, _int(5), lambda a: a ** 2, covers=("Pow",),
           grad=False),
]
