"""Adadelta, Adamax, NAdam, RAdam and LBFGS follow PyTorch step for step.

The adaptive optimizers train the MLP of ``tests.optim.helpers`` for 20 steps in float64
with backprop and with torch from the same weights; losses and final weights agree to
rtol 1e-10. LBFGS runs on the Rosenbrock function, a least-squares problem and the MLP:
after every ``step(closure)`` call the loss, the weights and the counters ``func_evals``
and ``n_iter`` agree with torch's.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import inspect

import numpy as np
import pytest

import backprop
import backprop.optim  # noqa: F401 (makes backprop.optim an attribute for the harness)
from backprop import optim
from backprop.optim.adadelta import adadelta
from backprop.optim.adamax import adamax
from backprop.optim.lbfgs import cubic_interpolate, lbfgs_direction, strong_wolfe
from backprop.optim.nadam import nadam
from backprop.optim.radam import radam

from tests.optim.helpers import assert_same_run, problem, train

STEPS = 20

CONFIGS = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5)),
    ("Adadelta", dict(weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.05, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99))),  # rho_t passes 5 at step 6: both branches
    ("RAdam", dict(lr=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01, eps=1e-4, maximize=True)),
]


def _id(config):
    name, kwargs = config
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@contextlib.contextmanager
def torch_scalars_in_float64(torch, name):
    """NAdam: PyTorch keeps its mu_product in float32 unless the default dtype is float64
    (backprop keeps float64; see NAdam's docstring). Compare against the float64 one."""
    if name != "NAdam":
        yield
        return
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def both(oracle, name, make_optimizer, make_scheduler=None, **kwargs):
    kwargs.setdefault("steps", STEPS)
    ours = train(backprop, make_optimizer, make_scheduler, **kwargs)
    with torch_scalars_in_float64(oracle, name):
        theirs = train(oracle, make_optimizer, make_scheduler, **kwargs)
    assert_same_run(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("config", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_training_matches_torch(oracle, config, loss):
    name, kwargs = config
    both(oracle, name, lambda optim, params: getattr(optim, name)(params, **kwargs), loss=loss,
         maximize=kwargs.get("maximize", False))


def test_nadam_against_default_torch_differs_only_by_its_float32_mu_product(oracle):
    """With torch's default dtype float32, torch rounds mu_product to float32: the runs
    still agree to 1e-8 relative (and to rounding with float64, as above)."""
    def make(optim, params):
        return optim.NAdam(params, lr=0.01)

    ours, theirs = train(backprop, make, steps=STEPS), train(oracle, make, steps=STEPS)
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=1e-8)


@pytest.mark.parametrize("name, kwargs", [
    ("Adadelta", dict(lr=0.5)), ("Adamax", dict(lr=0.01)), ("NAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, decoupled_weight_decay=True)),
])
def test_param_groups_with_their_own_options_match_torch(oracle, name, kwargs):
    def make(optim, params):
        groups = [{"params": params[:2], "lr": kwargs["lr"] * 3},
                  {"params": params[2:3], "weight_decay": 0.1},
                  {"params": params[3:], "maximize": False}]
        return getattr(optim, name)(groups, **kwargs)

    ours, _ = both(oracle, name, make)
    lrs = ours["lrs"][0]
    assert lrs[0] == pytest.approx(kwargs["lr"] * 3) and lrs[1] == lrs[2] == kwargs["lr"]


@pytest.mark.parametrize("name, kwargs", [
    ("Adadelta", dict(lr=1.0)), ("Adamax", dict(lr=0.02)), ("NAdam", dict(lr=0.02)),
    ("RAdam", dict(lr=0.02)),
])
@pytest.mark.parametrize("schedule", ["step", "cosine", "plateau"])
def test_lr_schedulers_drive_them_as_in_torch(oracle, name, kwargs, schedule):
    def make_scheduler(lr_scheduler, opt):
        if schedule == "step":
            return lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        if schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
        return lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)

    ours, _ = both(oracle, name, lambda optim, params: getattr(optim, name)(params, **kwargs),
                   make_scheduler, metric=(lambda step, loss: float(step))  # never improves
                   if schedule == "plateau" else None)
    assert ours["lrs"][-1][0] < ours["lrs"][0][0]  # the schedule really changed the lr


@pytest.mark.parametrize("name, kwargs", [
    ("Adadelta", dict(lr=0.5, weight_decay=0.01)), ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99))),
])
@pytest.mark.parametrize("source", ["backprop", "torch"])
def test_state_dict_round_trip_mid_run_continues_identically(oracle, name, kwargs, source):
    """Train 10 steps, load the state dict (ours, or torch's) into a fresh optimizer on
    copies of the weights, train 10 more: the same as torch's uninterrupted 20 steps."""
    def make(optim, params):
        return getattr(optim, name)(params, **kwargs)

    with torch_scalars_in_float64(oracle, name):
        theirs = train(oracle, make, steps=STEPS)
        first = train(oracle if source == "torch" else backprop, make, steps=STEPS // 2)
    sd = first["optimizer"].state_dict()
    resumed = _continue(lambda ps: getattr(optim, name)(ps, lr=123.0), sd, first["params"],
                        STEPS // 2)
    assert resumed["optimizer"].param_groups[0]["lr"] == kwargs["lr"]
    np.testing.assert_allclose(np.concatenate([first["losses"], resumed["losses"]]),
                               theirs["losses"], rtol=1e-10)
    for a, b in zip(resumed["params"], theirs["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def _continue(make_optimizer, state_dict, weights, steps):
    """Train the helpers' MLP (mse) from ``weights`` with a fresh optimizer that loads
    ``state_dict``."""
    x_np, y_np, _, _ = problem()
    x, y = backprop.tensor(x_np), backprop.tensor(y_np)
    params = [backprop.tensor(np.array(w), requires_grad=True) for w in weights]
    opt = make_optimizer(params)
    opt.load_state_dict(copy.deepcopy(state_dict))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        w1, b1, w2, b2 = params
        loss = (((x @ w1 + b1).tanh() @ w2 + b2 - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return dict(losses=np.array(losses), params=[p.detach().numpy() for p in params],
                optimizer=opt)


def test_state_dict_keys_match_torchs(oracle):
    knobs = {"foreach", "fused", "capturable", "differentiable"}
    for name in ("Adadelta", "Adamax", "NAdam", "RAdam"):
        run = train(backprop, lambda optim, ps: getattr(optim, name)(ps), steps=1)
        ref = train(oracle, lambda optim, ps: getattr(optim, name)(ps), steps=1)
        a, b = run["optimizer"].state_dict(), ref["optimizer"].state_dict()
        assert set(a["state"][0]) == set(b["state"][0]), name
        assert set(a["param_groups"][0]) == set(b["param_groups"][0]) - knobs, name


# -- arguments ---------------------------------------------------------------------------
ARG_ERRORS = [
    ("Adadelta", dict(lr=-1.0), "Invalid learning rate: -1.0"),
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"),
    ("Adadelta", dict(rho=-0.1), "Invalid rho value: -0.1"),
    ("Adadelta", dict(eps=-1e-6), "Invalid epsilon value: -1e-06"),
    ("Adadelta", dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ("Adamax", dict(lr=-0.1), "Invalid learning rate: -0.1"),
    ("Adamax", dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    ("Adamax", dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    ("Adamax", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("NAdam", dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1"),
    ("NAdam", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ("NAdam", dict(betas=(-0.1, 0.9)), "Invalid beta parameter at index 0: -0.1"),
    ("RAdam", dict(lr=float("nan")), "Invalid learning rate: nan"),
    ("RAdam", dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    ("LBFGS", dict(lr=-1), "Invalid learning rate: -1"),
]


def _params():
    return [backprop.zeros(2, requires_grad=True)]


@pytest.mark.parametrize("name, kwargs, message", ARG_ERRORS)
def test_bad_arguments_raise_torchs_messages(oracle, name, kwargs, message):
    with pytest.raises(ValueError) as theirs:
        getattr(oracle.optim, name)([oracle.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)(_params(), **kwargs)
    assert str(ours.value) == str(theirs.value) == message


@pytest.mark.parametrize("kwargs, match", [
    (dict(line_search_fn="armijo"), "line_search_fn must be None or 'strong_wolfe', got "
                                    "'armijo'"),
    (dict(history_size=0), "history_size must be a positive integer, got 0"),
    (dict(max_iter=0), "max_iter must be a positive integer, got 0"),
    (dict(max_iter=2.5), "max_iter must be a positive integer, got 2.5"),
    (dict(max_eval=0), "max_eval must be a positive integer, got 0"),
    (dict(tolerance_grad=-1.0), "Invalid tolerance_grad value: -1.0"),
])
def test_lbfgs_bad_arguments_are_refused_when_built(kwargs, match):
    """Stricter than torch, which accepts these and fails (or loops) at step time."""
    with pytest.raises(ValueError, match=match):
        optim.LBFGS(_params(), **kwargs)


def test_lbfgs_takes_one_parameter_group_only(oracle):
    message = "LBFGS doesn't support per-parameter options (parameter groups)"
    with pytest.raises(ValueError) as theirs:
        oracle.optim.LBFGS([{"params": [oracle.zeros(2, requires_grad=True)]},
                            {"params": [oracle.zeros(2, requires_grad=True)]}])
    with pytest.raises(ValueError) as ours:
        optim.LBFGS([{"params": _params()}, {"params": _params()}])
    assert str(ours.value) == str(theirs.value) == message
    opt = optim.LBFGS(_params())
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": _params()})


def test_lbfgs_step_needs_a_closure():
    opt = optim.LBFGS(_params())
    with pytest.raises(TypeError, match=r"LBFGS.step needs a closure.*opt.step\(closure\)"):
        opt.step()


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_backend_knobs_are_accepted_and_differentiable_refused(name):
    cls = getattr(optim, name)
    cls(_params(), foreach=True, capturable=False)
    cls(_params(), foreach=None, capturable=True)
    with pytest.raises(NotImplementedError, match=f"{name}: differentiable=True"):
        cls(_params(), differentiable=True)


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam", "LBFGS"])
def test_signatures_are_torchs(oracle, name):
    """Same parameter names, order, kinds (positional or keyword-only) and defaults."""
    def described(cls):
        return [(p.name, p.kind, p.default) for p in
                inspect.signature(cls.__init__).parameters.values()]
    assert described(getattr(optim, name)) == described(getattr(oracle.optim, name))


def test_positional_arguments_follow_torchs_signatures():
    p = _params()
    assert optim.Adadelta(p, 0.5, 0.8, 1e-5, 0.1).defaults == dict(
        lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=False)
    assert optim.Adamax(p, 0.1, (0.5, 0.6), 1e-3, 0.2).defaults["betas"] == (0.5, 0.6)
    nadam_opt = optim.NAdam(p, 0.1, (0.5, 0.6), 1e-3, 0.2, 0.01, True)
    assert nadam_opt.defaults["momentum_decay"] == 0.01
    assert nadam_opt.defaults["decoupled_weight_decay"] is True
    assert optim.RAdam(p, 0.1, (0.5, 0.6), 1e-3, 0.2, True).defaults["decoupled_weight_decay"]
    lbfgs = optim.LBFGS(p, 0.5, 8, None, 1e-5, 1e-7, 10, "strong_wolfe")
    assert lbfgs.defaults == dict(lr=0.5, max_iter=8, max_eval=10, tolerance_grad=1e-5,
                                  tolerance_change=1e-7, history_size=10,
                                  line_search_fn="strong_wolfe")


# -- functional forms ----------------------------------------------------------------------
def test_functional_updates_follow_their_docstrings():
    p, g = np.zeros(2), np.array([1.0, -1.0])
    adadelta([p], [g], [np.zeros(2)], [np.zeros(2)], lr=1.0, rho=0.9, eps=1e-6)
    np.testing.assert_allclose(p, np.array([-1, 1]) * np.sqrt(1e-6) / np.sqrt(0.1 + 1e-6))

    p, g = np.zeros(2), np.array([3.0, -3.0])
    adamax([p], [g], [np.zeros(2)], [np.zeros(2)], [1], lr=0.1, beta1=0.9, beta2=0.999,
           eps=1e-8)
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-7)
    np.testing.assert_array_equal(g, [3.0, -3.0])  # gradients are only read

    p, g, mu_products = np.zeros(2), np.array([1.0, -1.0]), [1.0]
    nadam([p], [g], [np.zeros(2)], [np.zeros(2)], mu_products, [1], lr=0.1, beta1=0.9,
          beta2=0.999, eps=1e-8)
    mu, mu_next = 0.9 * (1 - 0.5 * 0.96 ** 0.004), 0.9 * (1 - 0.5 * 0.96 ** 0.008)
    np.testing.assert_allclose(p, np.array([-1, 1]) * (0.1 + 0.1 * mu_next / (1 - mu * mu_next)
                                                       * 0.1), rtol=1e-7)
    np.testing.assert_allclose(p, [-0.1056, 0.1056], rtol=1e-3)
    assert mu_products[0] == pytest.approx(mu) == pytest.approx(0.4501, abs=1e-4)

    p, g = np.zeros(2), np.array([1.0, -1.0])
    radam([p], [g], [np.zeros(2)], [np.zeros(2)], [1], lr=0.1, beta1=0.9, beta2=0.999,
          eps=1e-8)
    np.testing.assert_allclose(p, [-0.1, 0.1], rtol=1e-14)

    np.testing.assert_array_equal(lbfgs_direction(np.array([2.0, -4.0]), [], [], [], 1, []),
                                  [-2.0, 4.0])
    assert cubic_interpolate(0.0, 1.0, -2.0, 2.0, 1.0, 2.0) == pytest.approx(1.0)

    def obj(x, t, d):
        y = x + t * d
        return float(y @ y), 2 * y
    x = np.array([1.0, 1.0])
    g = 2 * x
    f_new, g_new, t, evals = strong_wolfe(obj, x, 1.0, -g, 2.0, g, float(-g @ g))
    assert t == pytest.approx(0.5) and f_new == pytest.approx(0.0) and evals >= 2


def test_lbfgs_two_loop_recursion_meets_the_secant_condition():
    """The inverse-Hessian estimate H maps the newest gradient change to the newest step
    (H y_k = s_k, the BFGS secant condition), so the direction for g = -y_k is s_k; with
    no history H is H_diag times the identity."""
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 5))
    a = m @ m.T + 5 * np.eye(5)  # a quadratic's Hessian: y = A s, so y.s > 0
    steps = [rng.standard_normal(5) for _ in range(3)]
    dirs = [a @ s for s in steps]
    ro = [1.0 / (y @ s) for y, s in zip(dirs, steps)]
    h_diag = (dirs[-1] @ steps[-1]) / (dirs[-1] @ dirs[-1])
    d = lbfgs_direction(-dirs[-1], dirs, steps, ro, h_diag, [None] * 3)
    np.testing.assert_allclose(d, steps[-1], rtol=1e-10)
    g = rng.standard_normal(5)
    np.testing.assert_allclose(lbfgs_direction(g, [], [], [], 0.5, []), -0.5 * g)
    assert not np.allclose(lbfgs_direction(g, dirs, steps, ro, h_diag, [None] * 3), -h_diag * g)


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_float32_stays_float32(name):
    cls = getattr(optim, name)
    runs = {}
    for dtype in (backprop.float32, backprop.float64):
        w = backprop.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=dtype,
                            requires_grad=True)
        opt = cls([w], lr=0.01, maximize=True, weight_decay=0.1)
        for _ in range(5):
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()
        runs[dtype] = (w, opt)
    w32, opt32 = runs[backprop.float32]
    assert w32._data.dtype == np.float32
    np.testing.assert_allclose(w32.detach().numpy(),
                               runs[backprop.float64][0].detach().numpy(), rtol=2e-4, atol=1e-5)
    for key, value in opt32.state[w32].items():
        if isinstance(value, backprop.Tensor):
            assert value._data.dtype == np.float32, key


# -- LBFGS -----------------------------------------------------------------------------
def _nudge(arrays, ulp):
    """The arrays, or (ulp=True) each moved by one unit in the last place."""
    return [np.nextafter(a, np.inf) if ulp else a.copy() for a in arrays]


def _rosenbrock(lib, ulp=False):
    x = lib.tensor(_nudge([np.array([-1.5, 2.0])], ulp)[0], requires_grad=True)

    def loss():
        a, b = 1 - x[0], x[1] - x[0] * x[0]
        return a * a + 100 * (b * b)
    return [x], loss


def _least_squares(lib, ulp=False):
    rng = np.random.default_rng(1)
    a = lib.tensor(rng.standard_normal((30, 6)))
    b = lib.tensor(rng.standard_normal(30))
    w0, c0 = _nudge([np.zeros(6), np.zeros(1)], ulp)
    w = lib.tensor(w0, requires_grad=True)
    c = lib.tensor(c0, requires_grad=True)

    def loss():
        r = a @ w + c - b
        return (r * r).mean()
    return [w, c], loss


def _mlp(lib, ulp=False):
    x_np, y_np, _, weights = problem()
    x, y = lib.tensor(x_np), lib.tensor(y_np)
    params = [lib.tensor(w, requires_grad=True) for w in _nudge(weights, ulp)]

    def loss():
        w1, b1, w2, b2 = params
        r = (x @ w1 + b1).tanh() @ w2 + b2 - y
        return (r * r).mean()
    return params, loss


PROBLEMS = {"rosenbrock": _rosenbrock, "least_squares": _least_squares, "mlp": _mlp}


def lbfgs_run(lib, problem_name, steps, make_scheduler=None, ulp=False, **kwargs):
    """Per step(closure) call: the returned loss, the weights, func_evals and n_iter
    (ulp=True: from starting weights one unit in the last place away)."""
    params, objective = PROBLEMS[problem_name](lib, ulp)
    opt = lib.optim.LBFGS(params, **kwargs)
    sched = make_scheduler(lib.optim.lr_scheduler, opt) if make_scheduler else None
    calls = []

    def closure():
        opt.zero_grad()
        value = objective()
        value.backward()
        calls.append(1)
        return value

    losses, weights, counters = [], [], []
    for _ in range(steps):
        losses.append(float(opt.step(closure).item()))
        weights.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
        state = opt.state[params[0]]
        counters.append((state["func_evals"], state["n_iter"]))
        if sched is not None:
            sched.step()
    final_loss = float(objective().item())
    assert counters[-1][0] == len(calls)  # func_evals counts every closure call
    return dict(losses=np.array(losses), weights=np.array(weights), counters=counters,
                final_loss=final_loss, optimizer=opt, params=params)


def assert_same_lbfgs_run(ours, theirs, rtol=1e-9):
    assert ours["counters"] == theirs["counters"], "func_evals / n_iter differ"
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(ours["weights"], theirs["weights"], rtol=rtol, atol=1e-12)


LBFGS_CASES = [
    ("rosenbrock", 10, dict(line_search_fn="strong_wolfe")),
    ("rosenbrock", 10, dict(lr=0.1, max_iter=5)),
    ("rosenbrock", 6, dict(line_search_fn="strong_wolfe", max_iter=10, max_eval=12,
                           tolerance_change=1e-6)),
    ("rosenbrock", 1, dict(line_search_fn="strong_wolfe", lr=0.01)),  # extrapolates
    ("rosenbrock", 4, dict(line_search_fn="strong_wolfe", lr=20)),  # zooms
    ("least_squares", 4, dict()),
    ("least_squares", 4, dict(line_search_fn="strong_wolfe")),
    ("least_squares", 5, dict(lr=0.5, history_size=2, max_iter=4)),
    ("mlp", 5, dict(line_search_fn="strong_wolfe")),
    ("mlp", 5, dict(lr=0.2, max_iter=10)),
]


@pytest.mark.parametrize("name, steps, kwargs", LBFGS_CASES,
                         ids=[f"{n}-{s}-" + ",".join(f"{k}={v}" for k, v in kw.items())
                              for n, s, kw in LBFGS_CASES])
def test_lbfgs_matches_torch_per_step_call(oracle, name, steps, kwargs):
    ours = lbfgs_run(backprop, name, steps, **kwargs)
    theirs = lbfgs_run(oracle, name, steps, **kwargs)
    assert_same_lbfgs_run(ours, theirs)
    assert ours["final_loss"] < ours["losses"][0]  # it optimised


SENSITIVE_CASES = [
    ("rosenbrock", 4, dict(line_search_fn="strong_wolfe", lr=0.01)),
    ("rosenbrock", 10, dict(line_search_fn="strong_wolfe", history_size=3, max_iter=7)),
    ("mlp", 5, dict(line_search_fn="strong_wolfe", lr=0.8, history_size=5,
                    tolerance_grad=1e-4)),
]


@pytest.mark.parametrize("name, steps, kwargs", SENSITIVE_CASES,
                         ids=[f"{n}-{s}-lr={kw.get('lr', 1)}"
                              for n, s, kw in SENSITIVE_CASES])
def test_lbfgs_matches_torch_as_closely_as_torch_matches_itself(oracle, name, steps, kwargs):
    """Over many iterations L-BFGS amplifies rounding: here torch from weights one ulp away
    drifts from torch by 1e-7 or more. backprop (whose matmul rounds differently) must
    take exactly the same iterations and stay within that drift."""
    ours = lbfgs_run(backprop, name, steps, **kwargs)
    theirs = lbfgs_run(oracle, name, steps, **kwargs)
    nudged = lbfgs_run(oracle, name, steps, ulp=True, **kwargs)
    assert ours["counters"] == theirs["counters"], "func_evals / n_iter differ"
    drift = np.abs(nudged["weights"] - theirs["weights"]).max()
    assert drift > 1e-9  # the case really is this sensitive
    np.testing.assert_allclose(ours["weights"], theirs["weights"], rtol=0, atol=10 * drift)
    loss_drift = np.abs(nudged["losses"] - theirs["losses"]).max()
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=0, atol=10 * loss_drift)


def _wavy(lib, y):
    """A bumpy function (several local minima along a line) and its gradient."""
    sin, cos = (np.sin, np.cos) if lib is np else (lib.sin, lib.cos)
    return float((0.25 * y ** 4 - y ** 2 + 0.3 * sin(3 * y)).sum()), \
        y ** 3 - 2 * y + 0.9 * cos(3 * y)


def _softplus(lib, y):
    """A function whose cubic fits are poor, so trials land near the bracket's ends."""
    tanh = np.tanh if lib is np else lib.tanh
    return float((np.logaddexp(0, 10 * y) if lib is np else
                  lib.logaddexp(lib.zeros_like(y), 10 * y)).sum() - y.sum()), \
        5 * (1 + tanh(5 * y)) - 1   # 10 sigmoid(10 y) - 1, without overflow


# The softplus trials are ones where the zoom's 10% safeguard moves a trial step.
LINE_SEARCHES = [(_wavy, i) for i in range(42)] + [
    (_softplus, i) for i in (62, 83, 88, 125, 137, 139, 146, 151)]


@pytest.mark.parametrize("fn, trial", LINE_SEARCHES,
                         ids=[f"{fn.__name__[1:]}-{i}" for fn, i in LINE_SEARCHES])
def test_strong_wolfe_line_search_matches_torchs(oracle, fn, trial):
    """The line search alone against torch's (a private function of torch.optim.lbfgs):
    first steps from far too short to far too long, so that every branch runs
    (extrapolation, zoom with either end replaced, the 10% safeguard, running out of
    evaluations); the same chosen step, loss, gradient and number of evaluations."""
    torch_lbfgs = importlib.import_module(oracle.__name__ + ".optim.lbfgs")
    torch_strong_wolfe = getattr(torch_lbfgs, "_strong_wolfe", None)
    if torch_strong_wolfe is None:
        pytest.skip("this torch has no torch.optim.lbfgs._strong_wolfe")
    rng = np.random.default_rng(trial)
    x = rng.standard_normal(3) * 1.5
    f, g = fn(np, x)
    d = -g if trial % 2 == 0 else -g * rng.uniform(0.1, 2, 3)
    t = [1e-3, 0.02, 0.3, 1, 5, 30, 300][trial % 7]
    max_ls = [25, 3, 25, 2, 25][trial % 5]
    ours = strong_wolfe(lambda x, t, d: fn(np, x + t * d), x, t, d, f, g, float(g @ d),
                        max_ls=max_ls)
    xt, dt, gt = oracle.tensor(x), oracle.tensor(d), oracle.tensor(g)
    theirs = torch_strong_wolfe(lambda x, t, d: fn(oracle, x + t * d), xt, t, dt, f, gt,
                                gt.dot(dt), max_ls=max_ls)
    assert ours[3] == theirs[3]  # evaluations
    assert float(ours[2]) == pytest.approx(float(theirs[2]), rel=1e-12, abs=1e-15)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(ours[1], theirs[1].numpy(), rtol=1e-12, atol=1e-14)


def test_lbfgs_reaches_the_rosenbrock_minimum():
    run = lbfgs_run(backprop, "rosenbrock", 10, line_search_fn="strong_wolfe")
    np.testing.assert_allclose(run["weights"][-1], [1.0, 1.0], atol=1e-4)


def test_lbfgs_solves_least_squares():
    run = lbfgs_run(backprop, "least_squares", 3, line_search_fn="strong_wolfe")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30, 6)), rng.standard_normal(30)
    design = np.c_[a, np.ones(30)]
    exact, *_ = np.linalg.lstsq(design, b, rcond=None)
    best = np.mean((design @ exact - b) ** 2)
    assert run["final_loss"] == pytest.approx(best, rel=1e-9)
    np.testing.assert_allclose(run["weights"][-1], exact, atol=1e-4)


def test_lbfgs_stops_at_once_when_the_gradient_is_already_small(oracle):
    """At the optimum the first closure call is the only one (tolerance_grad)."""
    for lib in (backprop, oracle):
        x = lib.tensor(np.array([1.0, 1.0]), requires_grad=True)
        opt = lib.optim.LBFGS([x])
        calls = []

        def closure():
            opt.zero_grad()
            loss = ((x - 1) * (x - 1)).sum()
            loss.backward()
            calls.append(1)
            return loss
        opt.step(closure)
        assert len(calls) == 1 and opt.state[x]["func_evals"] == 1
        assert "d" not in opt.state[x]


def test_lbfgs_with_an_lr_scheduler_matches_torch(oracle):
    def sched(lr_scheduler, opt):
        return lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    ours = lbfgs_run(backprop, "mlp", 6, sched, lr=0.3, max_iter=5)
    theirs = lbfgs_run(oracle, "mlp", 6, sched, lr=0.3, max_iter=5)
    assert_same_lbfgs_run(ours, theirs)
    assert ours["optimizer"].param_groups[0]["lr"] == pytest.approx(0.3 / 8)


@pytest.mark.parametrize("kwargs", [dict(lr=0.3, max_iter=4),
                                    dict(line_search_fn="strong_wolfe", max_iter=4)])
@pytest.mark.parametrize("source", ["backprop", "torch"])
def test_lbfgs_state_dict_round_trip_continues_identically(oracle, kwargs, source):
    """3 step() calls, then the state dict (ours, or torch's) into a fresh LBFGS on copies
    of the weights, 3 more calls: the same as torch's uninterrupted 6 calls."""
    theirs = lbfgs_run(oracle, "mlp", 6, **kwargs)
    first = lbfgs_run(oracle if source == "torch" else backprop, "mlp", 3, **kwargs)
    sd = first["optimizer"].state_dict()
    assert set(sd["state"]) == {0} and len(sd["state"][0]["old_dirs"]) > 0

    params, objective = _mlp(backprop)
    for p, w in zip(params, first["params"]):
        p._data[...] = w.detach().numpy()
    opt = optim.LBFGS(params, lr=99.0)
    opt.load_state_dict(copy.deepcopy(sd))
    assert opt.param_groups[0]["lr"] == kwargs.get("lr", 1)

    def closure():
        opt.zero_grad()
        value = objective()
        value.backward()
        return value

    for i in range(3):
        loss = float(opt.step(closure).item())
        np.testing.assert_allclose(loss, theirs["losses"][3 + i], rtol=1e-9)
        state = opt.state[params[0]]
        assert (state["func_evals"], state["n_iter"]) == theirs["counters"][3 + i]
    weights = np.concatenate([p.detach().numpy().ravel() for p in params])
    np.testing.assert_allclose(weights, theirs["weights"][-1], rtol=1e-9, atol=1e-12)


def test_lbfgs_state_survives_save_and_load(tmp_path):
    run = lbfgs_run(backprop, "least_squares", 1, lr=0.5, max_iter=3)
    path = tmp_path / "lbfgs.safetensors"
    backprop.save(run["optimizer"].state_dict(), path)
    loaded = backprop.load(path)
    opt = optim.LBFGS(_least_squares(backprop)[0])
    opt.load_state_dict(loaded)
    a = run["optimizer"].state[run["params"][0]]
    b = opt.state[opt.param_groups[0]["params"][0]]
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(a["d"].numpy(), b["d"].numpy())
    assert len(a["old_stps"]) == len(b["old_stps"]) and a["t"] == b["t"]


def test_lbfgs_load_state_dict_checks_shapes():
    run = lbfgs_run(backprop, "least_squares", 1, lr=0.5, max_iter=3)
    opt = optim.LBFGS([backprop.zeros(3, requires_grad=True),
                       backprop.zeros(1, requires_grad=True)])
    with pytest.raises(backprop.ShapeError, match=r"state 'd' has shape \(7,\), but the "
                                                  r"parameters hold 4 numbers"):
        opt.load_state_dict(run["optimizer"].state_dict())


def test_lbfgs_loads_an_empty_state_and_refuses_unknown_entries():
    ps = [backprop.zeros(7, requires_grad=True)]
    fresh = optim.LBFGS(ps, lr=0.5)
    opt = optim.LBFGS([backprop.zeros(7, requires_grad=True)])
    opt.load_state_dict(fresh.state_dict())  # nothing run yet: no state
    assert opt.param_groups[0]["lr"] == 0.5 and len(opt.state) == 0
    with pytest.raises(ValueError, match="unknown state entry 'momentum_buffer'"):
        opt.load_state_dict({"state": {0: {"momentum_buffer": np.zeros(7)}},
                             "param_groups": fresh.state_dict()["param_groups"]})
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_lbfgs_float32_stays_float32():
    w = backprop.tensor(np.array([-1.5, 2.0], dtype=np.float32), requires_grad=True)
    opt = optim.LBFGS([w], line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        a, b = 1 - w[0], w[1] - w[0] * w[0]
        loss = a * a + 100 * (b * b)
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    assert w._data.dtype == np.float32
    assert opt.state[w]["d"]._data.dtype == np.float32
    np.testing.assert_allclose(w.detach().numpy(), [1.0, 1.0], atol=1e-2)
