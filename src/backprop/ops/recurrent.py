"""Recurrent layers as fused primitives: one op runs a whole sequence through an RNN,
LSTM or GRU cell (one layer, one direction), with backpropagation through time as its
backward.

Why one op per sequence rather than a graph of small ops per time step: a 100-step LSTM
would otherwise record several hundred graph nodes, and the Python cost of each would
dominate the arithmetic. Here the time loop runs in NumPy inside ``forward`` and
``backward``; each step costs one matrix product with the recurrent weights plus a few
element-wise calls. The input projection ``x @ W_ihᵀ + b`` is *not* part of these ops:
the caller computes it for all steps in one matrix product (``linear``) and passes it in
as ``xp``, one row per (step, sequence).

Layout: a sequence batch is given in packed form, as ``torch.nn.utils.rnn`` stores it.
``batch_sizes[t]`` sequences are active at step t (non-increasing, the longest
sequences first) and their rows of ``xp`` are the next ``batch_sizes[t]`` rows. A plain
(T, B) batch is the special case ``batch_sizes = (B,) * T`` with ``xp`` reshaped to
(T·B, G). A sequence that has ended keeps its state, so the state left in row b after
the loop is sequence b's final state; in reverse the steps run from the last to the
first, and a sequence starts from its initial state at its own last step.

Each op returns one array, the state after every step, row for row with ``xp``: h for
the RNN and GRU, and h and c side by side, (N, P + H), for the LSTM (the final
states are rows of it, which the caller picks out).

Sigmoid is computed as ½·tanh(x/2) + ½: exact maths, no overflow, and three calls.
"""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function

__all__: list = []


def _steps(batch_sizes, reverse: bool) -> list:
    """(first row, number of rows) of each step, in the order the steps are run."""
    steps, start = [], 0
    for b in batch_sizes:
        b = int(b)
        steps.append((start, b))
        start += b
    return steps[::-1] if reverse else steps


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """σ(a) in place: ½·tanh(a/2) + ½."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def _state(s0, rows: int, size: int, dtype) -> np.ndarray:
    """A writable copy of the initial state, or zeros when none is given."""
    return np.zeros((rows, size), dtype) if s0 is None else np.array(s0, dtype=dtype)


class LSTMSequence(Function):
    """LSTM over a packed sequence (one layer, one direction).

    Per step, with the gates in PyTorch's order i, f, g, o of ``xp + h W_hhᵀ``:
    i, f, o = σ(·), g = tanh(·);  c' = f·c + i·g;  h' = (o·tanh(c')) W_hrᵀ  (W_hr: the
    projection, when given, else the identity). Backward runs the steps in reverse:
    dc += dĥ·o·(1 - tanh²c'), d(i, f, g, o) from dc and dĥ, dh = d(gates) W_hh,
    dc ← dc·f; dW_hh = Σ d(gates)ᵀ h and dW_hr = Σ dh'ᵀ ĥ over all steps at the end.

    Args (forward): xp (N, 4H), h0 (B, P) or None (zeros), c0 (B, H) or None,
    w_hh (4H, P), w_hr (P, H) or None, batch_sizes (T ints), reverse (bool).
    Returns (N, P + H): [h', c'] of each row.
    """

    @staticmethod
    def forward(ctx, xp, h0, c0, w_hh, w_hr, batch_sizes, reverse):
        n, hidden = xp.shape[0], xp.shape[1] // 4
        p = w_hh.shape[1]
        dtype = xp.dtype
        steps = _steps(batch_sizes, reverse)
        batch = steps[-1][1] if reverse else steps[0][1] if steps else 0
        h, c = _state(h0, batch, p, dtype), _state(c0, batch, hidden, dtype)
        # NOTE: all four gates in one contiguous tanh: σ(x) = ½·tanh(x/2) + ½, so the
        # pre-activations of i, f, o are halved (folded into xp and W_hh once, here) and
        # the tanh values mapped back with one multiply-add by per-column constants.
        pre, alpha, beta = _gate_constants(hidden, dtype)
        xp_s = xp * pre
        # NOTE: a C-contiguous copy of W_hhᵀ: OpenBLAS multiplies by it much faster (~1.7x
        # at 32x128x512) than by the transposed view.
        w_t = np.ascontiguousarray(w_hh.T * pre)
        acts = np.empty((n, 4 * hidden), dtype)  # the gates i, f, g, o
        tanh_c = np.empty((n, hidden), dtype)
        # The state entering each row's step; it is the running state too: each step
        # writes its result straight into the next step's rows (no separate copy).
        h_prev, c_prev = np.empty((n, p), dtype), np.empty((n, hidden), dtype)
        out = np.empty((n, p + hidden), dtype)
        g0, g1 = 2 * hidden, 3 * hidden
        if steps:
            s, b = steps[0]
            h_prev[s:s + b] = h[:b]
            c_prev[s:s + b] = c[:b]
        ig = np.empty((batch, hidden), dtype)
        for k, (s, b) in enumerate(steps):
            e = s + b
            hb, cb = h_prev[s:e], c_prev[s:e]
            a = acts[s:e]
            np.matmul(hb, w_t, out=a)
            a += xp_s[s:e]
            np.tanh(a, out=a)
            a *= alpha
            a += beta
            cn = out[s:e, p:]
            np.multiply(a[:, hidden:g0], cb, out=cn)  # f·c
            np.multiply(a[:, :hidden], a[:, g0:g1], out=ig[:b])
            cn += ig[:b]  # + i·g
            tc = tanh_c[s:e]
            np.tanh(cn, out=tc)
            if w_hr is None:
                hn = out[s:e, :p]
                np.multiply(a[:, g1:], tc, out=hn)
            else:
                hn = (a[:, g1:] * tc) @ w_hr.T
                out[s:e, :p] = hn
            if k + 1 < len(steps):
                s2, b2 = steps[k + 1]
                m = min(b, b2)  # sequences still running (forward), or all so far (reverse)
                h_prev[s2:s2 + m] = hn[:m]
                c_prev[s2:s2 + m] = cn[:m]
                if b2 > b:  # reverse: the sequences whose last step is the next one start
                    h_prev[s2 + b:s2 + b2] = h[b:b2]
                    c_prev[s2 + b:s2 + b2] = c[b:b2]
        if any(ctx.needs_input_grad[:5]):
            ctx.save_for_backward(acts, tanh_c, h_prev, c_prev, w_hh, w_hr)
            ctx.steps = steps
            ctx.batch = batch
        return out

    @staticmethod
    def backward(ctx, grad_output):
        acts, tanh_c, h_prev, c_prev, w_hh, w_hr = ctx.saved_tensors
        n, hidden = acts.shape[0], acts.shape[1] // 4
        p = w_hh.shape[1]
        g0, g1 = 2 * hidden, 3 * hidden
        dtype = acts.dtype
        # Everything that does not depend on the incoming gradient, for all steps at once:
        # d(gate)/d(pre-activation) = σ(1 - σ), or 1 - g² for g; and o·(1 - tanh² c'),
        # the path from h' to c'.
        slope = 1.0 - acts
        slope *= acts
        g = acts[:, g0:g1]
        np.multiply(g, g, out=slope[:, g0:g1])
        np.subtract(1.0, slope[:, g0:g1], out=slope[:, g0:g1])
        o_dtanh = tanh_c * tanh_c
        np.subtract(1.0, o_dtanh, out=o_dtanh)
        o_dtanh *= acts[:, g1:]
        dh = np.zeros((ctx.batch, p), dtype)
        dc = np.zeros((ctx.batch, hidden), dtype)
        dxp = np.empty_like(acts)
        dh_all = np.empty((n, p), dtype) if w_hr is not None else None
        for s, b in reversed(ctx.steps):
            e = s + b
            dh_t = dh[:b] + grad_output[s:e, :p]
            dc_t = dc[:b] + grad_output[s:e, p:]
            if w_hr is not None:
                dh_all[s:e] = dh_t
                dh_t = dh_t @ w_hr  # to the gradient of ĥ = o·tanh(c')
            a = acts[s:e]
            dc_t += dh_t * o_dtanh[s:e]
            d = dxp[s:e]
            np.multiply(dc_t, a[:, g0:g1], out=d[:, :hidden])  # di = dc·g
            np.multiply(dc_t, c_prev[s:e], out=d[:, hidden:g0])  # df = dc·c
            np.multiply(dc_t, a[:, :hidden], out=d[:, g0:g1])  # dg = dc·i
            np.multiply(dh_t, tanh_c[s:e], out=d[:, g1:])  # do = dĥ·tanh c'
            d *= slope[s:e]
            np.matmul(d, w_hh, out=dh[:b])
            np.multiply(dc_t, a[:, hidden:g0], out=dc[:b])
        need = ctx.needs_input_grad
        d_hr = None
        if w_hr is not None and need[4]:
            d_hr = dh_all.T @ (acts[:, g1:] * tanh_c)
        return (dxp if need[0] else None, dh if need[1] else None, dc if need[2] else None,
                dxp.T @ h_prev if need[3] else None, d_hr, None, None)


def _gate_constants(hidden: int, dtype):
    """Per-column (pre-scale, alpha, beta) of the LSTM gates i, f, g, o: gate =
    alpha·tanh(pre-scale·x) + beta, i.e. σ for i, f, o and tanh for g."""
    pre = np.full(4 * hidden, 0.5, dtype)
    pre[2 * hidden:3 * hidden] = 1.0
    beta = np.full(4 * hidden, 0.5, dtype)
    beta[2 * hidden:3 * hidden] = 0.0
    return pre, pre, beta


class GRUSequence(Function):
    """GRU over a packed sequence (one layer, one direction).

    Per step, with gates in PyTorch's order r, z, n; xp = x W_ihᵀ + b_ih and
    gh = h W_hhᵀ + b_hh:  r, z = σ(xp + gh) (their parts),  n = tanh(xp_n + r·gh_n),
    h' = (1 - z)·n + z·h. Backward, in reverse: dz = dh'·(h - n)·z(1-z),
    dn = dh'·(1 - z)·(1 - n²), dr = dn·gh_n·r(1-r); d(xp) = (dr, dz, dn),
    d(gh) = (dr, dz, dn·r); dh = dh'·z + d(gh) W_hh; dW_hh = Σ d(gh)ᵀ h, db_hh = Σ d(gh).

    Args (forward): xp (N, 3H), h0 (B, H) or None, w_hh (3H, H), b_hh (3H,) or None,
    batch_sizes, reverse. Returns (N, H): h' of each row.
    """

    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, batch_sizes, reverse):
        n, hidden = xp.shape[0], xp.shape[1] // 3
        dtype = xp.dtype
        steps = _steps(batch_sizes, reverse)
        batch = steps[-1][1] if reverse else steps[0][1] if steps else 0
        h = _state(h0, batch, hidden, dtype)
        acts = np.empty((n, 3 * hidden), dtype)  # r, z, n
        gh_n = np.empty((n, hidden), dtype)
        h_prev = np.empty((n, hidden), dtype)
        out = np.empty((n, hidden), dtype)
        w_t, h2 = np.ascontiguousarray(w_hh.T), 2 * hidden  # (see LSTMSequence)
        for s, b in steps:
            e = s + b
            hb = h[:b]
            h_prev[s:e] = hb
            gh = hb @ w_t
            if b_hh is not None:
                gh += b_hh
            a = acts[s:e]
            np.add(xp[s:e, :h2], gh[:, :h2], out=a[:, :h2])
            _sigmoid_(a[:, :h2])
            gh_n[s:e] = gh[:, h2:]
            nn_ = a[:, h2:]
            np.multiply(a[:, :hidden], gh[:, h2:], out=nn_)
            nn_ += xp[s:e, h2:]
            np.tanh(nn_, out=nn_)
            hn = out[s:e]
            np.subtract(hb, nn_, out=hn)  # n + z·(h - n)
            hn *= a[:, hidden:h2]
            hn += nn_
            hb[...] = hn
        if any(ctx.needs_input_grad[:4]):
            ctx.save_for_backward(acts, gh_n, h_prev, w_hh)
            ctx.steps = steps
            ctx.batch = batch
        return out

    @staticmethod
    def backward(ctx, grad_output):
        acts, gh_n, h_prev, w_hh = ctx.saved_tensors
        hidden = acts.shape[1] // 3
        h2 = 2 * hidden
        dh = np.zeros((ctx.batch, hidden), acts.dtype)
        dxp = np.empty_like(acts)
        dgh = np.empty_like(acts)
        for s, b in reversed(ctx.steps):
            e = s + b
            dh_t = dh[:b] + grad_output[s:e]
            a = acts[s:e]
            r, z, nn_ = a[:, :hidden], a[:, hidden:h2], a[:, h2:]
            d, dg = dxp[s:e], dgh[s:e]
            dz = d[:, hidden:h2]
            np.subtract(h_prev[s:e], nn_, out=dz)
            dz *= dh_t
            dz *= z * (1.0 - z)
            dn = d[:, h2:]
            np.multiply(dh_t, 1.0 - z, out=dn)
            dn *= 1.0 - nn_ * nn_
            dr = d[:, :hidden]
            np.multiply(dn, gh_n[s:e], out=dr)
            dr *= r * (1.0 - r)
            dg[:, :h2] = d[:, :h2]
            np.multiply(dn, r, out=dg[:, h2:])
            dh_new = dg @ w_hh
            dh_new += dh_t * z
            dh[:b] = dh_new
        need = ctx.needs_input_grad
        return (dxp if need[0] else None, dh if need[1] else None,
                dgh.T @ h_prev if need[2] else None,
                dgh.sum(axis=0) if need[3] else None, None, None)


class RNNSequence(Function):
    """Elman RNN over a packed sequence (one layer, one direction).

    Per step h' = act(xp + h W_hhᵀ), act = tanh or relu. Backward, in reverse:
    da = dh'·(1 - h'²) (tanh) or dh'·[h' > 0] (relu);  dh = da W_hh;  dW_hh = Σ daᵀ h.

    Args (forward): xp (N, H), h0 (B, H) or None, w_hh (H, H), batch_sizes, reverse,
    nonlinearity ('tanh' or 'relu'). Returns (N, H): h' of each row.
    """

    @staticmethod
    def forward(ctx, xp, h0, w_hh, batch_sizes, reverse, nonlinearity):
        n, hidden = xp.shape
        steps = _steps(batch_sizes, reverse)
        batch = steps[-1][1] if reverse else steps[0][1] if steps else 0
        h = _state(h0, batch, hidden, xp.dtype)
        h_prev = np.empty((n, hidden), xp.dtype)
        out = np.empty((n, hidden), xp.dtype)
        w_t, tanh = np.ascontiguousarray(w_hh.T), nonlinearity == "tanh"  # (see LSTMSequence)
        for s, b in steps:
            e = s + b
            hb = h[:b]
            h_prev[s:e] = hb
            hn = out[s:e]
            np.matmul(hb, w_t, out=hn)
            hn += xp[s:e]
            if tanh:
                np.tanh(hn, out=hn)
            else:
                np.maximum(hn, 0, out=hn)
            hb[...] = hn
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(out, h_prev, w_hh)
            ctx.steps, ctx.batch, ctx.tanh = steps, batch, tanh
        return out

    @staticmethod
    def backward(ctx, grad_output):
        out, h_prev, w_hh = ctx.saved_tensors
        dh = np.zeros((ctx.batch, out.shape[1]), out.dtype)
        dxp = np.empty_like(out)
        for s, b in reversed(ctx.steps):
            e = s + b
            da = dxp[s:e]
            np.add(dh[:b], grad_output[s:e], out=da)
            y = out[s:e]
            # NOTE: relu's gradient at 0 is taken to be 0, as in torch.
            da *= (1.0 - y * y) if ctx.tanh else (y > 0)
            np.matmul(da, w_hh, out=dh[:b])
        need = ctx.needs_input_grad
        return (dxp if need[0] else None, dh if need[1] else None,
                dxp.T @ h_prev if need[2] else None, None, None, None)
