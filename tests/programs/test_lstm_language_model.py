"""A character-level LSTM language model, written once as a PyTorch user writes it and run on
backprop and on PyTorch from the same weights and the same batches.

Embedding -> LSTM (2 layers, batch_first) -> Linear; CrossEntropyLoss, gradients clipped with
clip_grad_norm_, Adam. In float64 the losses must agree step for step (to 1e-9: the only
differences are rounding in a different order), and the loss must fall clearly. A second run
feeds the same model packed variable-length batches.
"""
from __future__ import annotations

import numpy as np

import backprop
from tests.programs.char_models import char_batches, twin_models

SEQ, BATCH, STEPS = 16, 8, 40


def build(torch, vocab_size: int):
    """The model, written against whichever library is passed in as ``torch``."""
    nn = torch.nn

    class CharLSTM(nn.Module):
        def __init__(self, vocab_size, embed=12, hidden=24):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, embed)
            self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
            self.head = nn.Linear(hidden, vocab_size)

        def forward(self, idx, state=None):
            out, state = self.lstm(self.embed(idx), state)
            return self.head(out), state

    return CharLSTM(vocab_size)


def train(torch, model, batches):
    """Adam with clipped gradients for len(batches) steps; the loss of each step."""
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for xb, yb in batches:
        x, y = torch.tensor(xb), torch.tensor(yb)
        logits, _ = model(x)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        losses.append(clipped_step(torch, model, opt, loss))
    return losses


def clipped_step(torch, model, opt, loss) -> float:
    """Backward, clip the gradients' norm to 1, update; the loss as a number."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    return loss.item()


def test_lstm_language_model_trains_the_same_on_backprop_and_torch(oracle):
    torch = oracle
    chars, batches = char_batches(SEQ, BATCH, STEPS)
    theirs, ours = twin_models(torch, build, len(chars))
    our_losses = train(backprop, ours, batches)
    their_losses = train(torch, theirs, batches)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-9)
    assert np.mean(our_losses[-5:]) < 0.75 * our_losses[0]  # it learns
    for name, p in theirs.named_parameters():  # and ends with the same weights
        np.testing.assert_allclose(ours.get_parameter(name).detach().numpy(),
                                   p.detach().numpy(), rtol=1e-7, atol=1e-9, err_msg=name)


def train_packed(torch, model, batches, lengths):
    """The same loop on packed batches of variable lengths; the loss ignores the padding."""
    R = torch.nn.utils.rnn
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for xb, yb in batches:
        x, y = torch.tensor(xb), torch.tensor(yb)
        packed = R.pack_padded_sequence(model.embed(x), lengths, batch_first=True,
                                        enforce_sorted=False)
        out, _ = model.lstm(packed)
        out, _ = R.pad_packed_sequence(out, batch_first=True, total_length=SEQ)
        logits = model.head(out)
        mask = torch.tensor(np.arange(SEQ)[None, :] < np.array(lengths)[:, None])
        targets = torch.where(mask, y, torch.full_like(y, -100))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 targets.reshape(-1), ignore_index=-100)
        losses.append(clipped_step(torch, model, opt, loss))
    return losses


def test_packed_lstm_language_model_trains_the_same(oracle):
    torch = oracle
    chars, batches = char_batches(SEQ, BATCH, STEPS)
    theirs, ours = twin_models(torch, build, len(chars))
    lengths = [16, 5, 9, 16, 2, 12, 7, 11]
    our_losses = train_packed(backprop, ours, batches[:15], lengths)
    their_losses = train_packed(torch, theirs, batches[:15], lengths)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-9)
    assert our_losses[-1] < 0.9 * our_losses[0]
