"""Small models and data sets shared by the training tests."""
import numpy as np

import backprop
from backprop import nn, optim
from backprop.data import DataLoader, TensorDataset, moons


def mlp(sizes=(2, 16, 2), dropout=0.0, dtype=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
            if dropout:
                layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers)
    return model.double() if dtype == "float64" else model


def moons_loaders(n=96, batch_size=16, shuffle=True, generator=None, dtype=None):
    X, y = moons(n_samples=n, noise=0.1, seed=0)
    if dtype == "float64":
        X = X.double()
    train = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle,
                       generator=generator)
    val = DataLoader(TensorDataset(X, y), batch_size=n)
    return train, val


def params_of(model) -> list:
    return [p.detach().numpy().copy() for p in model.parameters()]


def assert_same_params(a, b, exact=True, rtol=1e-12):
    pa = params_of(a) if not isinstance(a, list) else a
    pb = params_of(b) if not isinstance(b, list) else b
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14)


def adam(model, lr=0.01):
    return optim.Adam(model.parameters(), lr=lr)


def fresh(seed=0, **kw):
    backprop.manual_seed(seed)
    return mlp(**kw)
