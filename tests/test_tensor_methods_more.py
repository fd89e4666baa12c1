"""Tensor methods PyTorch has that backprop added in ops/math.py: the in-place index/scatter
family (through the in-place machinery, so gradients stay right), shape changes in place,
and the memory facts (stride, storage_offset, ...). Compared with PyTorch."""
import numpy as np
import pytest

import backprop
from backprop.errors import DTypeError, InplaceError, ShapeError


def _pair(torch, x):
    x = np.asarray(x, dtype=np.float64)
    return backprop.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def _close(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = ours.detach().numpy()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def _through(torch, change, *arrays):
    """Run ``change(leaves, lib)`` in both libraries (it changes a non-leaf in place and
    returns a result); compare the result and every leaf's gradient."""
    ours_in, theirs_in = zip(*[_pair(torch, a) for a in arrays])
    ours, theirs = change(list(ours_in), backprop), change(list(theirs_in), torch)
    _close(ours, theirs)
    v = np.arange(1.0, ours.numel() + 1).reshape(tuple(ours.shape))
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    for a, b in zip(ours_in, theirs_in):
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any()
        else:
            _close(a.grad, b.grad)


_X = np.arange(12.0).reshape(3, 4) / 7 - 0.5
_SRC = np.linspace(-1, 1, 8).reshape(2, 4)


@pytest.mark.parametrize("name, change", [
    ("index_add_", lambda t, lib: (t[0] * 2).index_add_(0, lib.tensor([2, 0]), t[1], alpha=3)),
    ("index_copy_", lambda t, lib: (t[0] * 2).index_copy_(0, lib.tensor([2, 0]), t[1])),
    ("index_fill_", lambda t, lib: (t[0] * 2).index_fill_(1, lib.tensor([3, 1]), -1.0)),
    ("scatter_/src", lambda t, lib: (t[0] * 2).scatter_(0, lib.tensor([[0, 1, 2, 0],
                                                                       [2, 0, 1, 1]]), t[1])),
    ("scatter_/value", lambda t, lib: (t[0] * 2).scatter_(1, lib.tensor([[1], [0], [3]]), 4.0)),
    ("scatter_add_", lambda t, lib: (t[0] * 2).scatter_add_(0, lib.tensor([[0, 1, 2, 0],
                                                                           [0, 0, 1, 1]]), t[1])),
    ("masked_scatter_", lambda t, lib: (t[0] * 2).masked_scatter_(
        lib.tensor([True, False, True, False]), t[1])),
    ("fill_diagonal_", lambda t, lib: (t[0] * 2).fill_diagonal_(9.0) * t[0]),
    ("lerp_", lambda t, lib: (t[0] * 2).lerp_(t[0][:2].sum(0), 0.25)),
    ("floor_", lambda t, lib: (t[0] * 2).floor_() * t[0]),
    ("atan2_", lambda t, lib: (t[0] * 2).atan2_(t[0] + 2)),
    ("cumprod_", lambda t, lib: (t[0] * 2).cumprod_(1)),
])
def test_in_place_methods_match_torch_with_gradients(oracle, name, change):
    _through(oracle, change, _X, _SRC)


def test_in_place_write_through_a_view_reaches_the_base(oracle):
    def change(t, lib):
        y = t[0] * 1
        y[1:].index_fill_(1, lib.tensor([0]), 5.0)   # a view of y
        y[0].scatter_add_(0, lib.tensor([1, 1]), t[1][0, :2])
        return y * t[0]
    _through(oracle, change, _X, _SRC)


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    x = backprop.ones(2, 2, requires_grad=True)
    with pytest.raises(InplaceError, match="leaf"):
        x.index_fill_(0, backprop.tensor([0]), 2.0)
    with pytest.raises(InplaceError, match="leaf"):
        x.squeeze_()


def test_in_place_outside_the_graph_changes_memory_and_version():
    x = backprop.zeros(3, 3)
    alias = x[0]
    v = x._version
    x.index_fill_(1, backprop.tensor([2]), 1.0)
    assert x._version != v
    assert alias.tolist() == [0.0, 0.0, 1.0]
    with backprop.no_grad():
        w = backprop.ones(2, requires_grad=True)
        w.scatter_(0, backprop.tensor([1]), backprop.tensor([5.0]))
    assert w.tolist() == [1.0, 5.0] and w.grad_fn is None


@pytest.mark.filterwarnings("ignore:The reduce argument")  # (torch's deprecation notice)
def test_scatter_reduce_forms(oracle):
    idx = [[0, 1, 0, 0], [0, 0, 1, 1]]
    for reduce in ("add", "multiply"):
        ours = backprop.tensor(_X).scatter(0, backprop.tensor(idx), backprop.tensor(_SRC + 2),
                                           reduce=reduce)
        theirs = oracle.tensor(_X).scatter(0, oracle.tensor(idx), oracle.tensor(_SRC + 2),
                                           reduce=reduce)
        _close(ours, theirs)
    ours = backprop.tensor(_X).scatter_(1, backprop.tensor([[0, 0]]), 2.0, reduce="multiply")
    theirs = oracle.tensor(_X).scatter_(1, oracle.tensor([[0, 0]]), 2.0, reduce="multiply")
    _close(ours, theirs)
    with pytest.raises(NotImplementedError, match="scatter"):
        backprop.tensor(_X, requires_grad=True).scatter(0, backprop.tensor(idx),
                                                        backprop.tensor(_SRC), reduce="add")
    with pytest.raises(ValueError, match="reduce"):
        backprop.tensor(_X).scatter(0, backprop.tensor(idx), 1.0, reduce="max")


def test_fill_diagonal_wrap_and_cube(oracle):
    for shape, wrap in [((7, 3), True), ((7, 3), False), ((2, 5), False), ((3, 3, 3), False)]:
        ours = backprop.zeros(*shape).fill_diagonal_(1.0, wrap=wrap)
        theirs = oracle.zeros(*shape).fill_diagonal_(1.0, wrap=wrap)
        _close(ours, theirs)


def test_squeeze_unsqueeze_t_in_place(oracle):
    shapes, values = [], []
    for lib in (backprop, oracle):
        y = lib.tensor(_X.reshape(3, 4, -1)[0] * 1)  # no graph: only the shape changes
        assert y.unsqueeze_(1) is y
        seen = [tuple(y.shape)]
        y.squeeze_(1)
        y.t_()
        seen.append(tuple(y.shape))
        shapes.append(seen)
        values.append(np.asarray(y.tolist()))
    assert shapes[0] == shapes[1]
    np.testing.assert_array_equal(values[0], values[1])
    x = backprop.zeros(1, 3, 1)
    assert x.squeeze_() is x and tuple(x.shape) == (3,)


def test_shape_change_in_place_of_a_graph_tensor_is_refused_not_broken():
    # An op that read y before the change would get a gradient of the old shape: refused
    # with advice, where it used to fail later inside backward.
    x = backprop.ones(2, 3, requires_grad=True)
    y = x * 1
    z = y * 2
    for change in (lambda: y.unsqueeze_(0), lambda: y.t_(), lambda: y.squeeze_()):
        with pytest.raises(InplaceError, match=r"graph \(shape \(2, 3\)\).*y = y\."):
            change()
    z.sum().backward()
    assert x.grad.tolist() == [[2.0] * 3] * 2


@pytest.mark.parametrize("view", [
    lambda t: t, lambda t: t[1:, ::2], lambda t: t.t(), lambda t: t[2], lambda t: t.unfold(1, 2, 1),
    lambda t: t.diagonal(1),
])
def test_memory_facts_match_torch(oracle, view):
    ours, theirs = view(backprop.tensor(_X)), view(oracle.tensor(_X))
    assert ours.stride() == theirs.stride()
    assert ours.storage_offset() == theirs.storage_offset()
    assert ours.is_contiguous() == theirs.is_contiguous()
    assert ours.nelement() == theirs.nelement() and ours.ndimension() == theirs.ndimension()
    assert ours.nbytes == theirs.nbytes and ours.itemsize == theirs.itemsize
    if ours.ndim:
        assert ours.stride(-1) == theirs.stride(-1)


def test_data_ptr_is_shared_by_views():
    x = backprop.zeros(4, 4)
    assert x[0].data_ptr() == x.data_ptr()
    assert x[1].data_ptr() == x.data_ptr() + 4 * x.itemsize
    assert x.clone().data_ptr() != x.data_ptr()
    assert x.is_cuda is False


def test_casts_and_sum_to_size(oracle):
    v = np.array([1.7, -2.2, 300.0])
    for name in ("byte", "char", "short"):
        ours = getattr(backprop.tensor(v[:2] if name != "short" else v), name)()
        theirs = getattr(oracle.tensor(v[:2] if name != "short" else v), name)()
        assert ours.tolist() == theirs.tolist() and str(ours.dtype)[-5:] == str(theirs.dtype)[-5:]
    _through(oracle, lambda t, lib: t[0].sum_to_size(1, 4) * 2, _X)
    _through(oracle, lambda t, lib: t[0].reshape(3, 1, 4).sum_to_size((1, 4)), _X)
    with pytest.raises(ShapeError, match="sum_to_size"):
        backprop.ones(3, 4).sum_to_size(2, 4)


def test_out_of_place_index_family_errors():
    x = backprop.zeros(3, 4)
    with pytest.raises(ShapeError, match="index_add"):
        x.index_add(0, backprop.tensor([0]), backprop.ones(2, 4))
    with pytest.raises(ShapeError, match="index_copy"):
        x.index_copy(1, backprop.tensor([0, 1]), backprop.ones(3, 3))
    with pytest.raises(ShapeError, match="masked_scatter"):
        x.masked_scatter(backprop.ones(3, 4).bool(), backprop.ones(5))
    with pytest.raises(DTypeError, match="masked_scatter"):
        x.masked_scatter(backprop.ones(3, 4), backprop.ones(12))
    with pytest.raises(ShapeError, match="fill_diagonal_"):
        backprop.zeros(2, 3, 2).fill_diagonal_(1.0)
    with pytest.raises(Exception, match="scatter"):
        x.scatter(0, backprop.tensor([[5]]), 1.0)
