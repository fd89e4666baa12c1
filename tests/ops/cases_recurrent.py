"""Catalogue cases for the fused recurrent ops (recurrent.py): LSTM, GRU and RNN over a
whole (packed) sequence, one layer and one direction.

The torch side is a plain step-by-step reference written with torch ops, so values
and every gradient (of xp, the initial states and the weights) are compared with
torch's autograd. Cases cover full batches and packed batches (shrinking
``batch_sizes``), forward and reverse, given and omitted initial states, the LSTM
projection and the GRU without bias.
"""
import numpy as np

from backprop.ops.recurrent import GRUSequence, LSTMSequence, RNNSequence
from tests.ops.catalogue import OpCase

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

H, P = 3, 2  # hidden size; the LSTM projection size
FULL = (2, 2, 2)  # batch_sizes of a full batch of 2 over 3 steps
PACKED = (3, 2, 2, 1)  # lengths 4, 3, 1: as pack_padded_sequence makes them


def _order(batch_sizes, reverse):
    starts = np.concatenate([[0], np.cumsum(batch_sizes)[:-1]])
    steps = list(zip(starts.tolist(), batch_sizes))
    return steps[::-1] if reverse else steps


def _t_lstm(xp, h0, c0, w_hh, w_hr, batch_sizes, reverse):
    """Step-by-step torch reference of LSTMSequence: [h', c'] of every row."""
    batch, hidden = batch_sizes[0], w_hh.shape[0] // 4
    h = h0 if h0 is not None else torch.zeros(batch, w_hh.shape[1], dtype=xp.dtype)
    c = c0 if c0 is not None else torch.zeros(batch, hidden, dtype=xp.dtype)
    rows = {}
    for s, b in _order(batch_sizes, reverse):
        i, f, g, o = (xp[s:s + b] + h[:b] @ w_hh.T).chunk(4, 1)
        cn = torch.sigmoid(f) * c[:b] + torch.sigmoid(i) * torch.tanh(g)
        hn = torch.sigmoid(o) * torch.tanh(cn)
        if w_hr is not None:
            hn = hn @ w_hr.T
        rows[s] = torch.cat([hn, cn], 1)
        h, c = torch.cat([hn, h[b:]]), torch.cat([cn, c[b:]])
    return torch.cat([rows[s] for s in sorted(rows)])


def _t_gru(xp, h0, w_hh, b_hh, batch_sizes, reverse):
    batch, hidden = batch_sizes[0], w_hh.shape[1]
    h = h0 if h0 is not None else torch.zeros(batch, hidden, dtype=xp.dtype)
    rows = {}
    for s, b in _order(batch_sizes, reverse):
        gh = h[:b] @ w_hh.T + (b_hh if b_hh is not None else 0)
        xr, xz, xn = xp[s:s + b].chunk(3, 1)
        hr, hz, hn_ = gh.chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn_)
        hn = (1 - z) * n + z * h[:b]
        rows[s] = hn
        h = torch.cat([hn, h[b:]])
    return torch.cat([rows[s] for s in sorted(rows)])


def _t_rnn(xp, h0, w_hh, batch_sizes, reverse, nonlinearity):
    batch, hidden = batch_sizes[0], w_hh.shape[1]
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    h = h0 if h0 is not None else torch.zeros(batch, hidden, dtype=xp.dtype)
    rows = {}
    for s, b in _order(batch_sizes, reverse):
        hn = act(xp[s:s + b] + h[:b] @ w_hh.T)
        rows[s] = hn
        h = torch.cat([hn, h[b:]])
    return torch.cat([rows[s] for s in sorted(rows)])


def _lstm(name, batch_sizes, reverse=False, states=True, proj=False):
    def make(r):
        n, b = sum(batch_sizes), batch_sizes[0]
        p = P if proj else H
        return [r.standard_normal((n, 4 * H)),
                r.standard_normal((b, p)) if states else None,
                r.standard_normal((b, H)) if states else None,
                r.standard_normal((4 * H, p)) * 0.5,
                r.standard_normal((p, H)) * 0.5 if proj else None,
                batch_sizes, reverse]
    return OpCase(f"lstm_sequence/{name}", LSTMSequence.apply, make, _t_lstm,
                  covers=("LSTMSequence",))


def _gru(name, batch_sizes, reverse=False, states=True, bias=True):
    def make(r):
        n, b = sum(batch_sizes), batch_sizes[0]
        return [r.standard_normal((n, 3 * H)),
                r.standard_normal((b, H)) if states else None,
                r.standard_normal((3 * H, H)) * 0.5,
                r.standard_normal(3 * H) if bias else None,
                batch_sizes, reverse]
    return OpCase(f"gru_sequence/{name}", GRUSequence.apply, make, _t_gru,
                  covers=("GRUSequence",))


def _rnn(name, batch_sizes, nonlinearity, reverse=False, states=True):
    def make(r):
        n, b = sum(batch_sizes), batch_sizes[0]
        xp = r.standard_normal((n, H))
        if nonlinearity == "relu":  # keep pre-activations clear of relu's kink at 0
            xp = np.where(np.abs(xp) < 0.2, np.sign(xp) * 0.2 + 0.01, xp) * 2
        return [xp, r.standard_normal((b, H)) * 0.3 if states else None,
                r.standard_normal((H, H)) * 0.2, batch_sizes, reverse, nonlinearity]
    return OpCase(f"rnn_sequence/{name}", RNNSequence.apply, make, _t_rnn,
                  covers=("RNNSequence",))


CASES = [
    _lstm("full", FULL),
    _lstm("full/reverse", FULL, reverse=True),
    _lstm("packed", PACKED),
    _lstm("packed/reverse", PACKED, reverse=True),
    _lstm("packed/zero-states", PACKED, states=False),
    _lstm("projection", PACKED, proj=True),
    _lstm("projection/reverse", FULL, reverse=True, proj=True),
    _gru("full", FULL),
    _gru("packed/reverse", PACKED, reverse=True),
    _gru("packed/no-bias/zero-state", PACKED, states=False, bias=False),
    _rnn("tanh/full", FULL, "tanh"),
    _rnn("tanh/packed/reverse", PACKED, "tanh", reverse=True),
    _rnn("relu/packed", PACKED, "relu"),
    _rnn("relu/full/reverse/zero-state", FULL, "relu", reverse=True, states=False),
]
