"""Catalogue cases for the core arithmetic, sum/mean, reshape/permute and matmul."""
import numpy as np

import backprop
from tests.ops.catalogue import OpCase, away_from, positive, randn

CASES = [
    OpCase("add/same", lambda a, b: a + b, lambda r: [r.standard_normal((3, 4)),
           r.standard_normal((3, 4))], lambda a, b: a + b, covers=("Add",)),
    OpCase("add/broadcast", lambda a, b: a + b, lambda r: [r.standard_normal((2, 3, 4)),
           r.standard_normal((3, 1))], lambda a, b: a + b, covers=("Add",)),
    OpCase("add/scalar-left", lambda a: 2.5 + a, randn(3), lambda a: 2.5 + a, covers=("Add",)),
    OpCase("add/alpha", lambda a, b: backprop.add(a, b, alpha=3), lambda r: [
           r.standard_normal((2, 2)), r.standard_normal(2)],
           lambda a, b: __import__("torch").add(a, b, alpha=3), covers=("Add", "Mul")),
    OpCase("sub/broadcast", lambda a, b: a - b, lambda r: [r.standard_normal((4, 1)),
           r.standard_normal((1, 5))], lambda a, b: a - b, covers=("Sub",)),
    OpCase("sub/rsub", lambda a: 1 - a, randn(2, 3), lambda a: 1 - a, covers=("Sub",)),
    OpCase("mul/broadcast", lambda a, b: a * b, lambda r: [r.standard_normal((2, 3)),
           r.standard_normal((3,))], lambda a, b: a * b, covers=("Mul",)),
    OpCase("mul/same-tensor", lambda a: a * a, randn(5), lambda a: a * a, covers=("Mul",)),
    OpCase("mul/size-1", lambda a, b: a * b, lambda r: [r.standard_normal((1,)),
           r.standard_normal((4, 1))], lambda a, b: a * b, covers=("Mul",)),
    OpCase("mul/empty", lambda a, b: a * b, lambda r: [r.standard_normal((0, 3)),
           r.standard_normal((3,))], lambda a, b: a * b, covers=("Mul",)),
    OpCase("div/broadcast", lambda a, b: a / b, lambda r: [r.standard_normal((3, 2)),
           r.uniform(0.5, 2, (2,))], lambda a, b: a / b, covers=("Div",)),
    OpCase("div/rdiv", lambda a: 1.5 / a, positive(4), lambda a: 1.5 / a, covers=("Div",)),
    OpCase("neg", lambda a: -a, randn(2, 2), lambda a: -a, covers=("Neg",)),
    OpCase("pow/scalar", lambda a: a ** 3, randn(3, 2), lambda a: a ** 3, covers=("Pow",)),
    OpCase("pow/square", lambda a: a ** 2, randn(4), lambda a: a ** 2, covers=("Pow",)),
    OpCase("pow/fractional", lambda a: a ** 0.5, positive(3), lambda a: a ** 0.5, covers=("Pow",)),
    OpCase("pow/tensor-tensor", lambda a, b: a ** b, lambda r: [r.uniform(0.5, 2, (2, 3)),
           r.standard_normal((3,))], lambda a, b: a ** b, covers=("Pow",)),
    OpCase("pow/rpow", lambda b: 2.0 ** b, randn(3), lambda b: 2.0 ** b, covers=("Pow",)),
    OpCase("exp", lambda a: a.exp(), randn(3, 3), lambda a: a.exp(), covers=("Exp",)),
    OpCase("log", lambda a: backprop.log(a), positive(3, 2), lambda a: a.log(), covers=("Log",)),
    OpCase("cast/f64-f32-f64", lambda a: a.float().double() * 1.0, randn(3),
           lambda a: a.float().double() * 1.0, covers=("Cast",),
           atol=1e-6, rtol=1e-6, gradcheck_kw=dict(atol=1e-4, rtol=1e-3, eps=1e-3)),
    OpCase("clone", lambda a: a.clone() * 2, randn(2, 3), lambda a: a.clone() * 2,
           covers=("Clone",)),
    OpCase("sum/all", lambda a: a.sum(), randn(3, 4), lambda a: a.sum(), covers=("Sum",)),
    OpCase("sum/dim", lambda a: a.sum(dim=1), randn(3, 4), lambda a: a.sum(dim=1),
           covers=("Sum",)),
    OpCase("sum/dims-keepdim", lambda a: a.sum(dim=(0, 2), keepdim=True), randn(2, 3, 4),
           lambda a: a.sum(dim=(0, 2), keepdim=True), covers=("Sum",)),
    OpCase("sum/negative-dim", lambda a: a.sum(-1), randn(2, 3), lambda a: a.sum(-1),
           covers=("Sum",)),
    OpCase("sum/empty", lambda a: a.sum(0), randn(0, 3), lambda a: a.sum(0), covers=("Sum",)),
    OpCase("mean/all", lambda a: a.mean(), randn(3, 4), lambda a: a.mean(), covers=("Mean",)),
    OpCase("mean/dim-keepdim", lambda a: a.mean(0, keepdim=True), randn(3, 4),
           lambda a: a.mean(0, keepdim=True), covers=("Mean",)),
    OpCase("reshape", lambda a: a.reshape(4, -1) * 2, randn(2, 6),
           lambda a: a.reshape(4, -1) * 2, covers=("Reshape",)),
    OpCase("view", lambda a: a.view(3, 2, 2), randn(12), lambda a: a.view(3, 2, 2),
           covers=("Reshape",)),
    OpCase("permute", lambda a: a.permute(2, 0, 1), randn(2, 3, 4),
           lambda a: a.permute(2, 0, 1), covers=("Permute",)),
    OpCase("transpose", lambda a: a.transpose(0, -1), randn(2, 3, 4),
           lambda a: a.transpose(0, -1), covers=("Permute",)),
    OpCase("T", lambda a: a.T, randn(2, 3), lambda a: a.T, covers=("Permute",)),
    OpCase("matmul/2d", lambda a, b: a @ b, lambda r: [r.standard_normal((3, 4)),
           r.standard_normal((4, 2))], lambda a, b: a @ b, covers=("MatMul",)),
    OpCase("matmul/vec-mat", lambda a, b: a @ b, lambda r: [r.standard_normal(4),
           r.standard_normal((4, 2))], lambda a, b: a @ b, covers=("MatMul",)),
    OpCase("matmul/mat-vec", lambda a, b: a @ b, lambda r: [r.standard_normal((3, 4)),
           r.standard_normal(4)], lambda a, b: a @ b, covers=("MatMul",)),
    OpCase("matmul/vec-vec", lambda a, b: backprop.matmul(a, b), lambda r: [
           r.standard_normal(4), r.standard_normal(4)], lambda a, b: a @ b, covers=("MatMul",)),
    OpCase("matmul/batched-broadcast", lambda a, b: a @ b, lambda r: [
           r.standard_normal((2, 1, 3, 4)), r.standard_normal((5, 4, 2))], lambda a, b: a @ b,
           covers=("MatMul",)),
    OpCase("matmul/batched-vec", lambda a, b: a @ b, lambda r: [
           r.standard_normal((2, 3, 4)), r.standard_normal(4)], lambda a, b: a @ b,
           covers=("MatMul",)),
    OpCase("matmul/vec-batched", lambda a, b: a @ b, lambda r: [
           r.standard_normal(3), r.standard_normal((2, 3, 4))], lambda a, b: a @ b,
           covers=("MatMul",)),
]

# -- log1p / expm1 / cumsum, and the composites sort, topk and remainder ----------------------
CASES += [
    OpCase("log1p", lambda a: a.log1p(), positive(3, 2, low=-0.5, high=2.0),
           lambda a: a.log1p(), covers=("Log1p",)),
    OpCase("expm1", lambda a: backprop.expm1(a), randn(4), lambda a: a.expm1(),
           covers=("Expm1",)),
    OpCase("cumsum/dim0", lambda a: a.cumsum(0), randn(4, 3), lambda a: a.cumsum(0),
           covers=("CumSum",)),
    OpCase("cumsum/negative-dim", lambda a: backprop.cumsum(a, -1), randn(2, 3, 4),
           lambda a: a.cumsum(-1), covers=("CumSum",)),
    OpCase("sort/values", lambda a: a.sort(dim=1).values, randn(3, 5),
           lambda a: a.sort(dim=1).values, covers=("Gather",)),
    OpCase("sort/descending", lambda a: a.sort(dim=0, descending=True).values, randn(4, 2),
           lambda a: a.sort(dim=0, descending=True).values, covers=("Gather",)),
    OpCase("topk", lambda a: a.topk(2, dim=1).values, randn(3, 5),
           lambda a: a.topk(2, dim=1).values, covers=("Gather", "Narrow")),
    OpCase("remainder", lambda a, b: a % b, lambda r: [r.uniform(-3, 3, (3, 4)) + 0.05,
           r.uniform(0.7, 2, (4,))], lambda a, b: a % b, covers=("Sub", "Mul")),
]


def _put(index):
    """x[index] = v recorded in the graph, written on a clone so the input stays intact."""
    def fn(x, v):
        out = x * 1.0
        out[index] = v
        return out
    return fn


CASES += [
    OpCase("setitem/row", _put(0), lambda r: [r.standard_normal((3, 4)), r.standard_normal(4)],
           _put(0), covers=("IndexPut",)),
    OpCase("setitem/slice-broadcast", _put((slice(None), slice(1, 3))), lambda r: [
           r.standard_normal((3, 4)), r.standard_normal((1, 2))],
           _put((slice(None), slice(1, 3))), covers=("IndexPut",)),
    OpCase("setitem/integer-array", _put(np.array([2, 0])), lambda r: [
           r.standard_normal((4, 2)), r.standard_normal((2, 2))],
           lambda x, v: _put(__import__("torch").tensor([2, 0]))(x, v), covers=("IndexPut",)),
]


def _write_through_view(x, v):
    """A write through a view reaches the base (CopySlices); the view reads it (AsStrided)."""
    out = x * 1.0
    view = out[:, 1:3]
    view[0] = v
    return out * 2.0 + view.sum()


def _mul_into_view(x, v):
    out = x * 1.0
    out[1:].mul_(v)
    return out


def _copy_into(x, v):
    out = x * 1.0
    out.copy_(v)
    return out * x


CASES += [
    OpCase("inplace/setitem-through-view", _write_through_view,
           lambda r: [r.standard_normal((3, 4)), r.standard_normal(2)], _write_through_view,
           covers=("CopySlices", "AsStrided")),
    OpCase("inplace/mul_-of-view", _mul_into_view,
           lambda r: [r.standard_normal((3, 4)), r.standard_normal(4)], _mul_into_view,
           covers=("CopySlices", "AsStrided", "Mul")),
    OpCase("inplace/copy_", _copy_into,
           lambda r: [r.standard_normal((3, 4)), r.standard_normal(4)], _copy_into,
           covers=("Overwrite",)),
]
