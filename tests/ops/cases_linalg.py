"""Catalogue cases for the matrix products: mm, bmm, dot, outer, einsum, linear."""

from backprop.ops.linalg import bmm, dot, einsum, linear, mm, outer
from tests.ops.catalogue import OpCase

try:  # the oracle: the comparisons below skip cleanly without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None


def _draw(*shapes):
    return lambda r: [r.standard_normal(s) for s in shapes]


def _einsum_case(equation, *shapes, name=None):
    return OpCase(f"einsum/{name or equation}",
                  lambda *ops: einsum(equation, *ops), _draw(*shapes),
                  lambda *ops: torch.einsum(equation, *ops), covers=("Einsum",))


CASES = [
    OpCase("mm", lambda a, b: mm(a, b), _draw((3, 4), (4, 2)),
           lambda a, b: torch.mm(a, b), covers=("MatMul",)),
    OpCase("mm/method", lambda a, b: a.mm(b), _draw((2, 5), (5, 3)),
           lambda a, b: a.mm(b), covers=("MatMul",)),
    OpCase("bmm", lambda a, b: bmm(a, b), _draw((2, 3, 4), (2, 4, 2)),
           lambda a, b: torch.bmm(a, b), covers=("MatMul",)),
    OpCase("bmm/method", lambda a, b: a.bmm(b), _draw((3, 2, 2), (3, 2, 4)),
           lambda a, b: a.bmm(b), covers=("MatMul",)),
    OpCase("dot", lambda a, b: dot(a, b), _draw(5, 5),
           lambda a, b: torch.dot(a, b), covers=("MatMul",)),
    OpCase("dot/same-tensor", lambda a: a.dot(a), _draw(4), lambda a: a.dot(a),
           covers=("MatMul",)),
    OpCase("outer", lambda a, b: outer(a, b), _draw(3, 4),
           lambda a, b: torch.outer(a, b), covers=("Mul", "Reshape")),
    OpCase("outer/method", lambda a, b: a.outer(b), _draw(2, 5), lambda a, b: a.outer(b),
           covers=("Mul", "Reshape")),
    _einsum_case("ij,jk->ik", (3, 4), (4, 2), name="matmul"),
    _einsum_case("bij,bjk->bik", (2, 3, 4), (2, 4, 2), name="batched-matmul"),
    _einsum_case("ij,jk", (2, 3), (3, 4), name="implicit-output"),
    _einsum_case("ba,ab", (3, 4), (4, 3), name="implicit-sorted"),
    _einsum_case("ij->ji", (3, 4), name="transpose"),
    _einsum_case("ii->", (4, 4), name="trace"),
    _einsum_case("ii->i", (4, 4), name="diagonal"),
    _einsum_case("iji->j", (3, 2, 3), name="repeated-across-axes"),
    _einsum_case("i,i->", 5, 5, name="dot"),
    _einsum_case("i,j->ij", 3, 4, name="outer"),
    _einsum_case("bi,bi->b", (3, 4), (3, 4), name="rowwise-dot"),
    _einsum_case("ij->i", (3, 4), name="sum-rows"),
    _einsum_case("ij->", (3, 4), name="sum-all"),
    _einsum_case("ij,j->ij", (3, 4), 4, name="broadcast-mul"),
    _einsum_case("ij,kl->", (2, 3), (2, 2), name="independent-sums"),
    _einsum_case("ij,jk,kl->il", (2, 3), (3, 4), (4, 2), name="chain"),
    _einsum_case("bhid,bhjd->bhij", (1, 2, 3, 4), (1, 2, 3, 4), name="attention"),
    _einsum_case("...ij,...jk->...ik", (2, 3, 4), (4, 2), name="ellipsis"),
    _einsum_case("i...->...", (3, 2, 2), name="ellipsis-leading"),
    _einsum_case("ij,jk->ik", (3, 1), (4, 2), name="size-1-broadcast"),
    _einsum_case("...i,...i->...", (2, 1, 3), (4, 3), name="ellipsis-broadcast"),
    OpCase("einsum/list-operands", lambda a, b: einsum("ij,jk->ik", [a, b]),
           _draw((2, 3), (3, 2)), lambda a, b: torch.einsum("ij,jk->ik", [a, b]),
           covers=("Einsum",)),
    OpCase("einsum/same-operand", lambda a: einsum("ij,ij->", a, a),
           _draw((3, 3)), lambda a: torch.einsum("ij,ij->", a, a), covers=("Einsum",)),
    OpCase("linear/bias", lambda x, w, b: linear(x, w, b),
           _draw((4, 3), (2, 3), 2), lambda *a: F.linear(*a), covers=("Linear",)),
    OpCase("linear/no-bias", lambda x, w: linear(x, w), _draw((4, 3), (5, 3)),
           lambda *a: F.linear(*a), covers=("Linear",)),
    OpCase("linear/3d-input", lambda x, w, b: linear(x, w, b),
           _draw((2, 3, 4), (3, 4), 3), lambda *a: F.linear(*a), covers=("Linear",)),
    OpCase("linear/1d-input", lambda x, w, b: linear(x, w, b),
           _draw(4, (3, 4), 3), lambda *a: F.linear(*a), covers=("Linear",)),
    OpCase("linear/scalar-bias", lambda x, w, b: linear(x, w, b),
           _draw((3, 4), (2, 4), ()), lambda *a: F.linear(*a), covers=("Linear",)),
]
