"""Small PyTorch-tutorial programs, run on backprop and on PyTorch from the same weights and
batches: a convolutional autoencoder (Conv2d down, ConvTranspose2d up), a Conv1d sequence
classifier and a DCGAN's alternating updates. Each is written once, against whichever library
it is handed, and the losses must agree step for step (float64)."""
from __future__ import annotations

import numpy as np
import pytest

import backprop

STEPS = 20


def _images(rng, n=16, size=16):
    """Synthetic 'digits': a bright rectangle and a bar on a dark, noisy background."""
    x = rng.uniform(0.0, 0.1, (n, 1, size, size))
    for img in x:
        r, c = rng.integers(0, size - 6, 2)
        h, w = rng.integers(3, 7, 2)
        img[0, r:r + h, c:c + w] = rng.uniform(0.7, 1.0)
        img[0, rng.integers(0, size), :] = 0.5
    return x


def _sequences(rng, n=24, length=32):
    """Three classes of noisy waves: slow sine, fast sine, square wave."""
    labels = rng.integers(0, 3, n)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    slow, fast = np.sin(0.3 * t + phase), np.sin(1.2 * t + phase)
    square = np.sign(np.sin(0.5 * t + phase))
    x = np.choose(labels[:, None], [slow, fast, square]) + rng.normal(0, 0.3, (n, length))
    return x[:, None, :], labels


def _autoencoder(nn):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),          # 16 -> 8
        nn.Conv2d(8, 16, 3, stride=2, padding=1),                     # 8 -> 4
        nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # -> 8
        nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1),  # -> 16
        nn.Sigmoid(),
    )


def _classifier(nn):
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 16, 3, padding="same"), nn.GroupNorm(4, 16), nn.ReLU(),
        nn.AdaptiveAvgPool1d(4), nn.Flatten(), nn.Dropout(0.0), nn.Linear(64, 3),
    )


def train(lib, build, state, batches, loss_name):
    """The tutorial loop, for either library: same weights in, losses out."""
    model = build(lib.nn).double()
    model.load_state_dict({k: lib.tensor(v) for k, v in state.items()})
    opt = lib.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = getattr(lib.nn, loss_name)()
    losses = []
    model.train()
    for inputs, targets in batches:
        x = lib.tensor(inputs)
        y = x if targets is None else lib.tensor(targets)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    params = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return np.array(losses), params


def _initial_state(build):
    backprop.manual_seed(0)
    return {k: v.numpy().astype(np.float64) for k, v in build(backprop.nn).state_dict().items()}


def _compare(oracle, build, batches, loss_name):
    state = _initial_state(build)
    ours, ours_params = train(backprop, build, state, batches, loss_name)
    theirs, theirs_params = train(oracle, build, state, batches, loss_name)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-10)
    for k in theirs_params:
        np.testing.assert_allclose(ours_params[k], theirs_params[k], rtol=1e-6, atol=1e-8,
                                   err_msg=k)
    return ours


def test_conv_autoencoder_matches_torch(oracle):
    rng = np.random.default_rng(0)
    batches = [(_images(rng), None) for _ in range(STEPS)]
    losses = _compare(oracle, _autoencoder, batches, "MSELoss")
    assert losses[-1] < 0.6 * losses[0]   # it learns, not merely agrees


def test_conv1d_classifier_matches_torch(oracle):
    rng = np.random.default_rng(1)
    batches = [_sequences(rng) for _ in range(STEPS)]
    losses = _compare(oracle, _classifier, batches, "CrossEntropyLoss")
    assert losses[-5:].mean() < 0.7 * losses[:5].mean()


def _gan(nn):
    """A DCGAN pair at 16x16: the generator upsamples noise with ConvTranspose2d + BatchNorm2d."""
    generator = nn.Sequential(
        nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(True),  # 4
        nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(True),   # 8
        nn.ConvTranspose2d(8, 1, 4, 2, 1, bias=False), nn.Tanh())                           # 16
    discriminator = nn.Sequential(
        nn.Conv2d(1, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16),
        nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(16, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    return nn.ModuleDict({"G": generator, "D": discriminator})


def train_gan(lib, state, batches):
    """The DCGAN tutorial's alternating updates, for either library."""
    nets = _gan(lib.nn).double()
    nets.load_state_dict({k: lib.tensor(v) for k, v in state.items()})
    G, D = nets["G"], nets["D"]
    opt_d = lib.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_g = lib.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    bce = lib.nn.BCELoss()
    losses = []
    for real, noise in batches:
        real, noise = lib.tensor(real), lib.tensor(noise)
        ones = lib.full((real.size(0),), 1.0, dtype=lib.float64)
        D.zero_grad()
        err_real = bce(D(real).view(-1), ones)
        err_real.backward()
        fake = G(noise)
        err_fake = bce(D(fake.detach()).view(-1), lib.zeros_like(ones))
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        err_g = bce(D(fake).view(-1), ones)
        err_g.backward()
        opt_g.step()
        losses.append((err_real.item() + err_fake.item(), err_g.item()))
    return np.array(losses)


def test_dcgan_steps_match_torch(oracle):
    rng = np.random.default_rng(2)
    batches = [(_images(rng, 8) * 2 - 1, rng.standard_normal((8, 8, 1, 1))) for _ in range(6)]
    state = _initial_state(_gan)
    np.testing.assert_allclose(train_gan(backprop, state, batches),
                               train_gan(oracle, state, batches), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("build,shape", [(_autoencoder, (2, 1, 16, 16)),
                                         (_classifier, (2, 1, 32))])
def test_programs_run_without_torch(build, shape):
    backprop.manual_seed(0)
    model = build(backprop.nn)
    out = model(backprop.randn(*shape))
    assert out.shape == ((2, 1, 16, 16) if len(shape) == 4 else (2, 3))
