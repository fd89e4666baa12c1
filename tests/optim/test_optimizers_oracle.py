"""Every optimizer, with several option combinations, follows PyTorch step for step.

The same MLP from the same initial weights on the same data trains for 50 steps in
float64 with backprop and with torch; losses and final weights agree to rtol 1e-10.
"""
from __future__ import annotations

import pytest

import backprop.optim  # noqa: F401 (makes backprop.optim an attribute for the harness)

from tests.optim.helpers import both

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True, maximize=True)),
    ("SGD", dict(lr=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.9)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, eps=1e-4, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.1, eps=1e-6, maximize=True)),
]


def _id(config):
    name, kwargs = config
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("config", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_training_matches_torch(oracle, config, loss):
    name, kwargs = config
    both(oracle, lambda optim, params: getattr(optim, name)(params, **kwargs), loss=loss,
         maximize=kwargs.get("maximize", False))


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)), ("Adagrad", dict(lr=0.1)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
])
def test_param_groups_with_their_own_options_match_torch(oracle, name, kwargs):
    def make(optim, params):
        groups = [{"params": params[:2], "lr": kwargs["lr"] * 3},
                  {"params": params[2:3], "weight_decay": 0.1},
                  {"params": params[3:]}]
        return getattr(optim, name)(groups, **kwargs)

    ours = both(oracle, make)
    lrs = ours["lrs"][0]
    assert lrs[0] == pytest.approx(kwargs["lr"] * 3) and lrs[1] == lrs[2] == kwargs["lr"]


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.01))])
def test_closure_matches_torch(oracle, name, kwargs):
    both(oracle, lambda optim, params: getattr(optim, name)(params, **kwargs), closure=True)


def test_parameters_without_grad_are_skipped_as_in_torch(oracle):
    """A parameter whose grad is None is left alone (and gets no state)."""
    def make(optim, params):
        params[3].requires_grad_(False)  # b2: never gets a gradient
        return optim.Adam(params, lr=0.01)

    ours = both(oracle, make)
    assert len(ours["optimizer"].state) == 3
