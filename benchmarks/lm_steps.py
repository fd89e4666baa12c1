"""Two language-model training steps against PyTorch CPU: an LSTM LM and a small transformer.

    python benchmarks/lm_steps.py [--threads N] [--quick]   # pin it: taskset -c 0 python ...

Both read (batch 32, 64 tokens) of a 1,000-word vocabulary and predict the next token
with ``cross_entropy`` over every position, then take an Adam step:

- ``lstm``: Embedding(1000, 128) - LSTM(128, 256) - Linear(256, 1000);
- ``transformer``: Embedding(1000, 128) + a learned position embedding -
  TransformerEncoder of 2 layers (d_model 128, 4 heads, feed-forward 256, dropout 0,
  batch_first, causal mask) - Linear(128, 1000).

The same module code runs on either engine (backprop's names are PyTorch's), from the
same weights; timings are medians of interleaved repeats in one process at the same
thread count, and the ratio is backprop / PyTorch (below 1: backprop is faster). Issue
15 asks for these numbers with no target yet.
"""
from __future__ import annotations

import os
import sys

from _timing import interleaved, load_torch, parser, set_threads

p = parser(__doc__.split("\n")[0], threads=1)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--tokens", type=int, default=64)
ARGS = p.parse_args()
set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402

torch = load_torch(ARGS.threads)
REPEATS = ARGS.repeats or (3 if ARGS.quick else 15)
VOCAB, EMBED, HIDDEN = 1000, 128, 256


def lstm_lm(lib):
    nn = lib.nn

    class LSTMLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, EMBED)
            self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
            self.out = nn.Linear(HIDDEN, VOCAB)

        def forward(self, tokens):
            h, _ = self.lstm(self.embed(tokens))
            return self.out(h)

    return LSTMLM()


def transformer_lm(lib):
    nn = lib.nn

    class TinyTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, EMBED)
            self.pos = nn.Embedding(ARGS.tokens, EMBED)
            layer = nn.TransformerEncoderLayer(EMBED, 4, dim_feedforward=HIDDEN, dropout=0.0,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2)
            self.out = nn.Linear(EMBED, VOCAB)

        def forward(self, tokens):
            n = tokens.shape[1]
            x = self.embed(tokens) + self.pos(lib.arange(n))
            mask = nn.Transformer.generate_square_subsequent_mask(n)
            return self.out(self.encoder(x, mask=mask, is_causal=True))

    return TinyTransformer()


MODELS = {"lstm": lstm_lm, "transformer": transformer_lm}


def _step(lib, model, tokens, targets):
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    F = lib.nn.functional

    def step():
        opt.zero_grad()
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        opt.step()
    return step


def bench(name: str) -> dict:
    rng = np.random.default_rng(0)
    data = rng.integers(0, VOCAB, size=(ARGS.batch, ARGS.tokens + 1))
    bp.manual_seed(0)
    ours = MODELS[name](bp)
    fns = {"backprop": _step(bp, ours, bp.tensor(data[:, :-1]), bp.tensor(data[:, 1:]))}
    if torch is not None:
        theirs = MODELS[name](torch)
        theirs.load_state_dict({k: torch.tensor(v.numpy())
                                for k, v in ours.state_dict().items()})
        fns["torch"] = _step(torch, theirs, torch.tensor(data[:, :-1]),
                             torch.tensor(data[:, 1:]))
    return interleaved(fns, REPEATS, warmup=2)


def main() -> None:
    print(f"language-model training steps (forward + backward + Adam): batch {ARGS.batch}, "
          f"{ARGS.tokens} tokens, vocabulary {VOCAB}, float32, {ARGS.threads} thread(s), "
          f"median of {REPEATS}")
    print(f"{'model':<12} {'backprop ms':>12} {'torch ms':>10} {'ratio':>7}")
    for name in MODELS:
        t = bench(name)
        ours = t["backprop"] * 1e3
        if "torch" in t:
            theirs = t["torch"] * 1e3
            print(f"{name:<12} {ours:12.2f} {theirs:10.2f} {ours / theirs:7.2f}")
        else:
            print(f"{name:<12} {ours:12.2f} {'-':>10} {'-':>7}")


if __name__ == "__main__":
    main()
