"""mm, bmm, dot, outer, einsum and linear: errors, edge cases, larger shapes against torch."""
import numpy as np
import pytest

import backprop
from backprop.errors import DTypeError, ShapeError
from backprop.ops.linalg import bmm, dot, einsum, linear, matmul, mm, outer

try:  # the oracle: the comparisons below skip cleanly without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")


def _pair(a, dtype):
    a = np.asarray(a, dtype=dtype)
    return backprop.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _check(ours_fn, torch_fn, arrays, dtype, atol, rtol):
    """Forward and every gradient of ours_fn against torch_fn."""
    pairs = [_pair(a, dtype) for a in arrays]
    ours = ours_fn(*(p[0] for p in pairs))
    theirs = torch_fn(*(p[1] for p in pairs))
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=atol,
                               rtol=rtol)
    g = np.random.default_rng(9).standard_normal(tuple(theirs.shape)).astype(dtype)
    ours.backward(backprop.tensor(g))
    theirs.backward(torch.tensor(g))
    for b, t in pairs:
        assert b.grad.dtype == b.dtype
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), atol=atol, rtol=rtol)


TOL = {np.float32: (1e-4, 1e-4), np.float64: (1e-10, 1e-10)}


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, a, b, cls, match", [
    (matmul, (32, 784), (512, 10), ShapeError,
     r"matmul: shapes \(32, 784\) and \(512, 10\) are not aligned: 784 != 512"),
    (mm, (3,), (3, 4), ShapeError, r"mm: expected two 2-D tensors, got shapes \(3,\) and \(3, 4\)"),
    (mm, (2, 3), (4, 5), ShapeError, r"mm: shapes \(2, 3\) and \(4, 5\) are not aligned: 3 != 4"),
    (bmm, (3, 4), (2, 4, 5), ShapeError, r"bmm: expected two 3-D tensors, got shapes \(3, 4\)"),
    (bmm, (2, 3, 4), (3, 4, 5), ShapeError, r"bmm: batch sizes differ.*2 != 3"),
    (bmm, (2, 3, 4), (2, 5, 5), ShapeError, r"bmm: shapes \(2, 3, 4\) and \(2, 5, 5\) are not "
                                            r"aligned: 4 != 5"),
    (dot, (3, 3), (3,), ShapeError, r"dot: expected two 1-D tensors, got shapes \(3, 3\) and"),
    (dot, (3,), (4,), ShapeError, r"dot: tensors have different lengths: 3 and 4"),
    (outer, (3, 2), (4,), ShapeError, r"outer: expected two 1-D tensors, got shapes \(3, 2\)"),
])
def test_shape_errors(fn, a, b, cls, match):
    with pytest.raises(cls, match=match):
        fn(backprop.zeros(*a), backprop.zeros(*b))


def test_matmul_mixed_dtypes_is_an_error():
    a, b = backprop.zeros(2, 3), backprop.zeros(3, 4, dtype=backprop.float64)
    with pytest.raises(DTypeError, match="matmul: expected operands of the same dtype, got "
                                         "float32 and float64"):
        a @ b
    with pytest.raises(DTypeError, match="dot"):
        dot(backprop.zeros(3), backprop.zeros(3, dtype=backprop.float64))


@pytest.mark.parametrize("equation, shapes, match", [
    ("ij,jk->ik", [(2, 3), (4, 4)], r"subscript 'j' has size 4 in operand 1 \(shape \(4, 4\)\) "
                                    r"but size 3 elsewhere"),
    ("ij,jk->ik", [(2, 3), (3, 4), (3,)], r"names 2 operands but 3 were given"),
    ("ij,jk->ik", [(2, 3)], r"names 2 operands but 1 was given"),
    ("ijk,jk->ik", [(2, 3), (3, 4)], r"operand 0 has 2 dimensions \(shape \(2, 3\)\) but "
                                     r"subscripts 'ijk' name 3"),
    ("ij,jk->iq", [(2, 3), (3, 4)], r"output subscript 'q' does not appear in any operand"),
    ("ij,jk->ii", [(2, 3), (3, 4)], r"output subscript 'i' appears more than once"),
    ("i1,jk->ik", [(2, 3), (3, 4)], r"invalid subscript '1'"),
    ("ii->i", [(2, 3)], r"subscript 'i' is repeated in operand 0 .* different sizes 2 and 3"),
    ("i.j->", [(2, 2)], r"invalid subscript '\.'"),
])
def test_einsum_errors(equation, shapes, match):
    with pytest.raises(ShapeError, match=r"einsum: .*" + match):
        einsum(equation, *(backprop.zeros(*s) for s in shapes))


def test_einsum_other_errors():
    with pytest.raises(DTypeError, match="einsum: expected operands of the same dtype"):
        einsum("ij,jk", backprop.zeros(2, 3), backprop.zeros(3, 2, dtype=backprop.float64))
    with pytest.raises(NotImplementedError, match="sublist"):
        einsum(backprop.zeros(2), [0], backprop.zeros(2), [0])
    with pytest.raises(ShapeError, match="at least one operand"):
        einsum("ij")


@pytest.mark.parametrize("x, w, b, match", [
    ((32, 784), (10, 512), None, r"linear: input has 784 features \(shape \(32, 784\)\) but "
                                 r"weight expects 512 \(weight shape \(10, 512\)\)"),
    ((3, 4), (4,), None, r"linear: expected weight of shape \(out_features, in_features\), "
                         r"got shape \(4,\)"),
    ((), (5, 4), None, r"linear: input needs at least 1 dimension"),
    ((3, 4), (5, 4), (4,), r"linear: expected bias of shape \(5,\) for weight of shape "
                           r"\(5, 4\), got \(4,\)"),
])
def test_linear_errors(x, w, b, match):
    with pytest.raises(ShapeError, match=match):
        linear(backprop.zeros(*x), backprop.zeros(*w), None if b is None else backprop.zeros(*b))


def test_linear_dtype_error():
    with pytest.raises(DTypeError, match="linear: expected operands of the same dtype"):
        linear(backprop.zeros(3, 4), backprop.zeros(5, 4),
               backprop.zeros(5, dtype=backprop.float64))


# -- behaviour ------------------------------------------------------------------------------
def test_methods_and_aliases():
    a, b = backprop.ones(3), backprop.ones(4)
    assert a.outer(b).shape == (3, 4)
    assert backprop.ops.ger(a, b).shape == (3, 4)
    assert float(a.dot(a)) == 3.0
    assert backprop.ones(2, 3).mm(backprop.ones(3, 2)).shape == (2, 2)
    assert backprop.ones(5, 2, 3).bmm(backprop.ones(5, 3, 2)).shape == (5, 2, 2)


def test_linear_keeps_float32_and_skips_unneeded_grads():
    x = backprop.randn(4, 3)  # no grad
    w = backprop.randn(2, 3, requires_grad=True)
    out = linear(x, w, backprop.zeros(2))
    assert out.dtype == backprop.float32
    out.sum().backward()
    assert w.grad.dtype == backprop.float32
    np.testing.assert_allclose(w.grad.numpy(), np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-5)


def test_einsum_integer_operands():
    a = np.arange(6).reshape(2, 3)
    out = einsum("ij,kj->ik", backprop.tensor(a), backprop.tensor(a))
    np.testing.assert_array_equal(out.numpy(), a @ a.T)
    assert out.dtype == backprop.int64


def test_einsum_spaces_and_upper_case():
    a, b = np.random.default_rng(0).standard_normal((2, 3, 4))
    out = einsum("A b , b c -> A c", backprop.tensor(a[:, :3]), backprop.tensor(b[:3]))
    np.testing.assert_allclose(out.numpy(), a[:, :3] @ b[:3])


# -- larger shapes against torch ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(64, 48), (48, 32)]),
    ("bij,bjk->bik", [(8, 16, 24), (8, 24, 12)]),
    ("bhqd,bhkd->bhqk", [(2, 4, 16, 8), (2, 4, 16, 8)]),
    ("ii->i", [(32, 32)]),
    ("bi,bi->b", [(64, 32), (64, 32)]),
    ("ij,jk,kl->il", [(16, 8), (8, 12), (12, 4)]),
    ("...ij->...ji", [(3, 4, 5, 6)]),
    ("i...j,j...k", [(4, 5, 3), (3, 6)]),
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
])
@needs_torch
def test_einsum_matches_torch(dtype, equation, shapes):
    rng = np.random.default_rng(0)
    _check(lambda *t: einsum(equation, *t), lambda *t: torch.einsum(equation, *t),
           [rng.standard_normal(s) for s in shapes], dtype, *TOL[dtype])


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, bias", [((64, 128), True), ((8, 16, 128), True),
                                            ((64, 128), False), ((128,), True)])
def test_linear_matches_torch(dtype, x_shape, bias):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal((32, 128)) * 0.1]
    if bias:
        arrays.append(rng.standard_normal(32))
    _check(linear, F.linear, arrays, dtype, *TOL[dtype])


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mm_bmm_dot_outer_match_torch(dtype):
    rng = np.random.default_rng(2)
    tol = TOL[dtype]
    _check(mm, torch.mm, [rng.standard_normal((50, 40)), rng.standard_normal((40, 30))], dtype,
           *tol)
    _check(bmm, torch.bmm, [rng.standard_normal((6, 20, 10)), rng.standard_normal((6, 10, 15))],
           dtype, *tol)
    _check(dot, torch.dot, [rng.standard_normal(100), rng.standard_normal(100)], dtype, *tol)
    _check(outer, torch.outer, [rng.standard_normal(30), rng.standard_normal(20)], dtype, *tol)


def test_outer_promotes_like_torch():
    out = outer(backprop.ones(2), backprop.ones(3, dtype=backprop.float64))
    assert out.dtype == backprop.float64
