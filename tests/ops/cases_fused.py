"""Catalogue cases for the fused losses (fused.py): cross-entropy with class indices and with
probabilities, NLL, binary cross-entropy on probabilities and on logits.

Class-index targets are int64 arrays (tensors without grad); probability targets are
float64 arrays, so their gradients are checked too. Class weights are fixed lists,
made into float64 tensors inside the case (weights are constants: no gradient).
"""
import numpy as np

import backprop
from backprop import ops as O
from backprop.ops import fused
from tests.ops.catalogue import OpCase

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = TF = None

W5 = [0.5, 1.0, 2.0, 0.25, 1.5]  # per-class weights for 5 classes
IGN = -100


def _bp_kw(kw):
    """Keyword arguments for backprop: lists become float64 tensors."""
    return {k: backprop.tensor(v, dtype=backprop.float64) if isinstance(v, list) else v
            for k, v in kw.items()}


def _torch_kw(kw):
    return {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v
            for k, v in kw.items()}


def _case(name, ours, theirs, inputs, covers, **kw):
    return OpCase(name, lambda *a: ours(*a, **_bp_kw(kw)), inputs,
                  lambda *a: getattr(TF, theirs)(*a, **_torch_kw(kw)), covers=covers)


def _ce(name, inputs, **kw):
    return _case(f"cross_entropy/{name}", O.cross_entropy, "cross_entropy", inputs,
                 ("CrossEntropy",), **kw)


def _nll(name, inputs, **kw):
    return _case(f"nll_loss/{name}", O.nll_loss, "nll_loss", inputs, ("NLL",), **kw)


def _logits_idx(shape, classes=5, ignore=0.0):
    """Logits of ``shape`` (classes on dim 1, or dim 0 when 1-D) and matching int64 indices,
    a fraction ``ignore`` of them set to -100."""
    def make(r):
        x = r.standard_normal(shape) * 2
        tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
        t = r.integers(0, classes, tshape)
        if ignore:
            t = np.where(r.random(tshape) < ignore, IGN, t)
            t.flat[0] = 1  # at least one sample counts
        return [x, np.asarray(t, dtype=np.int64)]
    return make


def _logits_probs(shape):
    """Logits and a probability target of the same shape (classes on dim 1, or 0 when 1-D)."""
    def make(r):
        x = r.standard_normal(shape) * 2
        axis = 0 if len(shape) == 1 else 1
        p = r.random(shape) + 0.05
        return [x, p / p.sum(axis=axis, keepdims=True)]
    return make


def _probs(shape):
    return lambda r: [r.uniform(0.05, 0.95, shape), r.uniform(0.0, 1.0, shape)]


def _logits_targets(shape, scale=3.0):
    return lambda r: [r.standard_normal(shape) * scale, r.uniform(0.0, 1.0, shape)]


def _mse(name, inputs, **kw):
    # fused.mse_loss (F.mse_loss's one-node path); torch warns on broadcast shapes, so quietly
    def theirs(x, t):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TF.mse_loss(x, t, **kw)
    return OpCase(f"mse_loss/{name}", lambda x, t: fused.mse_loss(x, t, **kw), inputs, theirs,
                  covers=("MseLoss",))


def _bce(name, inputs, **kw):
    return _case(f"binary_cross_entropy/{name}", O.binary_cross_entropy, "binary_cross_entropy",
                 inputs, ("BinaryCrossEntropy",), **kw)


def _bcel(name, inputs, **kw):
    return _case(f"bce_with_logits/{name}", O.binary_cross_entropy_with_logits,
                 "binary_cross_entropy_with_logits", inputs, ("BinaryCrossEntropyWithLogits",),
                 **kw)


CASES = [
    # -- cross-entropy, class indices -------------------------------------------------------
    _ce("mean", _logits_idx((6, 5))),
    _ce("sum", _logits_idx((6, 5)), reduction="sum"),
    _ce("none", _logits_idx((6, 5)), reduction="none"),
    _ce("weight-mean", _logits_idx((7, 5)), weight=W5),
    _ce("weight-none", _logits_idx((7, 5)), weight=W5, reduction="none"),
    _ce("ignore-index", _logits_idx((8, 5), ignore=0.3)),
    _ce("ignore-index-weight", _logits_idx((8, 5), ignore=0.3), weight=W5),
    _ce("ignore-index-none", _logits_idx((8, 5), ignore=0.3), reduction="none"),
    _ce("ignore-index-2", _logits_idx((8, 5)), ignore_index=2),
    _ce("smoothing", _logits_idx((6, 5)), label_smoothing=0.2),
    _ce("smoothing-weight-ignore", _logits_idx((8, 5), ignore=0.3), weight=W5,
        label_smoothing=0.15),
    _ce("smoothing-weight-none", _logits_idx((6, 5), ignore=0.3), weight=W5,
        label_smoothing=0.3, reduction="none"),
    _ce("smoothing-1", _logits_idx((4, 5)), label_smoothing=1.0, reduction="sum"),
    _ce("spatial", _logits_idx((3, 5, 2, 3), ignore=0.2), weight=W5, label_smoothing=0.1),
    _ce("spatial-none", _logits_idx((2, 5, 4)), reduction="none"),
    _ce("unbatched", _logits_idx((5,))),
    _ce("unbatched-none-smoothing", _logits_idx((5,)), reduction="none", label_smoothing=0.2,
        weight=W5),
    _ce("large-logits", lambda r: [r.standard_normal((4, 5)) * 1000,
                                   np.array([0, 1, 2, 3], dtype=np.int64)]),
    # -- cross-entropy, class probabilities --------------------------------------------------
    _ce("probs-mean", _logits_probs((6, 5))),
    _ce("probs-sum-weight", _logits_probs((6, 5)), weight=W5, reduction="sum"),
    _ce("probs-none-smoothing", _logits_probs((6, 5)), reduction="none", label_smoothing=0.25),
    _ce("probs-weight-smoothing", _logits_probs((6, 5)), weight=W5, label_smoothing=0.1),
    _ce("probs-spatial", _logits_probs((2, 5, 3, 2)), weight=W5),
    _ce("probs-unbatched", _logits_probs((5,)), reduction="none"),
    # -- nll ------------------------------------------------------------------------------------
    _nll("mean", _logits_idx((6, 5))),
    _nll("sum", _logits_idx((6, 5)), reduction="sum"),
    _nll("weight-ignore", _logits_idx((8, 5), ignore=0.3), weight=W5),
    _nll("weight-ignore-none", _logits_idx((8, 5), ignore=0.3), weight=W5, reduction="none"),
    _nll("spatial", _logits_idx((3, 5, 2, 2), ignore=0.2), weight=W5),
    _nll("unbatched-none", _logits_idx((5,)), reduction="none"),
    # -- mean squared error ----------------------------------------------------------------------
    _mse("mean", lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3))]),
    _mse("sum", lambda r: [r.standard_normal((5,)), r.standard_normal((5,))], reduction="sum"),
    _mse("none", lambda r: [r.standard_normal((2, 3)), r.standard_normal((2, 3))],
         reduction="none"),
    _mse("broadcast-target", lambda r: [r.standard_normal((4, 3)), r.standard_normal((3,))]),
    _bce("mean", _probs((4, 3))),
    _bce("sum", _probs((5,)), reduction="sum"),
    _bce("none", _probs((2, 3, 2)), reduction="none"),
    _bce("weight-broadcast", _probs((4, 3)), weight=[0.5, 1.0, 2.0]),
    _bce("weight-full-none", _probs((2, 2)), weight=[[0.5, 1.0], [2.0, 0.1]], reduction="none"),
    # -- binary cross-entropy on logits ----------------------------------------------------------
    _bcel("mean", _logits_targets((4, 3))),
    _bcel("sum", _logits_targets((6,)), reduction="sum"),
    _bcel("none", _logits_targets((2, 3, 2)), reduction="none"),
    _bcel("weight", _logits_targets((4, 3)), weight=[0.5, 1.0, 2.0]),
    _bcel("pos-weight", _logits_targets((4, 3)), pos_weight=[3.0, 0.5, 1.0]),
    _bcel("weight-pos-weight-none", _logits_targets((4, 3)), weight=[[2.0], [1.0], [0.5], [1.5]],
          pos_weight=[3.0, 0.5, 1.0], reduction="none"),
    _bcel("large-logits", _logits_targets((3, 4), scale=300.0), pos_weight=[2.0, 1.0, 0.5, 4.0]),
]
