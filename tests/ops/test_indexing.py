"""Indexing: error messages, __setitem__, views vs copies, scatter kernels and properties
(values and gradients of the ops are in the catalogue, tests/ops/cases_indexing.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop
from backprop import DTypeError, GradError, IndexOutOfRange, InplaceError, ShapeError
from backprop.ops import indexing as I


def t(*shape, grad=False, dtype=np.float64):
    data = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    return backprop.tensor(data, requires_grad=grad)


def idx(*values):
    return backprop.tensor(np.array(values, dtype=np.int64))


MASK = backprop.tensor(np.array([True, False, True]))


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, cls, match", [
    (lambda: t(3)[5], IndexOutOfRange,
     r"__getitem__: index 5 is out of bounds for dimension 0 with size 3"),
    (lambda: t(3)[-4], IndexOutOfRange, r"index -4 is out of bounds for dimension 0 with size 3"),
    (lambda: t(3, 4)[idx(0, 1, 2), idx(0, 1)], IndexOutOfRange,
     r"__getitem__: shape mismatch: index tensors of shapes \(3,\), \(2,\) can't be broadcast "
     r"together"),
    (lambda: t(3, 4)[[0, 1], [0, 1, 2]], IndexOutOfRange,
     r"shape mismatch: index tensors of shapes \(2,\), \(3,\)"),
    (lambda: t(3, 4)[idx(0, 3), idx(0, 1)], IndexOutOfRange,
     r"index 3 is out of bounds for dimension 0 with size 3"),
    (lambda: t(3, 4)[None, [0, 1, 2], [0, 1]], IndexOutOfRange,
     r"__getitem__: shape mismatch: index tensors of shapes \(3,\), \(2,\)"),
    (lambda: t(3, 4).__setitem__((idx(0, 1, 2), idx(0, 1)), 1.0), IndexOutOfRange,
     r"__setitem__: shape mismatch: index tensors of shapes \(3,\), \(2,\)"),
    (lambda: t(3, 4).__setitem__((idx(0, 5), idx(0, 1)), 1.0), IndexOutOfRange,
     r"__setitem__: index 5 is out of bounds for dimension 0 with size 3"),
    (lambda: t(3, 4, grad=True).clone().__setitem__((idx(0, 1, 2), idx(0, 1)),
                                                    t(1, grad=True)), IndexOutOfRange,
     r"__setitem__: shape mismatch: index tensors of shapes \(3,\), \(2,\)"),
    (lambda: t(3, 4)[:, 7], IndexOutOfRange,
     r"index 7 is out of bounds for dimension 1 with size 4"),
    (lambda: t(3, 4)[0, ..., 4], IndexOutOfRange, r"index 4 is out of bounds for dimension 1"),
    (lambda: t(3)[[0, 5, 7]], IndexOutOfRange,
     r"index 5 is out of bounds for dimension 0 with size 3"),
    (lambda: t(3, 4)[:, idx(0, -5)], IndexOutOfRange,
     r"index -5 is out of bounds for dimension 1 with size 4"),
    (lambda: t(3)[backprop.tensor([0.0, 1.0])], DTypeError,
     r"__getitem__: tensors used as indices must be integer or bool tensors, got a tensor of "
     r"dtype float32"),
    (lambda: t(3)[np.array([0.5])], DTypeError, r"got an array of dtype float64"),
    (lambda: t(3)[1.0], DTypeError, r"__getitem__: only integers, slices, .* \(got float\)"),
    (lambda: t(3)["a"], DTypeError, r"\(got str\)"),
    (lambda: t(3)[[0.0, 1.0]], DTypeError, r"lists used as indices must hold integers or bools"),
    (lambda: t(3)[[[0, 1], [2]]], ShapeError, r"must not be ragged"),
    (lambda: t(3, 4)[0, 0, 0], IndexOutOfRange,
     r"too many indices for tensor of dimension 2 \(shape \(3, 4\)\)"),
    (lambda: t(3, 4)[..., 0, ...], IndexOutOfRange, r"an index can only have a single ellipsis"),
    (lambda: t()[0], IndexOutOfRange, r"invalid index of a 0-dim tensor"),
    (lambda: t(3, 4)[MASK[:2]], IndexOutOfRange,
     r"the shape of the mask \(2,\) does not match the shape \(3,\) of the dimensions it "
     r"indexes \(from dimension 0 of a tensor of shape \(3, 4\)\)"),
    (lambda: t(3, 4)[:, MASK], IndexOutOfRange, r"mask \(3,\) does not match the shape \(4,\)"),
    (lambda: t(3)[::0], ShapeError, r"slice step cannot be zero"),
    (lambda: t(3)[0.5:], DTypeError, r"slice indices must be integers or None, got float"),
    (lambda: t(3, 4).gather(1, idx([0, 5])), IndexOutOfRange,
     r"gather: index 5 is out of bounds for dimension 1 with size 4"),
    (lambda: t(3, 4).gather(1, idx([0, -1])), IndexOutOfRange,
     r"gather: index -1 is out of bounds for dimension 1 with size 4"),
    (lambda: t(3, 4).gather(1, backprop.tensor([[0.0]])), DTypeError,
     r"gather: expected dtype int64 \(or int32\) for index, got float32"),
    (lambda: t(3, 4).gather(1, idx(0, 1)), ShapeError,
     r"gather: index must have the same number of dimensions as input"),
    (lambda: t(3, 4).gather(1, idx(*[[0, 1]] * 5)), ShapeError,
     r"gather: index of shape \(5, 2\) must be no larger than input of shape \(3, 4\) apart "
     r"from dimension 1"),
    (lambda: t(3, 4).gather(2, idx([0])), IndexOutOfRange, r"gather: dimension out of range"),
    (lambda: t(3, 4).gather(1, [[0]]), TypeError, r"gather: index must be an integer tensor"),
    (lambda: t(3, 4).index_select(1, idx(0, 4)), IndexOutOfRange,
     r"index_select: index 4 is out of bounds for dimension 1 with size 4"),
    (lambda: t(3, 4).index_select(0, idx([0, 1])), ShapeError,
     r"index_select: index is supposed to be a vector, got shape \(1, 2\)"),
    (lambda: t().index_select(0, idx(0, 0)), ShapeError, r"0-d tensor can have only 1 value"),
    (lambda: t(3, 4).masked_fill(t(4, dtype=np.int64), 0.0), DTypeError,
     r"masked_fill: only supports boolean masks, but got mask with dtype int64"),
    (lambda: t(3, 4).masked_fill(MASK, 0.0), ShapeError,
     r"masked_fill: mask of shape \(3,\) can't be broadcast with the input's shape \(3, 4\)"),
    (lambda: t(3, 4).masked_fill(MASK[:1], t(2)), ShapeError,
     r"only supports a 0-dimensional value tensor"),
    (lambda: t(3, 4).masked_fill(MASK[:1], "x"), TypeError, r"value must be a number"),
    (lambda: t(3, 4).masked_fill([True], 0.0), TypeError, r"mask must be a bool tensor"),
    (lambda: t(3, 4).masked_fill_(t(2, 3, 4) > 0, 0.0), ShapeError,
     r"masked_fill_: mask of shape \(2, 3, 4\) can't be broadcast to the tensor's shape"),
    (lambda: t(3, 4).masked_select(MASK), ShapeError, r"masked_select: mask of shape \(3,\)"),
    (lambda: t(3).scatter_add(0, idx(3), t(1)), IndexOutOfRange,
     r"scatter_add: index 3 is out of bounds for dimension 0 with size 3"),
    (lambda: t(3, 2).scatter_add(0, idx(0), t(1)), ShapeError,
     r"scatter_add: index, input and src must have the same number of dimensions"),
    (lambda: t(3, 2).scatter_add(0, idx([0, 0, 0]), t(1, 2)), ShapeError,
     r"must be no larger than src of shape \(1, 2\)"),
    (lambda: t(3, 4).take_along_dim(idx(0), 1), ShapeError,
     r"take_along_dim: input and indices should have the same number of dimensions"),
    (lambda: t(3, 4).take_along_dim(idx([0], [1]), 1), ShapeError,
     r"take_along_dim: input of shape \(3, 4\) and indices of shape \(2, 1\) can't be "
     r"broadcast"),
    (lambda: t(3, 4).take_along_dim(idx([4]), 1), IndexOutOfRange,
     r"take_along_dim: index 4 is out of bounds for dimension 1 with size 4"),
])
def test_errors(call, cls, match):
    with pytest.raises(cls, match=match):
        call()


def test_error_classes_are_the_natural_python_ones():
    with pytest.raises(IndexError):
        t(3)[3]
    with pytest.raises(TypeError):
        t(3)[backprop.tensor([0.5])]


# -- reading ---------------------------------------------------------------------------------

def test_basic_indexing_gives_views_advanced_gives_copies():
    x = t(3, 4, dtype=np.float32)
    for view in (x[1], x[1:], x[:, ::-1], x[None, ..., 2], x[-1, 1:3]):
        assert np.shares_memory(view.numpy(), x.numpy())
        assert view.dtype == backprop.float32
    for copy in (x[[0, 1]], x[x > 3], x[:, idx(1, 1)]):
        assert not np.shares_memory(copy.numpy(), x.numpy())
        assert copy.dtype == backprop.float32


def test_integers_are_applied_before_advanced_indices_like_torch():
    x = t(3, 4, 5)
    assert x[0, :, [0, 1, 1]].shape == (4, 3)        # NumPy would give (3, 4)
    assert x[[0, 1], 0, [0, 1]].shape == (2,)
    assert x[idx(), 1].shape == (0, 5)
    assert x[backprop.tensor(1)].shape == (4, 5)        # a 0-d integer tensor acts as an int


def test_repeated_indices_accumulate_gradients():
    x = t(3, grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 0, 1])
    y = t(2, 20, grad=True)          # long rows take the sort path of the kernel
    (y[[1, 1, 1]] * 2).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.r_[np.zeros(20), np.full(20, 6.0)]
                                  .reshape(2, 20))


def test_index_tensors_of_other_integer_dtypes_and_uint8_masks():
    x = t(3)
    np.testing.assert_array_equal(x[backprop.tensor(np.array([2, 0], np.int32))].numpy(), [2, 0])
    np.testing.assert_array_equal(x[backprop.tensor(np.array([1, 0, 1], np.uint8))].numpy(),
                                  [0, 2])


def test_scalar_bools_add_an_axis():
    x = t(2, 3)
    assert x[True].shape == (1, 2, 3)
    assert x[False].shape == (0, 2, 3)
    assert x[:, False, 1].shape == (2, 0)
    assert x[None, True].shape == (1, 1, 2, 3)


def test_integer_tensors_can_be_indexed_without_grad():
    x = backprop.arange(6).reshape(2, 3)
    assert x[1, 2].item() == 5
    assert x[x > 2].tolist() == [3, 4, 5]
    assert x[:, [2, 0]].dtype == backprop.int64


def test_iteration():
    x = t(3, 2, grad=True)
    rows = list(x)
    assert len(rows) == 3 and rows[1].tolist() == [2.0, 3.0]
    sum(r.sum() * i for i, r in enumerate(x)).backward()
    np.testing.assert_array_equal(x.grad.numpy()[:, 0], [0, 1, 2])
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(t()).__next__()


def test_gather_and_index_select_accept_int32_and_keep_dtype():
    x = t(2, 3, dtype=np.float32)
    i32 = backprop.tensor(np.array([[2], [0]], np.int32))
    assert x.gather(1, i32).tolist() == [[2.0], [3.0]]
    assert x.gather(1, i32).dtype == backprop.float32
    assert x.index_select(1, backprop.tensor(np.array([1], np.int32))).tolist() == [[1.0], [4.0]]


def test_masked_fill_keeps_input_dtype_and_routes_value_gradient():
    x = t(2, 2, dtype=np.int64)
    assert x.masked_fill(x > 1, 2.7).tolist() == [[0, 1], [2, 2]]
    a = t(2, 2, grad=True)
    v = backprop.tensor(0.5, dtype=backprop.float64, requires_grad=True)
    out = a.masked_fill(backprop.tensor([True, False]), v)
    (out * backprop.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=backprop.float64)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[0, 2], [0, 4]])
    assert v.grad.item() == 4.0


def test_masked_fill_inplace():
    x = t(2, 3)
    x.masked_fill_(backprop.tensor([True, False, True]), -1.0)
    assert x.tolist() == [[-1, 1, -1], [-1, 4, -1]]
    with pytest.raises(InplaceError):
        t(2, grad=True).masked_fill_(backprop.tensor([True, False]), 0.0)


# -- writing ---------------------------------------------------------------------------------

def test_setitem_forms():
    x = backprop.zeros(3, 4)
    x[0] = 1.0
    x[:, 1] = backprop.tensor([5.0, 6.0, 7.0])
    x[x > 5] = -1.0
    x[[0, 2], [3, 3]] = 9
    x[1, ..., ::-1][:2] = backprop.tensor([8.0, 8.0])
    x[2, [0]] = np.array([4.0])
    x[False] = 100.0
    assert x.tolist() == [[1, 5, 1, 9], [0, -1, 8, 8], [4, -1, 0, 9]]
    assert x.dtype == backprop.float32


def test_setitem_casts_values_to_the_tensor_dtype():
    x = backprop.zeros(3, dtype=backprop.int64)
    x[1] = 2.7
    x[[0, 2]] = backprop.tensor([5.0, 6.0])
    assert x.tolist() == [5, 2, 6] and x.dtype == backprop.int64


def test_setitem_errors():
    with pytest.raises(ShapeError, match=r"__setitem__: shape mismatch: value of shape \(3,\) "
                                         r"cannot be broadcast to the indexed shape \(4,\)"):
        backprop.zeros(3, 4)[0] = backprop.ones(3)
    with pytest.raises(IndexOutOfRange, match=r"__setitem__: index 3 is out of bounds"):
        backprop.zeros(3)[3] = 1.0
    with pytest.raises(InplaceError, match="leaf tensor that requires grad"):
        t(3, grad=True)[0] = 1.0
    with pytest.raises(InplaceError, match="broadcast view"):
        backprop.zeros(3, 1).expand(3, 4)[0] = 1.0
    with pytest.raises(TypeError, match="can't assign a str"):
        backprop.zeros(3)[0] = "a"


def test_setitem_inside_the_graph_is_recorded():
    # As PyTorch's CopySlices: writing into a tensor that is (or a value that is) part
    # of the graph records the write, and gradients reach both sides.
    x = t(3, grad=True)
    h = x * 2
    h[0] = 1.0
    assert h.grad_fn.name() == "IndexPutBackward0"
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 2.0, 2.0])
    w = t(1, grad=True)
    buf = backprop.zeros(3)
    buf[0] = w[0] * 3
    buf.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0])


def test_setitem_allowed_on_leaf_under_no_grad():
    w = t(3, grad=True)
    with backprop.no_grad():
        w[1] = 10.0
        w[:, None][0] = backprop.ones(1, requires_grad=True)   # no graph under no_grad
    assert w.tolist() == [1, 10, 2]


def test_setitem_on_a_saved_input_is_caught_at_backward():
    w = t(3, grad=True)
    x = t(3)
    y = (w * x).sum()
    x[0] = 5.0
    with pytest.raises(InplaceError, match="modified by an in-place operation"):
        y.backward()


# -- scatter kernels ---------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_index_add_along_matches_add_at(shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    inner_wide = data.draw(st.booleans())
    shape = list(shape)
    if inner_wide:                          # make rows long enough for the sort path
        shape.append(17)
    size = data.draw(st.integers(1, 6))
    n = shape[axis]
    pattern = data.draw(st.sampled_from(["random", "unique", "same", "sparse"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    if pattern == "unique" and n <= size:
        index = rng.permutation(size)[:n]
    elif pattern == "same":
        index = np.full(n, size - 1)
    elif pattern == "sparse":
        size = 100
        index = rng.integers(0, size, n)
    else:
        index = rng.integers(0, size, n)
    src = rng.standard_normal(shape).astype(data.draw(st.sampled_from([np.float32, np.float64])))
    out = I.index_add_along(src, axis, index, size)
    ref_shape = list(shape)
    ref_shape[axis] = size
    ref = np.zeros(ref_shape, src.dtype)
    np.add.at(np.moveaxis(ref, axis, 0), index, np.moveaxis(src, axis, 0))
    assert out.dtype == src.dtype and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n, total", [(5, 1000), (500, 100), (0, 10)])
def test_scatter_flat_both_paths(n, total):
    rng = np.random.default_rng(0)
    lin = rng.integers(0, total, n)
    values = rng.standard_normal(n)
    ref = np.zeros(total)
    np.add.at(ref, lin, values)
    np.testing.assert_allclose(I._scatter_flat(lin, values, (total,)), ref)


# -- properties against torch ----------------------------------------------------------------

def _index_strategy(shape):
    """A random index for ``shape``: ints, slices, lists (with repeats), masks and None."""
    @st.composite
    def build(draw):
        items = []
        for n in shape:
            kind = draw(st.sampled_from(["int", "slice", "list", "mask", "full", "none"]))
            if kind == "none":
                items.append(None)
                kind = draw(st.sampled_from(["slice", "full"]))
            if kind == "int":
                items.append(draw(st.integers(-n, n - 1)))
            elif kind == "slice":
                items.append(slice(draw(st.integers(-n - 1, n + 1) | st.none()),
                                   draw(st.integers(-n - 1, n + 1) | st.none()),
                                   draw(st.integers(1, 3) | st.none())))
            elif kind == "list":
                items.append(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=4)))
            elif kind == "mask":
                items.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
            else:
                items.append(slice(None))
        cut = draw(st.integers(0, len(items)))
        return tuple(items[:cut])
    return build()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).flatmap(
    lambda shape: st.tuples(st.just(shape), _index_strategy(shape))))
def test_getitem_matches_torch(case):
    torch = pytest.importorskip("torch")
    shape, index = case
    arrays = [e for e in index if isinstance(e, (list, np.ndarray))]
    if len(arrays) > 1:   # several advanced indices must broadcast together
        counts = [int(a.sum()) if isinstance(a, np.ndarray) else len(a) for a in arrays]
        if len({c for c in counts if c != 1}) > 1:
            return
    x = np.random.default_rng(0).standard_normal(shape)
    ours = backprop.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    t_index = tuple(torch.tensor(e) if isinstance(e, np.ndarray) else e for e in index)
    b_index = tuple(backprop.tensor(e) if isinstance(e, np.ndarray) else e for e in index)
    ref = theirs[t_index]
    out = ours[b_index]
    assert out.shape == tuple(ref.shape), (index, out.shape, ref.shape)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    w = np.random.default_rng(1).standard_normal(ref.shape)
    ref.backward(torch.tensor(w))
    out.backward(backprop.tensor(w))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_gather_and_scatter_add_match_torch(shape, data):
    torch = pytest.importorskip("torch")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    ishape = [data.draw(st.integers(0, s)) for s in shape]
    ishape[dim] = data.draw(st.integers(0, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 50)))
    index = rng.integers(0, shape[dim], ishape)
    x = rng.standard_normal(shape)
    ours, theirs = backprop.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours.gather(dim, backprop.tensor(index)), theirs.gather(dim, torch.tensor(index))
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    w = rng.standard_normal(ishape)
    out.backward(backprop.tensor(w))
    ref.backward(torch.tensor(w))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-12)
    summed = backprop.tensor(x).scatter_add(dim, backprop.tensor(index), backprop.tensor(w))
    expect = torch.tensor(x).scatter_add(dim, torch.tensor(index), torch.tensor(w))
    np.testing.assert_allclose(summed.numpy(), expect.numpy(), atol=1e-12)


@pytest.mark.parametrize("op", ["scatter_add", "scatter", "index_add"])
@pytest.mark.parametrize("src_dtype", ["int64", "float64"])
def test_a_source_of_another_dtype_is_refused_as_pytorch_does(op, src_dtype, oracle):
    """scatter_add used to cast the source silently (a float64 source lost its precision,
    an integer one was written into floats); PyTorch refuses, and so does backprop."""
    x = backprop.zeros(3)
    index = backprop.tensor([0, 1, 0])
    src = backprop.tensor([1, 2, 3], dtype=getattr(backprop, src_dtype))
    with pytest.raises(DTypeError, match=f"{op}: expected self and source to have the same "
                                         f"dtype, but got backprop.float32 and "
                                         f"backprop.{src_dtype}"):
        getattr(x, op)(0, index, src)
    torch = oracle
    with pytest.raises(RuntimeError):
        getattr(torch.zeros(3), op)(0, torch.tensor([0, 1, 0]),
                                    torch.tensor([1, 2, 3], dtype=getattr(torch, src_dtype)))
