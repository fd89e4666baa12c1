"""Vanishing (and exploding) gradients, measured on a real deep network.

:func:`vanishing` builds a deep MLP, runs one forward and backward pass on random data,
and reports the norm of each layer's weight gradient with one bar per layer on a log
scale, so the shrinking (or healthy) gradient down the depth can be seen::

    print(vanishing(depth=8, activation="sigmoid"))       # shrinks layer by layer
    print(vanishing(depth=8, activation="relu", init="he"))  # stays within one order
    print(vanishing(depth=8, activation="sigmoid", residual=True))

Why it happens: backward multiplies the gradient by Wᵀ and by f'(Z) once per layer.
The sigmoid's slope is at most 1/4, so with weights of the default size each layer
shrinks the gradient by a roughly constant factor and the first layers get almost
nothing. He initialisation keeps the variance steady for ReLU; a skip connection
(x + f(x)) adds the identity to every layer's Jacobian, a path that does not shrink.
"""
from __future__ import annotations

import dataclasses
import math
import textwrap

import numpy as np

from backprop import dtypes as _dt
from backprop import random as _random
from backprop.autograd import enable_grad
from backprop.creation import tensor as _tensor
from backprop.nn import Linear, MSELoss, Residual, Sequential
from backprop.nn import init as _init
from backprop.train.experiment import ACTIVATIONS, build_mlp

__all__ = ["vanishing", "VanishingResult", "INITS"]

#: Weight initialisations :func:`vanishing` knows.
INITS = ("default", "he", "xavier", "small")
#: Standard deviation of the "small" initialisation: small enough that signals and
#: gradients shrink at every layer whatever the activation.
SMALL_STD = 0.01
#: First-to-last gradient ratio below which the gradient is called vanishing: two orders
#: of magnitude, the "orders of magnitude below late layers" of the usual diagnosis.
VANISHING_RATIO = 1e-2
#: And above which it is called exploding.
EXPLODING_RATIO = 1e2
#: A largest gradient norm below this is tiny whatever the ratio: with learning rates of
#: 1e-3..1 the weights (of size ~0.1..1) would move by less than a millionth per step.
TINY_GRAD_NORM = 1e-6
_BAR_WIDTH = 40

# Limits, checked before anything is built: a deep or wide network is allocated whole (in
# float64) and kept for one backward pass, so --depth 100000 took 35 s and 4.5 GB and
# --width 100000000 asked for petabytes. These leave room for any network worth looking at
# and keep one call within seconds and a few hundred MB.
#: Most Linear layers.
MAX_DEPTH = 1_000
#: Most units per layer.
MAX_WIDTH = 4_096
#: Most random samples.
MAX_BATCH = 10_000
#: Most weights in all: depth × width² (80 MB in float64, as much again for the gradients).
MAX_PARAMETERS = 10_000_000
#: Most activation values one forward pass keeps for backward: batch × width × depth.
MAX_ACTIVATIONS = 10_000_000


@dataclasses.dataclass
class VanishingResult:
    """Per-layer weight-gradient norms of one backward pass (see :func:`vanishing`).

    Attributes:
        config: the arguments the network was built with.
        names: each layer's weight parameter name, input side first.
        norms: the L2 norm of each layer's weight gradient, in the same order.
        ratio: first layer's norm over the last hidden layer's (over the output layer's
            when there is one hidden layer). The output layer is left out of the ratio: its
            gradient is scaled by the loss and the last activations, not by the depth the
            gradient has travelled (with skips the activations grow, and so does it).
        verdict: ``"vanishing"``, ``"exploding"`` or ``"healthy"``.
        message: the one-line verdict in words.

    ``str(result)`` prints one log-scale bar per layer and the verdict.

    Example::

        result = vanishing(depth=8, activation="sigmoid")
        result.verdict             # "vanishing"
        result.norms[0] / result.norms[-2]
    """

    config: dict
    names: list
    norms: list
    ratio: float
    verdict: str
    message: str

    def to_dict(self) -> dict:
        """``{"config", "layers": [{"layer", "name", "grad_norm"}], "ratio", "verdict",
        "message"}``, plain data."""
        return {"config": dict(self.config), "layers": [
            {"layer": i + 1, "name": n, "grad_norm": g}
            for i, (n, g) in enumerate(zip(self.names, self.norms, strict=True))],
            "ratio": self.ratio, "verdict": self.verdict, "message": self.message}

    def __str__(self) -> str:
        c = self.config
        skips = ", skip connections" if c["residual"] else ""
        lines = ["Gradient norm of each layer's weights after one backward pass through a deep "
                 "MLP:",
                 f"{c['depth']} Linear layers, {c['activation']}{skips}, width {c['width']}, "
                 f"{c['init']} init, batch {c['batch']}, seed {c['seed']}; random data, MSE loss"]
        positive = [g for g in self.norms if g > 0 and math.isfinite(g)]
        if positive:
            lo = math.floor(math.log10(min(positive)))
            hi = math.ceil(math.log10(max(positive)))
            if hi - lo < 1:
                hi = lo + 1
            lines.append(f"  layer  ‖dL/dW‖       bar: log scale from 1e{lo:+03d} to 1e{hi:+03d} "
                         f"({(hi - lo) / _BAR_WIDTH:.2g} decades per #)")
        else:
            lo = hi = 0
            lines.append("  layer  ‖dL/dW‖")
        for i, g in enumerate(self.norms):
            if g > 0 and math.isfinite(g):
                n = max(1, round((math.log10(g) - lo) / (hi - lo) * _BAR_WIDTH))
                bar = "#" * n
            else:
                bar = "(zero)" if g == 0 else "(not finite)"
            tag = "  (output)" if i == len(self.norms) - 1 else ""
            lines.append(f"  {i + 1:>5}  {g:<12.3e}  {bar}{tag}")
        lines.append(textwrap.fill(f"verdict: {self.message}", width=100,
                                   subsequent_indent="         "))
        return "\n".join(lines)


def vanishing(depth: int = 8, activation: str = "sigmoid", init: str | None = None,
              residual: bool = False, width: int = 32, batch: int = 64,
              seed: int = 0) -> VanishingResult:
    """Measure the weight-gradient norm of every layer of a deep MLP, one backward pass.

    Args:
        depth: number of Linear layers, the output layer included (2 to
            :data:`MAX_DEPTH`).
        activation: a name in ``backprop.train.experiment.ACTIVATIONS`` (sigmoid, tanh,
            relu, leaky_relu, gelu, elu, softplus, silu); after every hidden layer.
        init: ``"default"`` (nn.Linear's own, PyTorch's), ``"he"`` (Kaiming normal for
            ReLU), ``"xavier"`` (Glorot normal) or ``"small"`` (N(0, 0.01²)); biases are
            zero except with ``"default"``. ``None`` means ``"default"``.
        residual: wrap each hidden layer as x + f(W·x + b) (``nn.Residual``).
        width: units of every hidden layer (the input has ``width`` features too), at most
            :data:`MAX_WIDTH`; depth × width² at most :data:`MAX_PARAMETERS`.
        batch: samples in the random batch, at most :data:`MAX_BATCH`; batch × width ×
            depth at most :data:`MAX_ACTIVATIONS`.
        seed: seeds the weights and the data; the global random state is left alone.

    The network is float64 so that even tiny gradients are measured, not underflowed;
    the loss is the MSE between the one output and random normal targets.

    Example::

        r = vanishing(depth=8, activation="sigmoid")
        r.ratio        # first layer's gradient norm / last layer's, far below 1
        print(r)
    """
    act = activation.replace("-", "_") if isinstance(activation, str) else activation
    if act not in ACTIVATIONS:
        raise ValueError(f"vanishing: unknown activation {activation!r}; choose one of "
                         f"{', '.join(ACTIVATIONS)}")
    init = "default" if init is None else init
    if init not in INITS:
        raise ValueError(f"vanishing: unknown init {init!r}; choose one of {', '.join(INITS)}")
    for name, value, least, most in (("depth", depth, 2, MAX_DEPTH),
                                     ("width", width, 1, MAX_WIDTH),
                                     ("batch", batch, 1, MAX_BATCH)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"vanishing: {name} must be an int >= {least}, got {value!r}")
        if value > most:
            raise ValueError(f"vanishing: {name} {value:,} is over the limit of {most:,}")
    n_params = depth * width * width
    if n_params > MAX_PARAMETERS:
        raise ValueError(f"vanishing: depth {depth:,} × width {width:,}² is {n_params:,} weights; "
                         f"the limit is {MAX_PARAMETERS:,}")
    n_values = batch * width * depth
    if n_values > MAX_ACTIVATIONS:
        raise ValueError(f"vanishing: batch {batch:,} × width {width:,} × depth {depth:,} is "
                         f"{n_values:,} activation values; the limit is {MAX_ACTIVATIONS:,}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"vanishing: seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"vanishing: seed must be an int >= 0, got {seed!r}")

    gen = _random.Generator(int(seed))
    saved = _random.get_rng_state()
    try:  # building layers draws from the global generator; leave it as it was
        model = build_mlp([width] * depth + [1], act)
    finally:
        _random.set_rng_state(saved)
    model = model.to(_dt.float64)
    linears = [m for m in model.modules() if isinstance(m, Linear)]
    for lin in linears:
        _initialise(lin, init, act, gen)
    if residual:
        model = _with_skips(model)

    rng = gen.np
    x = _tensor(rng.standard_normal((batch, width)), dtype=_dt.float64)
    y = _tensor(rng.standard_normal((batch, 1)), dtype=_dt.float64)
    with enable_grad():
        loss = MSELoss()(model(x), y)
        loss.backward()

    named = {id(p): n for n, p in model.named_parameters()}
    names = [named[id(lin.weight)] for lin in linears]
    grads = [lin.weight.grad for lin in linears]  # (every layer is on the loss's path)
    norms = [0.0 if g is None else float(np.linalg.norm(g._data)) for g in grads]
    last = norms[-2] if len(norms) > 2 else norms[-1]
    ratio = norms[0] / last if last > 0 else (math.nan if norms[0] == 0 else math.inf)
    ref = "the last hidden layer's" if len(norms) > 2 else "the output layer's"
    verdict, message = _verdict(ratio, max(norms), ref, act, init, residual)
    config = {"depth": depth, "activation": act, "init": init, "residual": bool(residual),
              "width": width, "batch": batch, "seed": int(seed)}
    return VanishingResult(config, names, norms, ratio, verdict, message)


def _initialise(lin, init: str, act: str, gen) -> None:
    if init == "default":
        # nn.Linear's own scheme, drawn from our seeded generator.
        _init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=gen)
        bound = 1 / math.sqrt(lin.in_features)
        _init.uniform_(lin.bias, -bound, bound, generator=gen)
        return
    if init == "he":
        _init.kaiming_normal_(lin.weight, nonlinearity="relu", generator=gen)
    elif init == "xavier":
        _init.xavier_normal_(lin.weight, generator=gen)
    else:
        _init.normal_(lin.weight, 0.0, SMALL_STD, generator=gen)
    _init.zeros_(lin.bias)


def _with_skips(model: Sequential) -> Sequential:
    """Wrap each (Linear, activation) pair but the output layer as x + f(W·x + b)."""
    mods = list(model.children())
    blocks = [Residual(Sequential(mods[i], mods[i + 1])) for i in range(0, len(mods) - 1, 2)]
    return Sequential(*blocks, mods[-1])


def _verdict(ratio: float, largest: float, ref: str, act: str, init: str,
             residual: bool) -> tuple:
    if math.isnan(ratio) or largest < TINY_GRAD_NORM:
        return "vanishing", (f"vanishing everywhere: the largest gradient norm is "
                             f"{largest:.2g}, so no layer learns; the signal does not get "
                             f"through (initial weights too small, or dead units: try the he "
                             f"or xavier init)")
    if not math.isfinite(ratio) or ratio > EXPLODING_RATIO:
        if math.isfinite(ratio):
            size = f"{ratio:.2g} times {ref} ({math.log10(ratio):.1f} orders of magnitude larger)"
        else:
            size = f"non-zero while {ref} is zero"
        return "exploding", (f"exploding: the first layer's gradient is {size}; smaller "
                             f"initial weights or gradient clipping would tame it")
    if ratio < VANISHING_RATIO:
        decades = -math.log10(ratio) if ratio > 0 else math.inf
        advice = []
        if act in ("sigmoid", "tanh"):
            advice.append("relu with --init he")
        elif init != "he":
            advice.append("--init he")
        if not residual:
            advice.append("--residual")
        tip = f"; try {' or '.join(advice)}" if advice else ""
        return "vanishing", (f"vanishing: the first layer's gradient is {ratio:.2g} of "
                             f"{ref} ({decades:.1f} orders of magnitude smaller), so the early "
                             f"layers barely learn{tip}")
    return "healthy", (f"healthy: the first layer's gradient is {ratio:.2g} times "
                       f"{ref} (within two orders of magnitude), so every layer learns")
