"""Catalogue cases for backprop/ops/math.py: rounding, trigonometry, erf/erfinv, log2/log10,
reciprocal, atan2, fmod, logaddexp, xlogy, nan_to_num, cumprod, diagonals, roll, unfold,
scatter, and the composites built on them (median, kthvalue, lerp, kron, cdist, ...)."""
import numpy as np

import backprop
from backprop import ops as O
from tests.ops.catalogue import OpCase, positive, randn

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _t(name):
    """torch.<name>, looked up when the case runs (torch is optional)."""
    return lambda *a, **k: getattr(torch, name)(*a, **k)


def _off_int(*shape, scale=3.0):
    """Values at least 0.1 from every integer (floor/ceil/round/trunc have jumps there)."""
    def make(r):
        return [np.floor(r.standard_normal(shape) * scale) + r.uniform(0.1, 0.4, shape)
                * r.choice([1, 3], shape)]
    return make


def _unit(*shape):
    return lambda r: [r.uniform(-0.9, 0.9, shape)]


def _fmod_pair(shape_a, shape_b):
    """a/b kept 0.2 from every integer: fmod's gradient in b jumps there."""
    def make(r):
        b = r.uniform(0.5, 2.0, shape_b) * r.choice([-1, 1], shape_b)
        k = r.integers(-3, 3, np.broadcast_shapes(shape_a, shape_b))
        return [(k + r.uniform(0.2, 0.8, k.shape)) * b, b]
    return make


def _with_zeros(*shape):
    def make(r):
        x = r.standard_normal(shape)
        x.reshape(-1)[:: 3] = 0.0
        return [x]
    return make


def _idx(values):
    return np.asarray(values, dtype=np.int64)


def _tt(values):
    """A torch tensor of ``values``, made when the case runs."""
    return torch.tensor(values)


_SIDX = [[0, 1, 2, 0], [2, 0, 1, 1]]
_MASK = np.array([[True, False, True, False], [False, False, True, True],
                  [True, True, False, False]])

CASES = [
    # -- rounding (zero gradient) ---------------------------------------------------------------
    OpCase("floor", O.floor, _off_int(3, 4), _t("floor"), covers=("Floor",)),
    OpCase("ceil/method", lambda a: a.ceil(), _off_int(5), lambda a: a.ceil(), covers=("Ceil",)),
    OpCase("trunc", O.trunc, _off_int(2, 3), _t("trunc"), covers=("Trunc",)),
    OpCase("fix", O.fix, _off_int(4), _t("fix"), covers=("Trunc",)),
    OpCase("round", O.round, _off_int(3, 3), _t("round"), covers=("Round",)),
    OpCase("round/halves-to-even", O.round,
           lambda r: [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])], _t("round"),
           covers=("Round",), grad=False),
    OpCase("round/decimals", lambda a: O.round(a, decimals=2),
           lambda r: [r.integers(-300, 300, (4,)) / 100 + 0.0013],
           lambda a: torch.round(a, decimals=2), covers=("Round",)),
    OpCase("floor/int", O.floor, lambda r: [r.integers(-5, 5, (4,))], _t("floor"),
           covers=("Floor",), grad=False),
    OpCase("frac", O.frac, _off_int(3, 2), _t("frac"), covers=("Trunc",)),
    # -- trigonometric, hyperbolic, erf --------------------------------------------------------
    OpCase("tan", O.tan, _unit(3, 4), _t("tan"), covers=("Tan",)),
    OpCase("tan/int-to-float32", O.tan, lambda r: [r.integers(-3, 3, (4,))], _t("tan"),
           covers=("Tan",), grad=False, atol=1e-6, rtol=1e-6),
    OpCase("sinh", O.sinh, randn(3, 2), _t("sinh"), covers=("Sinh",)),
    OpCase("cosh/method", lambda a: a.cosh(), randn(4), lambda a: a.cosh(), covers=("Cosh",)),
    OpCase("asin", O.asin, _unit(5), _t("asin"), covers=("Asin",)),
    OpCase("arcsin/method", lambda a: a.arcsin(), _unit(2, 2), lambda a: a.arcsin(),
           covers=("Asin",)),
    OpCase("acos", O.acos, _unit(5), _t("acos"), covers=("Acos",)),
    OpCase("atan", O.atan, randn(2, 3), _t("atan"), covers=("Atan",)),
    OpCase("arctan", O.arctan, randn(3), _t("arctan"), covers=("Atan",)),
    OpCase("erf", O.erf, lambda r: [r.standard_normal((3, 4)) * 2], _t("erf"), covers=("Erf",)),
    OpCase("erfc", O.erfc, lambda r: [r.standard_normal((3, 4)) * 2], _t("erfc"),
           covers=("Erfc",)),
    OpCase("erfinv", O.erfinv, lambda r: [r.uniform(-0.99, 0.99, (3, 4))], _t("erfinv"),
           covers=("Erfinv",), atol=1e-9),
    OpCase("erfinv/ends", O.erfinv, lambda r: [np.array([-1.0, 1.0, 0.0, 1.5, -1e-300])],
           _t("erfinv"), covers=("Erfinv",), grad=False),
    OpCase("log2", O.log2, positive(3, 4), _t("log2"), covers=("Log2",)),
    OpCase("log10/method", lambda a: a.log10(), positive(5), lambda a: a.log10(),
           covers=("Log10",)),
    OpCase("reciprocal", O.reciprocal, positive(3, 2), _t("reciprocal"), covers=("Reciprocal",)),
    OpCase("reciprocal/int-to-float32", O.reciprocal, lambda r: [r.integers(1, 5, (3,))],
           _t("reciprocal"), covers=("Reciprocal",), grad=False, atol=1e-7),
    # -- two inputs -----------------------------------------------------------------------------
    OpCase("atan2", O.atan2, lambda r: [r.standard_normal((3, 4)), r.standard_normal((4,))],
           _t("atan2"), covers=("Atan2",)),
    OpCase("arctan2/method-number", lambda a: a.arctan2(0.5), randn(4),
           lambda a: a.arctan2(torch.tensor(0.5, dtype=a.dtype)), covers=("Atan2",)),
    OpCase("fmod", O.fmod, _fmod_pair((3, 4), (3, 4)), _t("fmod"), covers=("Fmod",)),
    OpCase("fmod/broadcast", O.fmod, _fmod_pair((2, 3), (3,)), _t("fmod"), covers=("Fmod",)),
    OpCase("fmod/number", lambda a: O.fmod(a, 0.7),
           lambda r: [(r.integers(-3, 3, 5) + r.uniform(0.2, 0.8, 5)) * 0.7],
           lambda a: torch.fmod(a, 0.7), covers=("Fmod",)),
    OpCase("fmod/int", O.fmod, lambda r: [np.array([-7, 5, 3, 9]), np.array([2, -3, 2, 4])],
           _t("fmod"), covers=("Fmod",), grad=False),
    OpCase("logaddexp", O.logaddexp, lambda r: [r.standard_normal((3, 4)) * 30,
                                                r.standard_normal((4,)) * 30],
           _t("logaddexp"), covers=("LogAddExp",)),
    OpCase("xlogy", O.xlogy, lambda r: [r.standard_normal((3, 4)), r.uniform(0.5, 2, (3, 4))],
           _t("xlogy"), covers=("XLogY",)),
    OpCase("xlogy/zeros", O.xlogy, lambda r: [np.array([0.0, 1.0, 0.0]),
                                              np.array([0.5, 3.0, 2.0])],
           _t("xlogy"), covers=("XLogY",)),
    OpCase("nan_to_num", O.nan_to_num,
           lambda r: [np.array([np.nan, np.inf, -np.inf, 1.5, -0.25])], _t("nan_to_num"),
           covers=("NanToNum",)),
    OpCase("nan_to_num/values", lambda a: a.nan_to_num(1.0, 2.0, -3.0),
           lambda r: [np.array([np.nan, np.inf, -np.inf, 0.5])],
           lambda a: a.nan_to_num(1.0, 2.0, -3.0), covers=("NanToNum",)),
    OpCase("lerp/number", lambda a, b: O.lerp(a, b, 0.3),
           lambda r: [r.standard_normal((3, 4)), r.standard_normal((4,))],
           lambda a, b: torch.lerp(a, b, 0.3), covers=()),
    OpCase("lerp/tensor-weight", O.lerp, lambda r: [r.standard_normal((3, 4)),
                                                    r.standard_normal((3, 4)),
                                                    r.uniform(0, 1, (3, 4))],
           _t("lerp"), covers=()),
    # -- scans and order statistics --------------------------------------------------------------
    OpCase("cumprod", lambda a: O.cumprod(a, 1), randn(3, 4), lambda a: torch.cumprod(a, 1),
           covers=("CumProd",)),
    OpCase("cumprod/zeros", lambda a: a.cumprod(0), _with_zeros(5, 3),
           lambda a: a.cumprod(0), covers=("CumProd",)),
    OpCase("cumprod/one-zero-per-row", lambda a: O.cumprod(a, -1),
           lambda r: [np.array([[1.5, 0.0, 2.0, -0.5], [0.0, 0.7, 0.0, 2.0]])],
           lambda a: torch.cumprod(a, -1), covers=("CumProd",)),
    OpCase("median/all", O.median, randn(3, 4), _t("median"), covers=()),
    OpCase("median/even-lower", O.median, randn(6), _t("median"), covers=()),
    OpCase("median/dim", lambda a: O.median(a, 1), randn(3, 4),
           lambda a: torch.median(a, 1), covers=()),
    OpCase("kthvalue", lambda a: O.kthvalue(a, 2, 0, True), randn(4, 3),
           lambda a: torch.kthvalue(a, 2, 0, True), covers=()),
    OpCase("mode", lambda a: O.mode(a, 1), lambda r: [r.integers(0, 3, (4, 7)) * 1.0],
           lambda a: torch.mode(a, 1), covers=(), grad=False),
    OpCase("std_mean", lambda a: O.std_mean(a, 1)[0] + O.std_mean(a, 1)[1], randn(3, 4),
           lambda a: torch.std_mean(a, 1)[0] + torch.std_mean(a, 1)[1], covers=()),
    OpCase("var_mean", lambda a: O.var_mean(a, 0, correction=0)[0], randn(3, 4),
           lambda a: torch.var_mean(a, 0, correction=0)[0], covers=()),
    OpCase("diff", lambda a, b: O.diff(a, 2, 0, prepend=b),
           lambda r: [r.standard_normal((4, 3)), r.standard_normal((1, 3))],
           lambda a, b: torch.diff(a, 2, 0, prepend=b), covers=()),
    # -- diagonals, roll, unfold ---------------------------------------------------------------
    OpCase("diagonal", lambda a: O.diagonal(a, 1), randn(3, 4),
           lambda a: torch.diagonal(a, 1), covers=("Diagonal",)),
    OpCase("diagonal/3d-negative-offset", lambda a: a.diagonal(-1, 2, 0), randn(3, 2, 4),
           lambda a: a.diagonal(-1, 2, 0), covers=("Diagonal",)),
    OpCase("diag/2d", lambda a: O.diag(a, -1), randn(4, 3), lambda a: torch.diag(a, -1),
           covers=("Diagonal",)),
    OpCase("trace", O.trace, randn(3, 4), _t("trace"), covers=("Diagonal",)),
    OpCase("diag/1d", lambda a: O.diag(a, 1), randn(3), lambda a: torch.diag(a, 1),
           covers=("DiagEmbed",)),
    OpCase("diag_embed", lambda a: O.diag_embed(a, -1, 0, 2), randn(2, 3),
           lambda a: torch.diag_embed(a, -1, 0, 2), covers=("DiagEmbed",)),
    OpCase("roll", lambda a: O.roll(a, (1, -2), (0, 1)), randn(3, 4),
           lambda a: torch.roll(a, (1, -2), (0, 1)), covers=("Roll",)),
    OpCase("roll/flat", lambda a: a.roll(5), randn(3, 4), lambda a: a.roll(5), covers=("Roll",)),
    OpCase("unfold", lambda a: a.unfold(1, 2, 1), randn(3, 5), lambda a: a.unfold(1, 2, 1),
           covers=("Unfold",)),
    OpCase("unfold/step-twice", lambda a: a.unfold(0, 2, 2).unfold(1, 3, 1), randn(5, 4),
           lambda a: a.unfold(0, 2, 2).unfold(1, 3, 1), covers=("Unfold",)),
    # -- scatter family ---------------------------------------------------------------------------
    OpCase("scatter/src", lambda a, s: a.scatter(0, backprop.tensor(_SIDX), s),
           lambda r: [r.standard_normal((3, 4)), r.standard_normal((2, 4))],
           lambda a, s: a.scatter(0, _tt(_SIDX), s), covers=("Scatter",)),
    # (a src larger than index: torch's own backward fails on it, so no torch comparison)
    OpCase("scatter/larger-src", lambda a, s: a.scatter(0, backprop.tensor(_SIDX), s),
           lambda r: [r.standard_normal((3, 4)), r.standard_normal((2, 5))],
           covers=("Scatter",)),
    OpCase("scatter/value", lambda a: O.scatter(a, 1, backprop.tensor([[1], [3], [0]]), 9.0),
           randn(3, 4), lambda a: torch.scatter(a, 1, _tt([[1], [3], [0]]), 9.0),
           covers=("Scatter",)),
    OpCase("index_copy", lambda a, s: a.index_copy(1, backprop.tensor([3, 0]), s),
           lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 2))],
           lambda a, s: a.index_copy(1, _tt([3, 0]), s), covers=("Scatter",)),
    OpCase("masked_scatter", lambda a, s: a.masked_scatter(backprop.tensor(_MASK), s),
           lambda r: [r.standard_normal((3, 4)), r.standard_normal((2, 5))],
           lambda a, s: a.masked_scatter(torch.tensor(_MASK), s), covers=("Scatter",)),
    OpCase("fill_diagonal_", lambda a: (a * 1).fill_diagonal_(2.0), randn(4, 3),
           lambda a: (a * 1).fill_diagonal_(2.0), covers=("Scatter",)),
    OpCase("index_add", lambda a, s: a.index_add(0, backprop.tensor([2, 0, 2]), s, alpha=2),
           lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 4))],
           lambda a, s: a.index_add(0, _tt([2, 0, 2]), s, alpha=2), covers=()),
    OpCase("index_fill/tensor-value",
           lambda a, v: a.index_fill(1, backprop.tensor([2, 0]), v),
           lambda r: [r.standard_normal((3, 4)), np.array(1.5)],
           lambda a, v: a.index_fill(1, _tt([2, 0]), v), covers=()),
    # -- building, products, distances -----------------------------------------------------------
    OpCase("hstack", lambda a, b: O.hstack([a, b]), lambda r: [r.standard_normal((3, 2)),
                                                               r.standard_normal((3, 1))],
           lambda a, b: torch.hstack([a, b]), covers=()),
    OpCase("vstack", lambda a, b: O.vstack([a, b]), lambda r: [r.standard_normal(3),
                                                               r.standard_normal((2, 3))],
           lambda a, b: torch.vstack([a, b]), covers=()),
    OpCase("dstack", lambda a, b: O.dstack([a, b]), lambda r: [r.standard_normal((2, 3)),
                                                               r.standard_normal((2, 3))],
           lambda a, b: torch.dstack([a, b]), covers=()),
    OpCase("column_stack", lambda a, b: O.column_stack([a, b]),
           lambda r: [r.standard_normal(3), r.standard_normal((3, 2))],
           lambda a, b: torch.column_stack([a, b]), covers=()),
    OpCase("meshgrid/xy", lambda a, b: O.meshgrid(a, b, indexing="xy")[0]
           * O.meshgrid(a, b, indexing="xy")[1],
           lambda r: [r.standard_normal(4), r.standard_normal(3)],
           lambda a, b: torch.meshgrid(a, b, indexing="xy")[0]
           * torch.meshgrid(a, b, indexing="xy")[1], covers=()),
    OpCase("repeat_interleave/tensor", lambda a: a.repeat_interleave(backprop.tensor([1, 0, 2]),
                                                                     dim=0),
           randn(3, 2), lambda a: a.repeat_interleave(_tt([1, 0, 2]), dim=0), covers=()),
    OpCase("repeat_interleave/int-flat", lambda a: O.repeat_interleave(a, 2), randn(2, 2),
           lambda a: torch.repeat_interleave(a, 2), covers=()),
    OpCase("take", lambda a: O.take(a, backprop.tensor([[0, 5], [11, -1]])), randn(3, 4),
           lambda a: torch.take(a, _tt([[0, 5], [11, -1]])), covers=()),
    OpCase("tensordot", lambda a, b: O.tensordot(a, b, ([0, 2], [2, 0])),
           lambda r: [r.standard_normal((2, 3, 4)), r.standard_normal((4, 5, 2))],
           lambda a, b: torch.tensordot(a, b, ([0, 2], [2, 0])), covers=()),
    OpCase("kron", O.kron, lambda r: [r.standard_normal((2, 3)), r.standard_normal((2, 1, 2))],
           _t("kron"), covers=()),
    OpCase("block_diag", lambda a, b, c: O.block_diag(a, b, c),
           lambda r: [r.standard_normal((2, 3)), r.standard_normal(2), np.array(1.5)],
           lambda a, b, c: torch.block_diag(a, b, c), covers=()),
    OpCase("cdist", O.cdist, lambda r: [r.standard_normal((3, 4)), r.standard_normal((5, 4))],
           _t("cdist"), covers=()),
    OpCase("cdist/p1-batched", lambda a, b: O.cdist(a, b, 1.0),
           lambda r: [r.standard_normal((2, 3, 4)), r.standard_normal((2, 2, 4))],
           lambda a, b: torch.cdist(a, b, 1.0), covers=()),
    OpCase("addmm", lambda i, a, b: O.addmm(i, a, b, beta=0.5, alpha=2),
           lambda r: [r.standard_normal(5), r.standard_normal((3, 4)), r.standard_normal((4, 5))],
           lambda i, a, b: torch.addmm(i, a, b, beta=0.5, alpha=2), covers=()),
    OpCase("baddbmm", lambda i, a, b: O.baddbmm(i, a, b, alpha=2),
           lambda r: [r.standard_normal((2, 3, 5)), r.standard_normal((2, 3, 4)),
                      r.standard_normal((2, 4, 5))],
           lambda i, a, b: torch.baddbmm(i, a, b, alpha=2), covers=()),
]
