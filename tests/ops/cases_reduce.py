"""Catalogue cases for the reductions (reduce.py) and the softmax family (functional.py)."""
import math

import numpy as np

import backprop
import backprop.functional as F
from backprop import ops as O
from tests.ops.catalogue import OpCase, randn

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

INF = math.inf


def _sep(*shape):
    """Distinct values well apart (no ties), so finite differences of max-like ops are valid."""
    n = int(np.prod(shape))
    return lambda r: [(r.permutation(n) * 0.5 - n / 4 + r.uniform(-0.1, 0.1, n)).reshape(shape)]


def _logits(*shape, scale=1e4):
    """Huge logits: any naive exp overflows (float64 too, at this scale times 100)."""
    return lambda r: [r.standard_normal(shape) * scale]


def _with_zeros(r):
    x = r.uniform(0.5, 1.5, (3, 4)) * r.choice([-1, 1], (3, 4))
    x[0, 1] = 0.0                  # one zero in row 0
    x[1, 0] = x[1, 3] = 0.0        # two zeros in row 1
    return [x]


def _int(*shape):
    return lambda r: [r.integers(-5, 5, shape)]


def _case(name, fn, inputs, torch_fn, covers, **kw):
    return OpCase(name, fn, inputs, torch_fn, covers=covers, **kw)


CASES = [
    # -- sum / mean: the dim=() and 0-d forms ---------------------------------------------
    _case("sum/empty-tuple-dim", lambda a: a.sum(()), randn(2, 3), lambda a: a.sum(()),
          ("Sum",)),
    _case("sum/0d-dim0", lambda a: a.sum(0), randn(), lambda a: a.sum(0), ("Sum",)),
    _case("sum/int", lambda a: a.sum(1), _int(2, 3), lambda a: a.sum(1), ("Sum",), grad=False),
    _case("mean/tuple-negative", lambda a: a.mean((-1, 0)), randn(2, 3, 4),
          lambda a: a.mean((-1, 0)), ("Mean",)),

    # -- prod ----------------------------------------------------------------------------------
    _case("prod/all", lambda a: a.prod(), randn(2, 3), lambda a: a.prod(), ("Prod",)),
    _case("prod/dim", lambda a: a.prod(1), randn(3, 4), lambda a: a.prod(1), ("Prod",)),
    _case("prod/dim-keepdim-negative", lambda a: O.prod(a, -2, keepdim=True),
          randn(2, 3, 4), lambda a: torch.prod(a, -2, keepdim=True), ("Prod",)),
    _case("prod/zeros", lambda a: a.prod(1), _with_zeros, lambda a: a.prod(1), ("Prod",)),
    _case("prod/zeros-all", lambda a: a.prod(), _with_zeros, lambda a: a.prod(), ("Prod",)),
    _case("prod/empty", lambda a: a.prod(0), randn(0, 3), lambda a: a.prod(0), ("Prod",)),
    _case("prod/size-1", lambda a: a.prod(0), randn(1, 3), lambda a: a.prod(0), ("Prod",)),
    _case("prod/int", lambda a: a.prod(0), _int(3, 2), lambda a: a.prod(0), ("Prod",),
          grad=False),

    # -- var / std -----------------------------------------------------------------------------
    _case("var/all", lambda a: a.var(), randn(3, 4), lambda a: a.var(), ("Var",)),
    _case("var/dim", lambda a: a.var(1), randn(3, 4), lambda a: a.var(1), ("Var",)),
    _case("var/tuple-keepdim", lambda a: a.var((0, 2), keepdim=True), randn(2, 3, 4),
          lambda a: a.var((0, 2), keepdim=True), ("Var",)),
    _case("var/negative-correction0", lambda a: O.var(a, -1, correction=0),
          randn(3, 5), lambda a: torch.var(a, -1, correction=0), ("Var",)),
    _case("var/unbiased-false", lambda a: a.var(0, unbiased=False), randn(4, 2),
          lambda a: a.var(0, unbiased=False), ("Var",)),
    _case("var/positional-unbiased", lambda a: O.var(a, 1, False), randn(2, 5),
          lambda a: torch.var(a, 1, False), ("Var",)),
    _case("var/fractional-correction", lambda a: a.var(dim=None, correction=0.5), randn(6),
          lambda a: a.var(dim=None, correction=0.5), ("Var",)),
    _case("var/size-1-dim-correction0", lambda a: a.var(1, correction=0), randn(3, 1),
          lambda a: a.var(1, correction=0), ("Var",)),
    _case("std/all", lambda a: a.std(), randn(3, 4), lambda a: a.std(), ("Std",)),
    _case("std/dim-keepdim", lambda a: a.std(0, keepdim=True), randn(5, 3),
          lambda a: a.std(0, keepdim=True), ("Std",)),
    _case("std/tuple-negative", lambda a: O.std(a, (-1, -3), correction=0),
          randn(2, 3, 4), lambda a: torch.std(a, (-1, -3), correction=0), ("Std",)),
    _case("std/unbiased-bool", lambda a: O.std(a, False), randn(7),
          lambda a: torch.std(a, False), ("Std",)),

    # -- max / min / amax / amin ------------------------------------------------------------
    _case("max/all", lambda a: a.max(), _sep(3, 4), lambda a: a.max(), ("AMax",)),
    _case("min/all", lambda a: O.min(a), _sep(3, 4), lambda a: torch.min(a), ("AMin",)),
    _case("max/dim", lambda a: a.max(1), _sep(3, 4), lambda a: a.max(1), ("PickAlongDim",)),
    _case("max/dim-keepdim-negative", lambda a: O.max(a, -3, keepdim=True),
          _sep(2, 3, 4), lambda a: torch.max(a, -3, keepdim=True), ("PickAlongDim",)),
    _case("min/dim-keyword", lambda a: a.min(dim=0), _sep(3, 4), lambda a: a.min(dim=0),
          ("PickAlongDim",)),
    _case("min/dim-size-1", lambda a: a.min(1, True), _sep(3, 1), lambda a: a.min(1, True),
          ("PickAlongDim",)),
    _case("max/dim-0d", lambda a: a.max(0), randn(), lambda a: a.max(0), ("PickAlongDim",)),
    _case("max/dim-empty-other-dim", lambda a: a.max(1), randn(0, 3), lambda a: a.max(1),
          ("PickAlongDim",)),
    _case("amax/default", lambda a: a.amax(), _sep(3, 4), lambda a: a.amax(), ("AMax",)),
    _case("amax/dim", lambda a: O.amax(a, 1), _sep(3, 4), lambda a: torch.amax(a, 1),
          ("AMax",)),
    _case("amax/tuple-keepdim", lambda a: a.amax((0, -1), keepdim=True), _sep(2, 3, 4),
          lambda a: a.amax((0, -1), keepdim=True), ("AMax",)),
    _case("amin/dim-negative", lambda a: a.amin(-1), _sep(3, 4), lambda a: a.amin(-1),
          ("AMin",)),
    _case("amin/tuple", lambda a: O.amin(a, (0, 1)), _sep(2, 3, 2),
          lambda a: torch.amin(a, (0, 1)), ("AMin",)),
    _case("amax/empty-other-dim", lambda a: a.amax(1), randn(0, 3),
          lambda a: a.amax(1), ("AMax",)),
    _case("amax/int", lambda a: a.amax(0), _int(3, 4), lambda a: a.amax(0), ("AMax",),
          grad=False),
    _case("argmax/all", lambda a: a.argmax(), _sep(3, 4), lambda a: a.argmax(), (), grad=False),
    _case("argmax/dim-keepdim", lambda a: O.argmax(a, 1, keepdim=True), _sep(3, 4),
          lambda a: torch.argmax(a, 1, keepdim=True), (), grad=False),
    _case("argmin/dim-negative", lambda a: a.argmin(-2), _sep(2, 3, 4),
          lambda a: a.argmin(-2), (), grad=False),
    _case("argmin/keepdim-no-dim", lambda a: a.argmin(keepdim=True), _sep(2, 3),
          lambda a: a.argmin(keepdim=True), (), grad=False),

    # -- norm ------------------------------------------------------------------------------------
    _case("norm/fro", lambda a: a.norm(), randn(3, 4), lambda a: a.norm(), ("Norm",)),
    _case("norm/2-dim", lambda a: O.norm(a, 2, 1), randn(3, 4),
          lambda a: torch.norm(a, 2, 1), ("Norm",)),
    _case("norm/fro-tuple-keepdim", lambda a: a.norm("fro", (0, 2), keepdim=True),
          randn(2, 3, 4), lambda a: a.norm("fro", (0, 2), keepdim=True), ("Norm",)),
    _case("norm/1", lambda a: a.norm(1, -1), randn(3, 4), lambda a: a.norm(1, -1), ("Norm",)),
    _case("norm/inf", lambda a: a.norm(INF, 0), _sep(3, 4), lambda a: a.norm(INF, 0),
          ("Norm",)),
    _case("norm/-inf", lambda a: a.norm(-INF), _sep(3, 4), lambda a: a.norm(-INF), ("Norm",)),
    _case("norm/3", lambda a: a.norm(3, 1, True), randn(3, 4), lambda a: a.norm(3, 1, True),
          ("Norm",)),
    _case("norm/0.5", lambda a: a.norm(0.5), randn(2, 3), lambda a: a.norm(0.5), ("Norm",)),
    _case("norm/-1.5", lambda a: a.norm(-1.5, 1), randn(2, 3), lambda a: a.norm(-1.5, 1),
          ("Norm",)),
    _case("norm/0", lambda a: a.norm(0, 1), randn(2, 3), lambda a: a.norm(0, 1), ("Norm",),
          grad=False),
    _case("norm/empty", lambda a: a.norm(dim=0), randn(0, 3), lambda a: a.norm(dim=0),
          ("Norm",)),
    _case("norm/0d", lambda a: a.norm(), randn(), lambda a: a.norm(), ("Norm",)),

    # -- logsumexp --------------------------------------------------------------------------
    _case("logsumexp/dim", lambda a: a.logsumexp(1), randn(3, 4), lambda a: a.logsumexp(1),
          ("LogSumExp",)),
    _case("logsumexp/tuple-keepdim", lambda a: O.logsumexp(a, (0, -1), keepdim=True),
          randn(2, 3, 4), lambda a: torch.logsumexp(a, (0, -1), keepdim=True), ("LogSumExp",)),
    _case("logsumexp/negative", lambda a: a.logsumexp(-2), randn(4, 3),
          lambda a: a.logsumexp(-2), ("LogSumExp",)),
    _case("logsumexp/huge-logits", lambda a: a.logsumexp(1), _logits(3, 5, scale=1e6),
          lambda a: a.logsumexp(1), ("LogSumExp",)),
    _case("logsumexp/size-1", lambda a: a.logsumexp(0), randn(1, 3), lambda a: a.logsumexp(0),
          ("LogSumExp",)),
    _case("logsumexp/empty", lambda a: a.logsumexp(0), randn(0, 3), lambda a: a.logsumexp(0),
          ("LogSumExp",)),
    _case("logsumexp/int", lambda a: a.logsumexp(0), _int(4), lambda a: a.logsumexp(0),
          ("LogSumExp",), grad=False),

    # -- softmax family (fused primitives in ops/fused.py, called by functional.py) ----------
    _case("softmax/dim", lambda a: F.softmax(a, 1), randn(3, 4),
          lambda a: torch.softmax(a, 1), ("Softmax",)),
    _case("softmax/negative-dim-3d", lambda a: a.softmax(-1), randn(2, 3, 4),
          lambda a: a.softmax(-1), ("Softmax",)),
    _case("softmax/dim0", lambda a: a.softmax(dim=0), randn(3, 2),
          lambda a: a.softmax(dim=0), ("Softmax",)),
    _case("softmax/huge-logits", lambda a: F.softmax(a, -1), _logits(4, 5, scale=1e3),
          lambda a: torch.softmax(a, -1), ("Softmax",),
          gradcheck_kw=dict(eps=1e-4)),
    _case("softmax/0d", lambda a: a.softmax(0), randn(), lambda a: a.softmax(0),
          ("Softmax",)),
    _case("log_softmax/dim", lambda a: F.log_softmax(a, 1), randn(3, 4),
          lambda a: torch.log_softmax(a, 1), ("LogSoftmax",)),
    _case("log_softmax/huge-logits", lambda a: a.log_softmax(0), _logits(5, 3),
          lambda a: a.log_softmax(0), ("LogSoftmax",)),
    _case("log_softmax/size-1", lambda a: a.log_softmax(1), randn(3, 1),
          lambda a: a.log_softmax(1), ("LogSoftmax",)),
    _case("log_softmax/0d", lambda a: a.log_softmax(0), randn(), lambda a: a.log_softmax(0),
          ("LogSoftmax",)),
    _case("log_softmax/empty", lambda a: a.log_softmax(1), randn(0, 3),
          lambda a: a.log_softmax(1), ("LogSoftmax",)),
    _case("softmax/empty", lambda a: a.softmax(0), randn(0, 3), lambda a: a.softmax(0),
          ("Softmax",)),
    _case("log_softmax/-inf-entries", lambda a: (a + backprop.tensor(
          [[0.0, float("-inf"), 0.0]], dtype=backprop.float64)).log_softmax(1), randn(2, 3),
          lambda a: (a + torch.tensor([[0.0, float("-inf"), 0.0]], dtype=torch.float64)
                     ).log_softmax(1), ("LogSoftmax",), grad=False),
    # the mask must be the same on every call of the gradcheck: reseed inside
    _case("dropout/seeded", lambda a: (backprop.manual_seed(3), F.dropout(a, 0.3))[1],
          randn(4, 5), None, ("Mul",)),
    _case("dropout/eval", lambda a: F.dropout(a, 0.3, training=False) * 1.0, randn(4),
          lambda a: torch.nn.functional.dropout(a, 0.3, training=False) * 1.0, ("Mul",)),
]
