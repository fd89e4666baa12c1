"""A tiny training problem run step for step with backprop and with PyTorch (the oracle).

The model is written with raw tensor ops (no ``nn``) so the optimizer tests depend on
the engine only: a 2-layer MLP ``tanh(x @ W1 + b1) @ W2 + b2`` with a mean-squared
error or a log-softmax cross-entropy loss, in float64.
"""
from __future__ import annotations

import numpy as np

import backprop

N, D_IN, D_HIDDEN, D_OUT = 24, 5, 7, 3


def problem(seed: int = 0):
    """(inputs, regression targets, one-hot class targets, initial weights) as arrays."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D_IN))
    y = rng.standard_normal((N, D_OUT))
    onehot = np.eye(D_OUT)[rng.integers(0, D_OUT, N)]
    weights = [rng.standard_normal((D_IN, D_HIDDEN)) * 0.5, rng.standard_normal(D_HIDDEN) * 0.1,
               rng.standard_normal((D_HIDDEN, D_OUT)) * 0.5, rng.standard_normal(D_OUT) * 0.1]
    return x, y, onehot, weights


def train(lib, make_optimizer, make_scheduler=None, steps: int = 50, loss: str = "mse",
          maximize: bool = False, metric=None, closure: bool = False, seed: int = 0):
    """Train with ``lib`` (the backprop or torch module); return per-step losses, per-step
    learning rates of every group (and momenta/beta1 where present), and final weights.

    make_optimizer(optim_module, params) -> optimizer
    make_scheduler(lr_scheduler_module, optimizer) -> scheduler (or None)
    maximize: the objective is -loss (for optimizers built with maximize=True)
    metric(step, loss) -> value passed to scheduler.step(value) (ReduceLROnPlateau)
    """
    x_np, y_np, onehot_np, weights = problem(seed)
    x, y, onehot = (lib.tensor(a) for a in (x_np, y_np, onehot_np))
    params = [lib.tensor(w.copy(), requires_grad=True) for w in weights]
    opt = make_optimizer(lib.optim, params)
    sched = make_scheduler(lib.optim.lr_scheduler, opt) if make_scheduler else None

    def objective():
        w1, b1, w2, b2 = params
        out = (x @ w1 + b1).tanh() @ w2 + b2
        if loss == "mse":
            value = ((out - y) ** 2).mean()
        else:
            value = -(lib.log_softmax(out, 1) * onehot).sum() / N
        return -value if maximize else value

    losses, lrs, momenta = [], [], []
    for step in range(steps):
        lrs.append([float(g["lr"]) for g in opt.param_groups])
        momenta.append([float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0))
                        for g in opt.param_groups])
        if closure:
            def _closure():
                opt.zero_grad()
                value = objective()
                value.backward()
                return value
            value = opt.step(_closure)
        else:
            opt.zero_grad()
            value = objective()
            value.backward()
            opt.step()
        losses.append(float(value.item()))
        if sched is not None:
            if metric is not None:
                sched.step(metric(step, losses[-1]))
            else:
                sched.step()
    final = [p.detach().numpy().copy() for p in params]
    return dict(losses=np.array(losses), lrs=np.array(lrs), momenta=np.array(momenta),
                params=final, optimizer=opt, scheduler=sched)


def assert_same_run(ours: dict, theirs: dict, rtol: float = 1e-10) -> None:
    """Losses, learning rates, momenta and final weights agree step for step."""
    np.testing.assert_allclose(ours["lrs"], theirs["lrs"], rtol=1e-13, atol=0,
                               err_msg="learning rates differ")
    np.testing.assert_allclose(ours["momenta"], theirs["momenta"], rtol=1e-13, atol=0,
                               err_msg="momenta differ")
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=rtol, atol=0,
                               err_msg="losses differ")
    for i, (a, b) in enumerate(zip(ours["params"], theirs["params"])):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-13,
                                   err_msg=f"final parameter {i} differs")
    # The runs must actually have trained: the loss moved.
    assert abs(ours["losses"][-1] - ours["losses"][0]) > 1e-3


def both(oracle, make_optimizer, make_scheduler=None, **kwargs):
    """Run the same training with backprop and with torch; assert they agree; return ours."""
    ours = train(backprop, make_optimizer, make_scheduler, **kwargs)
    theirs = train(oracle, make_optimizer, make_scheduler, **kwargs)
    assert_same_run(ours, theirs)
    return ours
