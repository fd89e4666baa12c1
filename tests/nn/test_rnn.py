"""nn.RNN / nn.LSTM / nn.GRU and their cells against PyTorch, from the same weights, in float64.

Each comparison checks the output, the final states, and the gradients of a loss that
reads all of them with respect to the input, the initial states and every parameter.
"""
import itertools
import warnings

import numpy as np
import pytest

import backprop
from backprop import nn, serialization
from backprop.autograd import gradcheck
from backprop.errors import DTypeError, ShapeError
from backprop.nn.utils.rnn import PackedSequence, pack_padded_sequence

T, B, I, H = 4, 3, 3, 4  # steps, batch, input size, hidden size (small: the tests stay fast)

MODES = {
    "LSTM": ("LSTM", {}),
    "GRU": ("GRU", {}),
    "RNN_TANH": ("RNN", {}),
    "RNN_RELU": ("RNN", {"nonlinearity": "relu"}),
}


def _pair(torch, cls, **kw):
    """(torch module, backprop module) of class ``cls`` with the same float64 weights."""
    theirs = getattr(torch.nn, cls)(I, H, **kw).double()
    ours = getattr(nn, cls)(I, H, **kw).double()
    ours.load_state_dict({k: backprop.tensor(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    return theirs, ours


def _leaf(torch, a):
    return backprop.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _loss(out, states, weights):
    """Σ out·w0 + Σ state_k·w_k: every element matters, with its own weight."""
    total = (out * weights[0]).sum()
    for s, w in zip(states, weights[1:]):
        total = total + (s * w).sum()
    return total


def _check(torch, theirs, ours, x, states0, packed_lengths=None, batch_first=False):
    """Run both, compare outputs, final states and all gradients."""
    lstm = isinstance(ours, nn.LSTM)
    bx, tx = _leaf(torch, x)
    b0 = [_leaf(torch, s) for s in states0]
    bstates = [s[0] for s in b0]
    tstates = [s[1] for s in b0]
    bin_, tin = bx, tx
    if packed_lengths is not None:
        bin_ = pack_padded_sequence(bx, packed_lengths, batch_first=batch_first,
                                    enforce_sorted=False)
        tin = torch.nn.utils.rnn.pack_padded_sequence(tx, packed_lengths,
                                                      batch_first=batch_first,
                                                      enforce_sorted=False)
    if not states0:
        bout, bst = ours(bin_)
        tout, tst = theirs(tin)
    elif lstm:
        bout, bst = ours(bin_, tuple(bstates))
        tout, tst = theirs(tin, tuple(tstates))
    else:
        bout, bst = ours(bin_, bstates[0])
        tout, tst = theirs(tin, tstates[0])
    bst = list(bst) if lstm else [bst]
    tst = list(tst) if lstm else [tst]
    if packed_lengths is not None:
        assert isinstance(bout, PackedSequence)
        np.testing.assert_array_equal(bout.batch_sizes.numpy(), tout.batch_sizes.numpy())
        np.testing.assert_array_equal(bout.sorted_indices.numpy(), tout.sorted_indices.numpy())
        bout, tout = bout.data, tout.data
    assert tuple(bout.shape) == tuple(tout.shape)
    np.testing.assert_allclose(bout.detach().numpy(), tout.detach().numpy(), atol=1e-12)
    for b, t in zip(bst, tst):
        assert tuple(b.shape) == tuple(t.shape)
        np.testing.assert_allclose(b.detach().numpy(), t.detach().numpy(), atol=1e-12)
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal(tuple(t.shape)) for t in [tout] + tst]
    _loss(bout, bst, [backprop.tensor(w) for w in weights]).backward()
    _loss(tout, tst, [torch.tensor(w) for w in weights]).backward()
    np.testing.assert_allclose(bx.grad.numpy(), tx.grad.numpy(), atol=1e-12)
    for (b, t) in b0:
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), atol=1e-12)
    names = [n for n, _ in theirs.named_parameters()]
    assert names == [n for n, _ in ours.named_parameters()]
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad.numpy(), p.grad.numpy(),
                                   atol=1e-12, err_msg=name)


def _states(cls, kw, batch, rng, unbatched=False):
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    h_out = kw.get("proj_size") or H
    shape = (layers,) if unbatched else (layers, batch)
    states = [rng.standard_normal(shape + (h_out,))]
    if cls == "LSTM":
        states.append(rng.standard_normal(shape + (H,)))
    return states


GRID = list(itertools.product(MODES, [1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("mode,layers,bidirectional,batch_first,with_h0", GRID,
                         ids=[f"{m}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tf'}-"
                              f"{'h0' if h else 'noh0'}" for m, n, b, f, h in GRID])
def test_layer_matches_torch(oracle, mode, layers, bidirectional, batch_first, with_h0):
    cls, extra = MODES[mode]
    kw = dict(extra, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    theirs, ours = _pair(oracle, cls, **kw)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    states = _states(cls, kw, B, rng) if with_h0 else []
    _check(oracle, theirs, ours, x, states)


@pytest.mark.parametrize("kw", [dict(proj_size=2), dict(proj_size=3, num_layers=2,
                                                        bidirectional=True, batch_first=True)],
                         ids=["proj", "proj-L2-bi-bf"])
@pytest.mark.parametrize("with_h0", [False, True], ids=["noh0", "h0"])
def test_lstm_projection_matches_torch(oracle, kw, with_h0):
    theirs, ours = _pair(oracle, "LSTM", **kw)
    assert tuple(ours.weight_hr_l0.shape) == (kw["proj_size"], H)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, I) if kw.get("batch_first") else (T, B, I))
    _check(oracle, theirs, ours, x, _states("LSTM", kw, B, rng) if with_h0 else [])


@pytest.mark.parametrize("mode", list(MODES))
def test_without_bias_matches_torch(oracle, mode):
    cls, extra = MODES[mode]
    theirs, ours = _pair(oracle, cls, bias=False, num_layers=2, **extra)
    assert "bias_ih_l0" not in dict(ours.named_parameters())
    rng = np.random.default_rng(3)
    _check(oracle, theirs, ours, rng.standard_normal((T, B, I)), _states(cls, {"num_layers": 2},
                                                                         B, rng))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("with_h0", [False, True], ids=["noh0", "h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
def test_unbatched_matches_torch(oracle, mode, with_h0, batch_first):
    cls, extra = MODES[mode]
    kw = dict(extra, num_layers=2, bidirectional=True, batch_first=batch_first)
    theirs, ours = _pair(oracle, cls, **kw)
    rng = np.random.default_rng(4)
    states = _states(cls, kw, B, rng, unbatched=True) if with_h0 else []
    _check(oracle, theirs, ours, rng.standard_normal((T, I)), states)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
def test_packed_input_matches_torch(oracle, mode, bidirectional, batch_first):
    cls, extra = MODES[mode]
    kw = dict(extra, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    if cls == "LSTM":
        kw["proj_size"] = 3 if bidirectional else 0
    theirs, ours = _pair(oracle, cls, **kw)
    rng = np.random.default_rng(6)
    batch, lengths = 4, [2, 5, 1, 5]  # unsorted, with ties: the sort must be stable as torch's
    x = rng.standard_normal((batch, 5, I) if batch_first else (5, batch, I))
    _check(oracle, theirs, ours, x, _states(cls, kw, batch, rng), packed_lengths=lengths,
           batch_first=batch_first)
    _check(oracle, theirs, ours, x, [], packed_lengths=lengths, batch_first=batch_first)


def test_packed_output_round_trips(oracle):
    ours = nn.GRU(I, H)
    x = backprop.randn(5, 3, I)
    packed = pack_padded_sequence(x, [5, 2, 3], enforce_sorted=False)
    out, h = ours(packed)
    padded, lengths = nn.utils.rnn.pad_packed_sequence(out)
    assert tuple(padded.shape) == (5, 3, H)
    assert lengths.tolist() == [5, 2, 3]
    # the final state of each sequence is its output at its last step
    for b, n in enumerate([5, 2, 3]):
        np.testing.assert_allclose(h[0, b].detach().numpy(), padded[n - 1, b].detach().numpy(),
                                   rtol=1e-6)
    assert np.all(padded[2:, 1].detach().numpy() == 0)


# -- cells --------------------------------------------------------------------------------------
CELLS = {"LSTMCell": {}, "GRUCell": {}, "RNNCell": {}, "RNNCell-relu": {"nonlinearity": "relu"}}


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("with_hx", [False, True], ids=["nohx", "hx"])
@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_cell_matches_torch(oracle, name, with_hx, unbatched, bias):
    cls = name.split("-")[0]
    theirs = getattr(oracle.nn, cls)(I, H, bias=bias, **CELLS[name]).double()
    ours = getattr(nn, cls)(I, H, bias=bias, **CELLS[name]).double()
    ours.load_state_dict({k: backprop.tensor(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(7)
    lead = () if unbatched else (B,)
    bx, tx = _leaf(oracle, rng.standard_normal(lead + (I,)))
    states = [_leaf(oracle, rng.standard_normal(lead + (H,)))
              for _ in range(2 if cls == "LSTMCell" else 1)] if with_hx else []
    bs, ts = [s[0] for s in states], [s[1] for s in states]
    if cls == "LSTMCell":
        bout = ours(bx, tuple(bs)) if with_hx else ours(bx)
        tout = theirs(tx, tuple(ts)) if with_hx else theirs(tx)
    else:
        bout = (ours(bx, bs[0]) if with_hx else ours(bx),)
        tout = (theirs(tx, ts[0]) if with_hx else theirs(tx),)
    weights = [rng.standard_normal(tuple(t.shape)) for t in tout]
    for b, t in zip(bout, tout):
        assert tuple(b.shape) == tuple(t.shape)
        np.testing.assert_allclose(b.detach().numpy(), t.detach().numpy(), atol=1e-12)
    sum((b * backprop.tensor(w)).sum() for b, w in zip(bout, weights)).backward()
    sum((t * oracle.tensor(w)).sum() for t, w in zip(tout, weights)).backward()
    np.testing.assert_allclose(bx.grad.numpy(), tx.grad.numpy(), atol=1e-12)
    for b, t in states:
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), atol=1e-12)
    for pname, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, pname).grad.numpy(), p.grad.numpy(),
                                   atol=1e-12, err_msg=pname)


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_gradcheck(cls):
    cell = getattr(nn, cls)(3, 2).double()
    x = backprop.randn(4, 3, dtype=backprop.float64, requires_grad=True)
    h = backprop.randn(4, 2, dtype=backprop.float64, requires_grad=True)
    params = list(cell.parameters())
    if cls == "LSTMCell":
        c = backprop.randn(4, 2, dtype=backprop.float64, requires_grad=True)

        def fn(x, h, c, *ps):
            hn, cn = cell(x, (h, c))
            return hn * 2.0 + cn
        assert gradcheck(fn, (x, h, c, *params))
    else:
        assert gradcheck(lambda x, h, *ps: cell(x, h), (x, h, *params))


def test_cell_loop_equals_layer():
    """Stepping an LSTMCell over a sequence gives what nn.LSTM gives from the same weights."""
    layer, cell = nn.LSTM(I, H).double(), nn.LSTMCell(I, H).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = backprop.randn(T, B, I, dtype=backprop.float64)
    out, (h_n, c_n) = layer(x)
    h = c = backprop.zeros(B, H, dtype=backprop.float64)
    for t in range(T):
        h, c = cell(x[t], (h, c))
        np.testing.assert_allclose(h.detach().numpy(), out[t].detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(c.detach().numpy(), c_n[0].detach().numpy(), atol=1e-13)


# -- parameters, init, state dicts ----------------------------------------------------------------
def test_parameter_names_shapes_and_order_match_torch(oracle):
    for cls, kw in [("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
                    ("GRU", dict(num_layers=2, bias=False)), ("RNN", dict(bidirectional=True)),
                    ("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", dict(bias=False))]:
        theirs, ours = getattr(oracle.nn, cls)(5, 3, **kw), getattr(nn, cls)(5, 3, **kw)
        assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in theirs.named_parameters()], cls
        assert repr(ours) == repr(theirs)


def test_init_is_uniform_within_one_over_sqrt_hidden():
    lstm = nn.LSTM(10, 25, num_layers=2, proj_size=5)
    values = np.concatenate([p.detach().numpy().ravel() for p in lstm.parameters()])
    bound = 1 / np.sqrt(25)
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound  # spread over the range
    assert abs(values.mean()) < 0.01
    assert lstm.weight_ih_l0.dtype == backprop.float32


@pytest.mark.parametrize("writer", ["save", "save_file"])
def test_torch_state_dict_loads_through_safetensors(oracle, tmp_path, writer):
    """A torch state dict written as a safetensors file (backprop.save, or the plain format
    of serialization.save_file / the safetensors package) loads into the backprop module."""
    theirs = oracle.nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2).double()
    path = tmp_path / "lstm.safetensors"
    arrays = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    if writer == "save":
        backprop.save(arrays, path)
        loaded = backprop.load(path)
    else:
        serialization.save_file(arrays, path)
        loaded = serialization.load_file(path)
    ours = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2).double()
    result = ours.load_state_dict({k: backprop.tensor(np.asarray(
        v.numpy() if isinstance(v, backprop.Tensor) else v)) for k, v in loaded.items()})
    assert not result.missing_keys and not result.unexpected_keys
    x = np.random.default_rng(8).standard_normal((T, B, I))
    out, (h, c) = ours(backprop.tensor(x))
    tout, (th, tc) = theirs(oracle.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(h.detach().numpy(), th.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c.detach().numpy(), tc.detach().numpy(), atol=1e-12)


def test_float32_is_the_default_and_close_to_torch(oracle):
    theirs = oracle.nn.GRU(I, H, num_layers=2)
    ours = nn.GRU(I, H, num_layers=2)
    ours.load_state_dict({k: backprop.tensor(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(9).standard_normal((T, B, I)).astype(np.float32)
    out, h = ours(backprop.tensor(x))
    assert out.dtype == backprop.float32 and h.dtype == backprop.float32
    np.testing.assert_allclose(out.detach().numpy(), theirs(oracle.tensor(x))[0].detach().numpy(),
                               atol=1e-5)


# -- dropout between layers ------------------------------------------------------------------
def test_dropout_between_layers_in_training_only():
    lstm = nn.LSTM(I, H, num_layers=2, dropout=0.5).double()
    x = backprop.randn(T, B, I, dtype=backprop.float64)
    lstm.eval()
    a, _ = lstm(x)
    b, _ = lstm(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    lstm.train()
    c, (h, _) = lstm(x)
    d, _ = lstm(x)
    assert tuple(c.shape) == (T, B, H) and tuple(h.shape) == (2, B, H)
    assert not np.allclose(c.detach().numpy(), d.detach().numpy())  # masks differ per call
    assert not np.allclose(c.detach().numpy(), a.detach().numpy())


def test_dropout_statistics_between_layers():
    """Layer 2 sees layer 1's output with about half its elements zeroed, the rest doubled."""
    rnn = nn.RNN(8, 400, num_layers=2, dropout=0.5, nonlinearity="relu").double()
    layer1 = nn.RNN(8, 400, nonlinearity="relu").double()
    layer1.load_state_dict({k: v for k, v in rnn.state_dict().items() if k.endswith("_l0")})
    # layer 2 with W_ih = I and nothing else: relu(dropout(layer 1's output ≥ 0)) is
    # exactly what came through the dropout
    with backprop.no_grad():
        for name, p in rnn.named_parameters():
            if name.endswith("_l1"):
                p.zero_()
        rnn.weight_ih_l1.copy_(backprop.eye(400, dtype=backprop.float64))
        x = backprop.randn(1, 50, 8, dtype=backprop.float64)
        out, _ = rnn(x)
        ref, _ = layer1(x)
    positive = ref.numpy() > 0
    seen, expected = out.numpy()[positive], ref.numpy()[positive]
    kept = seen != 0
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_allclose(seen[kept], 2 * expected[kept], rtol=1e-12)


def test_dropout_warns_with_one_layer():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(2, 3, dropout=0.2)


# -- errors -------------------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(2, 3, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size"):
        nn.GRU(2, 0)
    with pytest.raises(ValueError, match="proj_size"):
        nn.LSTM(2, 3, proj_size=3)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNNCell(2, 3, nonlinearity="gelu")
    lstm = nn.LSTM(2, 3, num_layers=2)
    with pytest.raises(ShapeError, match="input_size. Expected 2, got 4"):
        lstm(backprop.randn(5, 1, 4))
    with pytest.raises(ValueError, match="2D or 3D"):
        lstm(backprop.randn(5, 1, 1, 2))
    with pytest.raises(ShapeError, match=r"hidden\[0\] size \(2, 1, 3\)"):
        lstm(backprop.randn(5, 1, 2), (backprop.zeros(1, 1, 3), backprop.zeros(2, 1, 3)))
    with pytest.raises(ShapeError, match="3-D"):
        lstm(backprop.randn(5, 1, 2), (backprop.zeros(2, 3), backprop.zeros(2, 3)))
    with pytest.raises(TypeError, match="tuple"):
        lstm(backprop.randn(5, 1, 2), backprop.zeros(2, 1, 3))
    with pytest.raises(DTypeError, match="LSTM: input must have the type"):
        lstm(backprop.randn(5, 1, 2, dtype=backprop.float64))
    cell = nn.GRUCell(2, 3)
    with pytest.raises(ShapeError, match="GRUCell: input has inconsistent input_size"):
        cell(backprop.randn(4, 5))
    with pytest.raises(ShapeError, match="GRUCell: hidden state has shape"):
        cell(backprop.randn(4, 2), backprop.zeros(4, 2))


def test_backward_reaches_parameters_of_a_long_sequence():
    """500 steps are one op per layer: no recursion limit, gradients finite."""
    lstm = nn.LSTM(2, 3, num_layers=2)
    out, _ = lstm(backprop.randn(500, 2, 2))
    out.sum().backward()
    for p in lstm.parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all()


def test_warnings_free_forward():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.LSTM(2, 3)(backprop.randn(3, 2, 2))
