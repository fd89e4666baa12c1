"""A small GPT-style character model, written once as a PyTorch user writes it and run on
backprop and on PyTorch from the same weights and batches.

Token + learned position embeddings -> TransformerEncoder under a causal mask -> LayerNorm
-> Linear; trained with AdamW (dropout 0), then sampled greedily. The losses must agree step
for step, fall, and the two greedy samples must be the same characters.
"""
from __future__ import annotations

import numpy as np

import backprop
from tests.programs.char_models import char_batches, twin_models

BLOCK, BATCH, STEPS = 16, 8, 30


def build(torch, vocab_size: int):
    """The model, written against whichever library is passed in as ``torch``."""
    nn = torch.nn

    class CharGPT(nn.Module):
        def __init__(self, vocab_size, d_model=16, nhead=2, num_layers=2, block=BLOCK):
            super().__init__()
            self.tok = nn.Embedding(vocab_size, d_model)
            self.pos = nn.Embedding(block, d_model)
            layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=4 * d_model,
                                               dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
            self.ln_f = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab_size)

        def forward(self, idx):
            t = idx.shape[1]
            x = self.tok(idx) + self.pos(torch.arange(t))
            mask = nn.Transformer.generate_square_subsequent_mask(t, dtype=x.dtype)
            x = self.blocks(x, mask=mask, is_causal=True)
            return self.head(self.ln_f(x))

    return CharGPT(vocab_size)


def train_and_sample(torch, model, batches, prompt):
    """AdamW for len(batches) steps; then 20 greedy characters after ``prompt``."""
    F = torch.nn.functional
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    losses = []
    for xb, yb in batches:
        x, y = torch.tensor(xb), torch.tensor(yb)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    idx = torch.tensor(np.array([prompt]))
    with torch.no_grad():
        for _ in range(20):
            logits = model(idx[:, -BLOCK:])
            nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    return losses, idx[0].tolist()[len(prompt):]


def test_char_transformer_trains_the_same_on_backprop_and_torch(oracle):
    torch = oracle
    chars, batches = char_batches(BLOCK, BATCH, STEPS)
    prompt = [chars.index(c) for c in "the "]
    theirs, ours = twin_models(torch, build, len(chars))

    our_losses, our_sample = train_and_sample(backprop, ours, batches, prompt)
    their_losses, their_sample = train_and_sample(torch, theirs, batches, prompt)

    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-6)
    assert np.mean(our_losses[-5:]) < 0.8 * our_losses[0]  # it learns
    assert our_sample == their_sample
    text = "".join(chars[i] for i in our_sample)
    assert len(text) == 20
