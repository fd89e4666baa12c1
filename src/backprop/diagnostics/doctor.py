"""The doctor: turns a run's diagnostics readings into findings written in plain words.

:func:`diagnose` reads what a :class:`~backprop.diagnostics.Monitor` recorded (gradient
and weight norms, update-to-weight ratios, activation statistics, gradient noise,
the first non-finite value) and, optionally, the training :class:`~backprop.train.History`,
and runs one small rule per known problem. Each rule that fires gives a :class:`Finding`:
what was seen (the numbers and the layers), why it matters and what to try.

The rules are deliberately conservative: a healthy run should get a clean report.
They look at medians over the last few recorded steps rather than at single readings,
because one mini-batch can be unusual. Every threshold is a named constant below,
with the reasoning behind it.

Example::

    from backprop.diagnostics import Monitor, diagnose

    monitor = Monitor(model)
    fit(model, loss_fn, optimizer, loader, epochs=5, callbacks=[monitor])
    report = diagnose(monitor.readings)
    print(report)                    # one block per finding, or "No problems found ..."
    "vanishing_gradients" in report  # True or False
"""
from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from backprop.serialization import NONFINITE_WORDS, json_safe
from backprop.utils._named import NamedRows

__all__ = ["RULES", "SEVERITIES", "Finding", "Report", "diagnose", "divergence_reference",
           "lab_wording", "loss_diverged", "pytorch_wording"]

#: Severities, most serious first; a :class:`Report` lists its findings in this order.
#: "error": training is broken and will not recover by itself; "warning": training
#: works badly or wastes effort; "info": worth knowing, nothing is wrong.
SEVERITIES = ("error", "warning", "info")

# -- windows -------------------------------------------------------------------------------
#: Rules about "now" take the median over this many of the latest recorded steps: enough
#: to outvote one unusual mini-batch, few enough to describe the current state of training.
RECENT_STEPS = 5
#: A persistent problem must be seen in at least this many recorded steps (one reading
#: could be one odd batch).
MIN_STEPS = 2
#: Trends (growth, flatness, rises) compare the median of the first this-many readings
#: with the median of the last this-many.
TREND_WINDOW = 3

# -- vanishing gradients --------------------------------------------------------------------
#: An earlier layer's weight-gradient norm this many times below the last layer's. Two
#: orders of magnitude: with the weight-gradient norms of a healthy network within about
#: a factor of ten of each other (layer sizes alone account for a few times), a factor
#: of 100 means the earlier layers learn at least 100 times slower than the last.
VANISHING_RATIO = 100.0
#: Four orders of magnitude: the early layers practically do not learn at all.
VANISHING_SEVERE_RATIO = 1e4

# -- exploding gradients --------------------------------------------------------------------
#: Total gradient norm growth (median of the last readings over the median of the first)
#: that counts as exploding. Healthy runs that start from a small initialisation see their
#: gradient norm grow ten- or a hundred-fold as the weights grow; a thousand-fold is not that.
EXPLODING_GROWTH = 1e3
#: A total gradient norm this large is exploding whatever its history: common clipping
#: thresholds are around 1 (``clip_grad_norm=1.0``), and losses that are means over a batch
#: give gradient norms of order 0.01 to 10 in a well-scaled network.
EXPLODING_NORM = 1e4

# -- divergence -----------------------------------------------------------------------------
#: THE divergence criterion, one for every surface (the doctor's finding and the lab's
#: banner, :func:`loss_diverged`): a loss this many times its reference, the larger of the
#: untrained network's loss and the loss of guessing (:func:`divergence_reference`). Neither
#: moves while training runs, so no change of a setting can raise the bar a blow-up must
#: cross. A loss five times worse than guessing (5.5 for three classes) is no longer a
#: network that learns: the steps overshoot. The loss judged must be a steady one: the whole
#: training set's (the lab) or the median of several mini-batch losses (the doctor).
DIVERGENCE_FACTOR = 5.0
#: The loss rising this many times above its lowest (a median of a few readings) is a
#: blow-up by orders of magnitude, not mini-batch noise.
DIVERGENCE_RISE = 100.0
#: One mini-batch loss this many times the reference is a spike (a single reading is noisy,
#: so it needs twice DIVERGENCE_FACTOR's margin); it marks where a divergence began, and
#: with a loss that stays worse than the start it is one (DIVERGENCE_WORSE_THAN_START).
DIVERGENCE_ABOVE_START = 10.0
#: ... or staying this many times above where it started while the steps overshoot (a loss
#: ten times the start at some step, or an update ratio of LR_TOO_HIGH_RATIO): the network
#: does worse than an untrained one, which at least guesses evenly. A run that learns
#: never ends above its untrained loss; 20% keeps mini-batch noise out.
DIVERGENCE_WORSE_THAN_START = 1.2
#: An update ratio (||step|| / ||weights||) of 500 times Karpathy's ~1e-3: one step moves
#: the weights by half their size, so it jumps far over the minimum it aims at. (Healthy
#: runs stay under a few percent; a stuck sigmoid network with SGD was seen near 20%.)
LR_TOO_HIGH_RATIO = 0.5

# -- learning rate too low ------------------------------------------------------------------
#: Karpathy's rule of thumb ("A Recipe for Training Neural Networks", 2019, and CS231n):
#: each step should change the weights by about 1e-3 of their size. Far below that (two
#: orders of magnitude) the weights hardly move.
HEALTHY_UPDATE_RATIO = 1e-3
LR_TOO_LOW_RATIO = 1e-5
#: "Flat" loss: over the whole recorded run, the loss fell by less than this fraction of
#: where it started. (A run whose learning rate decayed at the end after learning has a
#: tiny update ratio too, but its loss is not flat over the run.)
FLAT_LOSS_CHANGE = 0.05

# -- dead ReLUs -----------------------------------------------------------------------------
#: Activation kinds whose units can die: ReLU outputs exactly 0 with a zero gradient for
#: every negative input. (Leaky ReLU, ELU, GELU and softplus still pass a gradient there.)
DEAD_KINDS = ("relu",)
#: More than half of a layer's units silent for a whole batch, at the latest readings.
DEAD_FRACTION = 0.5
#: Below this batch size a healthy unit is often silent for a whole batch by chance (a unit
#: that fires for one sample in five is silent for 8 samples with probability 0.8^8 = 17%,
#: for 2 samples 64%), so the dead fraction of small batches says little.
DEAD_MIN_BATCH = 8

# -- saturated units ------------------------------------------------------------------------
SATURATING_KINDS = ("sigmoid", "tanh")
#: More than half of a layer's outputs where the derivative is under 1% of its peak
#: (the monitor's definition of saturated): most of the layer passes back almost nothing.
SATURATED_FRACTION = 0.5
#: Saturation only holds training back while there is something left to learn: once the
#: loss is under this fraction of where it started, saturated tanh/sigmoid units are a
#: network that has become sure of its features (trained tanh classifiers commonly sit
#: near +-1), not one that cannot learn.
SATURATED_LEARNED = 0.1

# -- poor initialisation --------------------------------------------------------------------
#: Activation kinds whose outputs are compared across depth (the hidden activations).
HIDDEN_KINDS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "silu")
#: The activation std changing by this factor between the first and the last hidden
#: layer at initialisation. Glorot & Bengio (2010) and He et al. (2015) choose the init
#: scale so that it stays about constant with depth; a factor of ten is far from that.
POOR_INIT_FACTOR = 10.0
#: From this factor on, a warning rather than a note: the signal reaching the last
#: hidden layer is 100 times too small or too large.
POOR_INIT_SEVERE_FACTOR = 100.0
#: Initialisation is judged at the first recorded step, if it is one of the first few.
POOR_INIT_MAX_STEP = 10

# -- overfitting ----------------------------------------------------------------------------
#: Epochs since the best validation loss (the usual early-stopping patience is 3 to 10;
#: a few epochs of a validation loss that oscillates with momentum SGD are not a trend).
OVERFIT_PATIENCE = 5
#: The validation loss must have risen at least this fraction above its best, and the
#: training loss fallen at least this fraction since that epoch: smaller changes are
#: noise of the validation set and of the epoch means.
OVERFIT_RISE = 0.05
#: ... and the validation loss must end at least this fraction above the training loss: a
#: network that memorises does better on what it has seen than on new examples.
OVERFIT_GAP = 0.1
#: ... and the rise must give back at least this fraction of what the validation loss had
#: gained from the first epoch to its best. A network at 100% accuracy whose validation loss
#: went from 0.0027 to 0.0031 is, for any practical purpose, still at its best: relative
#: changes of a loss that is almost zero are noise of the validation set, not memorising.
OVERFIT_MIN_GIVEN_BACK = 0.05

# -- gradient noise (McCandlish et al., 2018, "An Empirical Model of Large-Batch Training")
#: With B_noise the noise scale, steps S and samples E to reach a loss follow
#: S = S_min (1 + B_noise / B) and E = E_min (1 + B / B_noise). At B = B_noise / 10 a run
#: takes 11 times the fewest possible steps (batch too small); at B = 10 B_noise it uses
#: 11 times the fewest possible samples (compute wasted on a batch that is too large).
NOISE_FACTOR = 10.0
#: Noise readings needed: each one is an estimate from a few batches, and noisy itself.
NOISE_MIN_READINGS = 3
#: A noisy gradient only calls for action when it holds progress back: the loss over the
#: last third of the recorded run improved by less than this fraction on the third before,
NOISE_PROGRESS = 0.05
#: ... while still at least this fraction of where it started (a run that got its loss far
#: down has converged: the noise scale grows by itself near a minimum, where |G| -> 0),
NOISE_HIGH_LOSS = 0.5
#: ... and with steps that are not small (the largest layer update ratio at least
#: HEALTHY_UPDATE_RATIO): steps of normal size that go nowhere are noise. (Tiny steps on a
#: plateau also give a large B_noise, because |G| is tiny; that is not noise's fault.)
#: B_noise means nothing when the gradients themselves are broken: the noise rules stay
#: quiet when one of these is found (its advice comes first).
NOISE_MASKED_BY = ("divergence", "exploding_gradients", "vanishing_gradients", "dead_relus",
                   "saturated_units", "lr_too_low")
#: An infinite (or NaN) B_noise says only that the mean gradient is lost in the noise: near
#: the minimum of a model that cannot do better, |G| -> 0 whatever the batch, so "use a
#: larger batch" would be wrong. The noise rules speak only on a finite median estimate.

# -- underfitting ---------------------------------------------------------------------------
#: The loss has stopped improving (as for the noise rule: the last third of the run no
#: better than the third before) while still at least this fraction of the loss of guessing
#: (the untrained network's loss when guessing's is unknown): far above what the data
#: allows for any model that learned its pattern.
UNDERFIT_HIGH_LOSS = 0.5
#: ... while the mean gradient (the noise-corrected |G| of the recent noise readings, else
#: the recent gradient norm) is at most this fraction of the early gradient norm: the
#: optimiser has found the best this model can do, so a larger batch or another learning
#: rate will not help; the model is too simple (e.g. no hidden layer on the spiral).
UNDERFIT_GRAD_FALL = 0.25
#: Problems that explain a stalled loss better (their advice comes first). A finite noise
#: scale far above the batch (gradient_noise) means the mean gradient is small only next to
#: the noise of tiny batches (batch 1 at a large step): the batch is at fault, not the model.
UNDERFIT_MASKED_BY = ("divergence", "exploding_gradients", "vanishing_gradients", "dead_relus",
                      "saturated_units", "lr_too_low", "gradient_noise")

#: Why each problem matters, in plain words (printed in each finding's "Why" line).
WHY = {
    "vanishing_gradients": (
        "Each layer's weights move in proportion to their gradient. When the gradient "
        "shrinks on its way back through the layers, the early layers barely change, so "
        "the network cannot learn the low-level features the rest depends on."),
    "exploding_gradients": (
        "A step moves the weights by the learning rate times the gradient. A gradient "
        "that grows out of bounds makes steps far too large, which throws the weights "
        "away from anything learned and usually ends in NaN."),
    "divergence": (
        "Training works while each step makes the loss a little smaller. Steps that are too "
        "large jump over the valley the loss lies in and land higher up the other side, "
        "again and again: the loss grows, often until it overflows to NaN/Inf, and the "
        "weights stop meaning anything."),
    "lr_too_low": (
        "When each step changes the weights by a tiny fraction of their size, training "
        "still goes the right way but needs thousands of times more steps than it should; "
        "a flat loss shows nothing is being learned in the time available."),
    "dead_relus": (
        "A ReLU unit whose input is negative for every example outputs 0 and passes back "
        "a zero gradient, so its weights never change again: it is dead, and the layer "
        "works with fewer units than it has."),
    "saturated_units": (
        "Sigmoid and tanh are flat far from 0: there their derivative is almost zero, so "
        "a saturated unit passes back almost no gradient and stops learning."),
    "poor_initialisation": (
        "A good initialisation keeps the size of the signal about the same from layer to "
        "layer. If it shrinks or grows with depth, the deep layers see almost nothing or "
        "overflow, and so do the gradients going back."),
    "overfitting": (
        "The training loss measures the examples the network has seen; the validation "
        "loss measures new ones. When the first falls and the second rises, the network "
        "is memorising its training examples instead of learning what generalises."),
    "gradient_noise": (
        "Each step follows the gradient of one mini-batch, an estimate of the true "
        "gradient. When the batch is much smaller than the gradient noise scale, the noise "
        "dominates: steps partly cancel out and progress is slow for the learning rate."),
    "underfitting": (
        "A model can only fit patterns it is able to express: a network without hidden "
        "layers draws straight boundaries, too few neurons draw too simple ones. When the "
        "optimiser has reached the best such a model can do, its gradient is near zero and "
        "training stops improving, however long it runs."),
    "batch_too_large": (
        "A mini-batch gradient is already accurate once the batch is larger than the "
        "gradient noise scale. Beyond that, a bigger batch costs more compute per step "
        "without making the steps any better."),
}


# -- findings and the report ----------------------------------------------------------------
@dataclass
class Finding:
    """One problem the doctor found: what was seen, the evidence, and what to try.

    Args:
        name: a stable id, e.g. ``"vanishing_gradients"`` (see :data:`RULES`).
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        summary: what was seen, in plain words with the numbers and layer names.
        evidence: the numbers behind the summary (plain values, JSON-friendly).
        advice: what to try.
        layers: the layers involved (module names), earliest first.

    Example::

        f = Finding("dead_relus", "warning", "layers.1: 80% of units never fire",
                    {"dead_fraction": {"layers.1": 0.8}}, "Try LeakyReLU.", ["layers.1"])
        print(f)
    """

    name: str
    severity: str
    summary: str
    evidence: dict = field(default_factory=dict)
    advice: str = ""
    layers: list = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Finding: name must be a non-empty string, got {self.name!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding: severity must be one of {', '.join(SEVERITIES)}; got "
                             f"{self.severity!r}")
        self.evidence = dict(self.evidence)
        self.layers = list(self.layers)

    @property
    def why(self) -> str:
        """Why this kind of problem matters (empty for names the doctor does not know)."""
        return WHY.get(self.name, "")

    def to_dict(self) -> dict:
        """The finding as plain JSON values (non-finite floats as "nan"/"inf"/"-inf")."""
        return {"name": self.name, "severity": self.severity, "summary": self.summary,
                "evidence": json_safe(self.evidence), "advice": self.advice,
                "layers": list(self.layers), "why": self.why}

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _lines(self, width: int = 88) -> list:
        lines = [f"{self.severity.upper()}: {self.name.replace('_', ' ')}"]
        for label, text in (("Seen", self.summary), ("Why", self.why), ("Try", self.advice),
                            ("Layers", ", ".join(self.layers))):
            if text:
                lines.append(textwrap.fill(text, width, initial_indent=f"  {label + ':':8}",
                                           subsequent_indent=" " * 10))
        return lines


class Report(NamedRows, Sequence):
    """The doctor's findings, most serious first; a list-like of :class:`Finding`.

    Args:
        findings: the findings, in any order (they are sorted by severity, keeping the
            order of the rules among equals).
        steps: how many recorded steps were examined (printed in the summary line).

    Example::

        report = diagnose(monitor.readings)
        print(report)
        report.names()               # ["divergence", "exploding_gradients"]
        "divergence" in report       # True
        report["divergence"].advice  # a finding by name (or report[0] by position)
    """

    _rows_attr, _noun = "_findings", "finding"

    def __init__(self, findings=(), *, steps: int = 0):
        findings = list(findings)
        for f in findings:
            if not isinstance(f, Finding):
                raise TypeError(f"Report: findings must be Finding objects, got "
                                f"{type(f).__name__}")
        self._findings = sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
        self.steps = int(steps)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Report(self._findings[index], steps=self.steps)
        return super().__getitem__(index)  # a position, or a finding's name

    def __eq__(self, other) -> bool:
        if not isinstance(other, Report):
            return NotImplemented
        return self._findings == other._findings and self.steps == other.steps

    @property
    def worst(self) -> str | None:
        """The most serious severity found ("error", "warning", "info"), or None."""
        return self._findings[0].severity if self._findings else None

    def to_dict(self) -> dict:
        """``{"steps": N, "findings": [finding.to_dict(), ...]}`` of plain JSON values."""
        return {"steps": self.steps, "findings": [f.to_dict() for f in self._findings]}

    def __repr__(self) -> str:
        inside = ", ".join(f"{f.name} ({f.severity})" for f in self._findings)
        return f"Report({self.steps} steps: {inside or 'no findings'})"

    def __str__(self) -> str:
        recorded = _plural(self.steps, "recorded step")
        if not self._findings:
            if self.steps == 0:
                return ("No problems found, but no steps were recorded, so there was "
                        "nothing to check.")
            return f"No problems found in {recorded}."
        counts = ", ".join(_plural(n, s) for s in SEVERITIES
                           if (n := sum(f.severity == s for f in self._findings)))
        blocks = [(f"The doctor found {_plural(len(self), 'problem')} in {recorded} "
                   f"({counts}):")]
        for number, f in enumerate(self._findings, 1):
            lines = f._lines()
            blocks.append("\n".join([f"{number}. {lines[0]}"] + lines[1:]))
        return "\n\n".join(blocks)


# -- reading the run ------------------------------------------------------------------------
class _Run:
    """What the rules read, normalised: the readings' records and the history's.

    ``steps`` holds the recorded step records (oldest first); ``limit`` (a step number)
    hides records from that step on, so rules about the state of the network look only
    at the steps before a divergence.
    """

    def __init__(self, readings, history):
        self.meta = dict(getattr(readings, "meta", None) or {})
        self.all_steps = [r for r in (getattr(readings, "steps", None) or [])
                          if isinstance(r, dict)]
        self.steps = self.all_steps
        self.limit_step = None
        self.epochs_readings = list(getattr(readings, "epochs", None) or [])
        self.nonfinite = getattr(readings, "nonfinite", None)
        # NOTE: a History's len() counts epochs, so "if history" would skip one with none.
        self.history_steps = list(getattr(history, "steps", None) or [])
        self.history_epochs = list(getattr(history, "epochs", None) or [])
        self._readings = readings

    def limit(self, step) -> None:
        if isinstance(step, int):
            self.limit_step = step
            self.steps = [r for r in self.all_steps if _step_of(r) < step]

    def recent(self, n=RECENT_STEPS, key=None) -> list:
        """The last ``n`` recorded steps (those that have ``key``, when given)."""
        records = [r for r in self.steps if key is None or r.get(key)]
        return records[-n:]

    def weight_names(self) -> list:
        """Weight parameter names in model order (the ".weight" tensors)."""
        getter = getattr(self._readings, "layer_weight_names", None)
        names = list(getter()) if callable(getter) else []
        if names:
            return names
        names = list(self.meta.get("params") or [])
        if not names:
            for r in self.all_steps:
                for name in (r.get("params") or {}):
                    if name not in names:
                        names.append(name)
        return [n for n in names if n == "weight" or n.endswith(".weight")]

    def layer_order(self) -> list:
        """Module names with activation readings, in forward order."""
        names = list(self.meta.get("layers") or [])
        for r in self.all_steps:
            for name in (r.get("activations") or {}):
                if name not in names:
                    names.append(name)
        return names

    def batch_size(self):
        b = _finite(self.meta.get("batch_size"))
        if b is None:
            for r in reversed(self.all_steps):
                noise = r.get("noise") or {}
                b = _finite(noise.get("batch_size"))
                if b is not None:
                    break
        return int(b) if b is not None and b > 0 else None

    def losses(self) -> list:
        """``[(step, loss, lr)]`` of every step with a loss: the history's (every step) when
        it has them, else the recorded steps'. Built once per ``diagnose`` (several rules
        ask, and a long history has thousands of steps); treat it as read-only."""
        cached = self.__dict__.get("_losses")
        if cached is not None:
            return cached
        self._losses = self._build_losses()
        return self._losses

    def _build_losses(self) -> list:
        rows = [(_step_of(r), _num(r.get("loss")), _num(r.get("lr"))) for r in self.history_steps]
        rows = [row for row in rows if row[1] is not None]
        if not rows:
            rows = [(_step_of(r), _num(r.get("loss")), _num(r.get("lr"))) for r in self.steps]
            rows = [row for row in rows if row[1] is not None]
        return rows

    def epochs(self) -> list:
        return self.history_epochs or self.epochs_readings

    def lr_near(self, step):
        """The learning rate at ``step`` (or the latest known before it)."""
        known = [(s, lr) for s, _, lr in self.losses() if lr is not None]
        known += [(_step_of(r), _finite(r.get("lr"))) for r in self.all_steps
                  if _finite(r.get("lr")) is not None]
        known.sort(key=lambda row: row[0])
        before = [lr for s, lr in known if step is None or s <= step]
        if before:
            return before[-1]
        return known[0][1] if known else _finite(self.meta.get("lr"))


# -- the rules ------------------------------------------------------------------------------
def _vanishing_gradients(run: _Run):
    """Early-layer weight gradients orders of magnitude below the last layer's, persistently."""
    names = run.weight_names()
    recent = run.recent(key="params")
    if len(names) < 2 or len(recent) < MIN_STEPS:
        return None
    last = names[-1]
    ratios, norms = {}, {}
    for name in names[:-1]:
        per_step, own = [], []
        for r in recent:
            params = r["params"]
            g = _finite((params.get(name) or {}).get("grad_norm"))
            g_last = _finite((params.get(last) or {}).get("grad_norm"))
            # NOTE: an exactly zero gradient is "no gradient at all" (dead units before
            # it, or a parameter the loss does not use), not a vanishing one: skipped.
            if g is None or g_last is None or g <= 0 or g_last <= 0:
                continue
            per_step.append(g_last / g)
            own.append(g)
        if len(per_step) >= MIN_STEPS:
            ratios[_layer(name)] = _median(per_step)
            norms[_layer(name)] = _median(own)
    flagged = [layer for layer, ratio in ratios.items() if ratio >= VANISHING_RATIO]
    if not flagged:
        return None
    first, last_layer = flagged[0], _layer(last)
    ratio = ratios[first]
    steps = [_step_of(r) for r in recent]
    last_norm = _median([_finite((r["params"].get(last) or {}).get("grad_norm"))
                         for r in recent])
    others = (f" {len(flagged) - 1} more of the {len(ratios)} earlier layers are over "
              f"{VANISHING_RATIO:g} times below it too." if len(flagged) > 1 else "")
    summary = (f"Over recorded steps {_span(steps)}, the weight gradient of {_say(first)} (the "
               f"earliest layer affected) was {_times(ratio)} smaller than that of "
               f"{_say(last_layer)}, the last layer: median gradient norm {_g(norms[first])} "
               f"against {_g(last_norm)}.{others}")
    return Finding(
        "vanishing_gradients",
        "error" if ratio >= VANISHING_SEVERE_RATIO else "warning",
        summary,
        {"ratio_to_last": ratios, "grad_norm": norms, "last_layer": last_layer,
         "first_layer": first, "steps": steps, "threshold": VANISHING_RATIO},
        "Use an activation that does not squash the gradient (ReLU or GELU instead of "
        "sigmoid/tanh in hidden layers), an initialisation scaled to the layer size "
        "(nn.init.kaiming_normal_ for ReLU, nn.init.xavier_uniform_ for tanh), fewer layers, "
        "normalisation layers (nn.LayerNorm / nn.BatchNorm1d) or residual connections. "
        "If dead ReLUs are reported too, fix those first: dead units pass no gradient back.",
        flagged)


def _exploding_gradients(run: _Run):
    """A non-finite gradient, a total gradient norm growing >= 1000x, or a huge one."""
    nf = run.nonfinite if isinstance(run.nonfinite, dict) else None
    if nf and nf.get("kind") == "gradient":
        step = nf.get("step")
        detail = f" ({nf['detail']})" if nf.get("detail") else ""
        return Finding(
            "exploding_gradients", "error",
            f"At step {step}, {_nonfinite_what(nf, run)} became non-finite{detail}.",
            {"step": step, "name": nf.get("name"), "detail": nf.get("detail")},
            _EXPLODING_ADVICE, _nonfinite_layers(nf, run))
    # Only the steps before a divergence: once the loss is NaN its gradient is too, which
    # says nothing about the gradients that led there.
    series = [(_step_of(r), _num(r.get("grad_norm"))) for r in run.steps]
    series = [(s, g) for s, g in series if g is not None]
    if not series:
        series = [(_step_of(r), _num(r.get("grad_norm"))) for r in run.history_steps]
        series = [(s, g) for s, g in series if g is not None
                  and (run.limit_step is None or s < run.limit_step)]
    for step, g in series:
        if not math.isfinite(g):
            return Finding(
                "exploding_gradients", "error",
                f"The total gradient norm was {g} at step {step}.",
                {"step": step, "grad_norm": g}, _EXPLODING_ADVICE, [])
    if len(series) < MIN_STEPS:
        return None
    norms = [g for _, g in series]
    steps = [s for s, _ in series]
    late = _median(norms[-TREND_WINDOW:])
    if late >= EXPLODING_NORM:
        return Finding(
            "exploding_gradients", "warning",
            f"The total gradient norm was {_g(late)} (median of recorded steps "
            f"{_span(steps[-TREND_WINDOW:])}), over {_g(EXPLODING_NORM)}: far larger than a "
            f"well-scaled network has.",
            {"grad_norm": late, "steps": steps[-TREND_WINDOW:], "threshold": EXPLODING_NORM},
            _EXPLODING_ADVICE, [])
    if len(series) >= 2 * TREND_WINDOW:
        early = _median(norms[:TREND_WINDOW])
        if early > 0 and late / early >= EXPLODING_GROWTH:
            return Finding(
                "exploding_gradients", "warning",
                f"The total gradient norm grew {_times(late / early)} over the run, from "
                f"{_g(early)} (steps {_span(steps[:TREND_WINDOW])}) to {_g(late)} (steps "
                f"{_span(steps[-TREND_WINDOW:])}).",
                {"grad_norm_start": early, "grad_norm_end": late, "growth": late / early,
                 "threshold": EXPLODING_GROWTH},
                _EXPLODING_ADVICE, [])
    return None


_EXPLODING_ADVICE = (
    "Clip the gradient norm (clip_grad_norm=1.0 in fit/Trainer, --clip 1 with backprop "
    "train, or nn.utils.clip_grad_norm_), lower the learning rate, and check the initialisation "
    "(weights too large make gradients grow with depth). Inputs and regression targets "
    "on very different scales also make gradients huge: standardise them.")


def _divergence(run: _Run):
    """The loss (or the weights) became NaN/Inf, or the loss rose by orders of magnitude."""
    rows = run.losses()
    nf = run.nonfinite if isinstance(run.nonfinite, dict) else None
    first_bad = next(((s, loss) for s, loss, _ in rows if not math.isfinite(loss)), None)
    bad = None  # (step, what happened, layers)
    if nf and nf.get("kind") in ("loss", "parameter", "activation", "gradient"):
        what = f"{_nonfinite_what(nf, run)} became {_nonfinite_word(nf.get('detail'))}"
        bad = (nf.get("step"), what, _nonfinite_layers(nf, run))
    if first_bad is not None and (bad is None or first_bad[0] < (bad[0] or 0)):
        bad = (first_bad[0], f"the loss became {first_bad[1]}", [])
    finite = [(s, loss) for s, loss, _ in rows
              if math.isfinite(loss) and (bad is None or s < bad[0])]
    batch = run.batch_size()
    if bad is not None:
        step, what, layers = bad
        last = finite[-1] if finite else None
        lr = run.lr_near(step)
        last_text = (f"; the last finite loss was {_g(last[1])} at step {last[0]}"
                     if last else "")
        evidence = {"step": step, "lr": lr, "batch_size": batch,
                    "last_finite_loss": last[1] if last else None,
                    "last_finite_step": last[0] if last else None}
        if nf:
            evidence["nonfinite"] = dict(nf)
        return Finding("divergence", "error",
                       f"At step {step}, {what} ({_setting(lr, batch)}){last_text}.",
                       evidence, _divergence_advice(lr), layers)

    # No NaN: a rise by orders of magnitude, or a loss that stays worse than the untrained
    # network's while the steps overshoot; judged on medians of several readings.
    if len(finite) < 2 * TREND_WINDOW:
        return None
    steps = [s for s, _ in finite]
    values = [loss for _, loss in finite]
    start = values[0]  # the untrained network's loss: step 1 is measured before any update
    window = max(RECENT_STEPS, min(len(values) // 10, 50))
    now = _median(values[-window:])
    if start <= 0 or now <= start:
        return None
    reference = divergence_reference(start, _finite(run.meta.get("chance_loss")))
    medians = [_median(values[i:i + TREND_WINDOW]) for i in range(len(values) - TREND_WINDOW + 1)]
    low_index = min(range(len(medians)), key=medians.__getitem__)
    low = medians[low_index]
    peak_index = max(range(len(values)), key=values.__getitem__)
    peak = values[peak_index]
    ratio, ratio_step = _peak_update_ratio(run)
    far_above_low = low > 0 and now >= DIVERGENCE_RISE * low
    far_above_reference = loss_diverged(now, reference)
    spiked = peak >= DIVERGENCE_ABOVE_START * reference
    overshoots = ratio is not None and ratio >= LR_TOO_HIGH_RATIO
    worse = now >= DIVERGENCE_WORSE_THAN_START * start and (spiked or overshoots)
    if not (far_above_low or far_above_reference or worse):
        return None
    # Where it went wrong: the first reading ten times over the start, else the first step
    # that overshot, else the first reading after the lowest point a hundred times over it.
    step = next((s for s, loss in finite if loss >= DIVERGENCE_ABOVE_START * reference), None)
    if step is None and far_above_reference:
        step = next((s for s, loss in finite if loss_diverged(loss, reference)), None)
    if step is None and overshoots:
        step = ratio_step
    if step is None:
        step = next((s for s, loss in finite[low_index:] if loss >= DIVERGENCE_RISE * low),
                    steps[-1])
    lr = run.lr_near(step)
    low_step = steps[low_index + TREND_WINDOW // 2]
    parts = [(f"The loss got worse instead of better: {_g(start)} at step {steps[0]}, now "
              f"{_g(now)} (median of steps {_span(steps[-window:])}), {_times(now / start)} "
              f"where it started")]
    if low < start / 2:
        parts.append(f"its lowest was {_g(low)} around step {low_step}")
    if spiked:
        parts.append(f"it jumped to {_g(peak)} at step {steps[peak_index]}")
    if overshoots:
        parts.append(f"at step {ratio_step} one update changed the weights by {_pct(ratio)} of "
                     f"their size (about {_pct(HEALTHY_UPDATE_RATIO)} is typical)")
    summary = "; ".join(parts) + (f". It went wrong around step {step} "
                                  f"({_setting(lr, batch)}).")
    return Finding("divergence", "error", summary,
                   {"step": step, "lr": lr, "batch_size": batch, "loss_start": start,
                    "lowest_loss": low, "lowest_step": low_step, "peak_loss": peak,
                    "peak_step": steps[peak_index], "loss_now": now,
                    "peak_update_ratio": ratio, "peak_update_step": ratio_step,
                    "last_finite_loss": values[-1], "last_finite_step": steps[-1],
                    "reference_loss": reference},
                   _divergence_advice(lr), [])


def divergence_reference(start_loss, chance_loss=None) -> float:
    """The loss a run's divergence is judged against: the larger of the untrained network's
    loss and the loss of guessing (the best constant prediction: ``log(n_classes)`` for
    balanced cross-entropy, the targets' variance for MSE), when it is known.

    Neither moves while the run trains, so changing a setting (dragging the learning rate
    through many values) never raises the bar. Non-finite or missing values are skipped.

    Example::

        divergence_reference(1.3, math.log(3))    # 1.3
    """
    known = [x for x in (start_loss, chance_loss)
             if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)]
    if not known:
        raise ValueError(f"divergence_reference: needs a finite start or chance loss, got "
                         f"start_loss={start_loss!r}, chance_loss={chance_loss!r}")
    return float(max(known))


def loss_diverged(loss, reference) -> bool:
    """Whether ``loss`` says training diverged: NaN/Inf, or at least
    :data:`DIVERGENCE_FACTOR` times ``reference`` (:func:`divergence_reference`).

    The one criterion of every surface: the doctor applies it to the median of the recent
    mini-batch losses, the lab's banner to the whole training set's loss.

    Example::

        loss_diverged(7.0, math.log(3))     # True: more than 5 x 1.0986
        loss_diverged(0.9, math.log(3))     # False
    """
    loss = float(loss)
    return not math.isfinite(loss) or loss >= DIVERGENCE_FACTOR * float(reference)


def _peak_update_ratio(run: _Run):
    """(largest update ratio of any weight at any recorded step, its step), or (None, None)."""
    best: tuple = (None, None)
    names = set(run.weight_names())
    for r in run.steps:
        for name, reading in (r.get("params") or {}).items():
            ratio = _finite((reading or {}).get("update_ratio")) if name in names else None
            if ratio is not None and (best[0] is None or ratio > best[0]):
                best = (ratio, _step_of(r))
    return best


def _divergence_advice(lr) -> str:
    smaller = f" (try {_g(lr / 10)} instead of {_g(lr)})" if lr else ""
    return ("The learning rate is too high for this batch size. Lower it about ten "
            f"times{smaller} and train again. A larger batch (a less noisy gradient), "
            "gradient clipping (clip_grad_norm=1.0; --clip 1 with backprop train) and a "
            "learning-rate warmup also keep training stable.")


def _lr_too_low(run: _Run):
    """Even the fastest-moving layer's update/weight ratio far below ~1e-3, and a flat loss."""
    names = run.weight_names()
    recent = run.recent(key="params")
    if not names or len(recent) < MIN_STEPS:
        return None
    # Per step, the layer that moved most: if one layer moves at a healthy rate the learning
    # rate is not the problem (the others lack gradient: vanishing, dead units). Layers with
    # no gradient at all are left out: the learning rate cannot move them either way.
    per_step: list = []
    per_layer: dict = {}
    for r in recent:
        ratios = []
        for name in names:
            reading = r["params"].get(name) or {}
            ratio = _finite(reading.get("update_ratio"))
            if ratio is not None and (_finite(reading.get("grad_norm")) or 0) > 0:
                ratios.append(ratio)
                per_layer.setdefault(_layer(name), []).append(ratio)
        if ratios:
            per_step.append(max(ratios))
    if len(per_step) < MIN_STEPS:
        return None
    ratio = _median(per_step)
    if ratio >= LR_TOO_LOW_RATIO:
        return None
    losses = [loss for _, loss, _ in run.losses() if math.isfinite(loss)]
    if len(losses) < 2 * TREND_WINDOW:
        return None  # without a loss we cannot tell "too slow" from "finished"
    start, end = _median(losses[:TREND_WINDOW]), _median(losses[-TREND_WINDOW:])
    change = (start - end) / abs(start) if start else 0.0
    if change >= FLAT_LOSS_CHANGE:
        return None
    lr = run.lr_near(_step_of(recent[-1]))
    lr_text = f" at learning rate {_g(lr)}" if lr is not None else ""
    where = f"recorded steps {_span([_step_of(r) for r in recent])}"
    if ratio > 0:
        moved = (f"Each step changed the weights by at most {_g(ratio)} of their size{lr_text} "
                 f"({where}), {_times(HEALTHY_UPDATE_RATIO / ratio)} less than the "
                 f"~{HEALTHY_UPDATE_RATIO:g} of the usual rule of thumb (Karpathy)")
    else:
        moved = (f"The steps did not change the weights at all{lr_text} ({where}), against "
                 f"~{HEALTHY_UPDATE_RATIO:g} of their size per step in the usual rule of "
                 f"thumb (Karpathy)")
    summary = (f"{moved}, and the loss hardly moved: {_g(start)} at the start, {_g(end)} "
               f"at the end.")
    suggestion = (f" (to about {_g(lr * min(HEALTHY_UPDATE_RATIO / ratio, 1000.0))})"
                  if lr and ratio > 0 else "")
    return Finding(
        "lr_too_low", "warning", summary,
        {"update_ratio": ratio, "update_ratio_by_layer": {k: _median(v) for k, v in
                                                          per_layer.items()},
         "lr": lr, "loss_start": start, "loss_end": end, "threshold": LR_TOO_LOW_RATIO},
        f"Raise the learning rate{suggestion}, aiming for update-to-weight ratios near "
        f"{HEALTHY_UPDATE_RATIO:g}; a learning-rate range test (a short run raising the rate "
        "step by step until the loss gets worse) finds a good value quickly. Adam with "
        "lr=1e-3 is a sound default.", [])


def _dead_relus(run: _Run):
    """A ReLU layer with more than half of its units silent for whole batches, lately."""
    batch = run.batch_size()
    if batch is not None and batch < DEAD_MIN_BATCH:
        return None
    fractions = _recent_activation_medians(run, "dead_fraction", DEAD_KINDS)
    flagged = {layer: f for layer, f in fractions.items() if f > DEAD_FRACTION}
    if not flagged:
        return None
    steps = [_step_of(r) for r in run.recent(TREND_WINDOW, key="activations")]
    parts = ", ".join(f"{_say(layer)} ({_pct(f)})" for layer, f in flagged.items())
    all_dead = [layer for layer, f in flagged.items() if f >= 1.0]
    extra = (f" In {_and(list(map(_say, all_dead)))} no unit fires at all, so nothing flows "
             f"back through {'them' if len(all_dead) > 1 else 'it'} and the layers before "
             f"cannot learn." if all_dead else "")
    return Finding(
        "dead_relus", "error" if all_dead else "warning",
        f"Share of ReLU units that output 0 for every example of the batch (median of "
        f"recorded steps {_span(steps)}): {parts}.{extra}",
        {"dead_fraction": flagged, "steps": steps, "threshold": DEAD_FRACTION,
         "batch_size": batch},
        "Lower the learning rate (a too-large step can push a unit's bias so negative it "
        "never fires again), use LeakyReLU or GELU, which keep a gradient for negative "
        "inputs, initialise with nn.init.kaiming_normal_ and zero (or small positive) biases, "
        "and check that the inputs are standardised.",
        list(flagged))


def _saturated_units(run: _Run):
    """A sigmoid/tanh hidden layer with more than half of its outputs saturated, lately."""
    fractions = _recent_activation_medians(run, "saturated_fraction", SATURATING_KINDS,
                                           skip_output=True)
    flagged = {layer: f for layer, f in fractions.items() if f > SATURATED_FRACTION}
    if not flagged:
        return None
    progress = _loss_progress(run)
    if progress is not None and progress[1] < SATURATED_LEARNED * progress[0]:
        return None  # the network learned: confident units, not stuck ones
    steps = [_step_of(r) for r in run.recent(TREND_WINDOW, key="activations")]
    parts = ", ".join(f"{_say(layer)} ({_pct(f)})" for layer, f in flagged.items())
    loss_text = (f" The loss is still {_g(progress[1])}, against {_g(progress[0])} at the "
                 f"start." if progress is not None else "")
    return Finding(
        "saturated_units", "warning",
        f"Share of sigmoid/tanh outputs in the flat part of the curve, where the derivative "
        f"is under 1% of its peak (median of recorded steps {_span(steps)}): {parts}."
        f"{loss_text}",
        {"saturated_fraction": flagged, "steps": steps, "threshold": SATURATED_FRACTION,
         "loss_start": None if progress is None else progress[0],
         "loss_now": None if progress is None else progress[1]},
        "Scale the initialisation to the layer size (nn.init.xavier_uniform_ for "
        "sigmoid/tanh), standardise the inputs, lower the learning rate, add normalisation "
        "(nn.LayerNorm) before the activation, or use ReLU/GELU in hidden layers.",
        list(flagged))


def _poor_initialisation(run: _Run):
    """Activation std shrinking or growing >= 10x from the first to the last hidden layer at
    the first recorded step (what the initialisation alone sets)."""
    first = next((r for r in run.all_steps if r.get("activations")), None)
    if first is None or _step_of(first) > POOR_INIT_MAX_STEP:
        return None
    acts = first["activations"]
    output = _output_layer(run)
    hidden = [(name, _finite(acts[name].get("std"))) for name in run.layer_order()
              if name in acts and name != output and acts[name].get("kind") in HIDDEN_KINDS]
    hidden = [(name, std) for name, std in hidden if std is not None]
    if len(hidden) < 2:
        return None
    (first_layer, s0), (last_layer, s1) = hidden[0], hidden[-1]
    if s0 <= 0:
        return None  # nothing passes the first layer: dead units, not the init's scale
    factor = s0 / s1 if s1 > 0 else math.inf
    shrinks = factor >= POOR_INIT_FACTOR
    grows = s1 / s0 >= POOR_INIT_FACTOR
    if not (shrinks or grows):
        return None
    change = factor if shrinks else s1 / s0
    direction = "shrinks" if shrinks else "grows"
    step = _step_of(first)
    return Finding(
        "poor_initialisation",
        "warning" if change >= POOR_INIT_SEVERE_FACTOR else "info",
        f"At step {step}, the spread (std) of the activations {direction} {_times(change)} "
        f"with depth: {_g(s0)} after {_say(first_layer)}, {_g(s1)} after {_say(last_layer)} "
        f"({len(hidden)} hidden layers).",
        {"std": dict(hidden), "factor": change, "direction": direction, "step": step,
         "threshold": POOR_INIT_FACTOR},
        ("The initial weights are too small for this depth. " if shrinks else
         "The initial weights are too large for this depth. ") +
        "Initialise each layer for its fan-in: nn.init.kaiming_normal_ (He) before ReLU, "
        "nn.init.xavier_uniform_ (Glorot) before tanh/sigmoid; normalisation layers "
        "(nn.LayerNorm) also keep the scale steady.",
        [first_layer, last_layer])


def _overfitting(run: _Run):
    """Validation loss rising for several epochs since its best while training loss falls."""
    rows = [(r.get("epoch"), _finite(r.get("val_loss")), _finite(r.get("loss")))
            for r in run.epochs()]
    rows = [row for row in rows if row[1] is not None]
    if len(rows) < OVERFIT_PATIENCE + 1:
        return None
    best = min(range(len(rows)), key=lambda i: rows[i][1])
    since = len(rows) - 1 - best
    best_epoch, best_val, best_train = rows[best]
    last_epoch, last_val, last_train = rows[-1]
    if since < OVERFIT_PATIENCE or last_val < best_val * (1 + OVERFIT_RISE):
        return None
    # A network that memorises fits its training examples better than it ever did the
    # validation ones: the training loss ends below the best validation loss. (A network
    # that oscillates, e.g. momentum SGD on small batches, can show a rising validation
    # loss too, but its training loss stays above that.)
    if best_train is None or last_train is None \
            or last_train > best_train * (1 - OVERFIT_RISE) \
            or last_val < last_train * (1 + OVERFIT_GAP) or last_train >= best_val:
        return None
    gained = rows[0][1] - best_val
    if last_val - best_val < OVERFIT_MIN_GIVEN_BACK * gained:
        return None  # still practically at its best
    return Finding(
        "overfitting", "warning",
        f"The validation loss was lowest at epoch {best_epoch} ({_g(best_val)}) and rose to "
        f"{_g(last_val)} by epoch {last_epoch}, while the training loss kept falling "
        f"({_g(best_train)} to {_g(last_train)}).",
        {"best_epoch": best_epoch, "best_val_loss": best_val, "last_epoch": last_epoch,
         "last_val_loss": last_val, "train_loss_at_best": best_train,
         "train_loss_last": last_train},
        f"Keep the weights of epoch {best_epoch}: train with EarlyStopping(patience=3) and "
        f"ModelCheckpoint, which saves the best epoch. To generalise better, get more data "
        f"(or augment it), add weight decay (AdamW, weight_decay=0.01) or dropout, or use a "
        f"smaller network.", [])


def _noise_readings(run: _Run):
    """(median B_noise, batch size, steps) over the recent noise readings, or None."""
    readings = [(_step_of(r), r["noise"]) for r in run.steps if isinstance(r.get("noise"), dict)]
    readings = [(s, n) for s, n in readings if _num(n.get("b_noise")) is not None
                and not math.isnan(_num(n["b_noise"]))][-RECENT_STEPS:]
    if len(readings) < NOISE_MIN_READINGS:
        return None
    batch = _finite(readings[-1][1].get("batch_size")) or run.batch_size()
    if not batch:
        return None
    # A negative |G|^2 estimate means the noise swamps the signal: B_noise is infinite.
    values = [_num(n["b_noise"]) for _, n in readings]
    values = [v if v >= 0 else math.inf for v in values]
    return _median(values), int(batch), [s for s, _ in readings]


def _loss_progress(run: _Run):
    """(the first loss, the median of the latest ones) of the run, or None with too few."""
    values = [loss for _, loss, _ in run.losses() if math.isfinite(loss)]
    if len(values) < 2 * TREND_WINDOW:
        return None
    window = max(RECENT_STEPS, min(len(values) // 10, 50))
    return values[0], _median(values[-window:])


def _loss_stalled(run: _Run):
    """(loss over the last third, loss at the start) when the loss over the last third of the
    run is no better than over the third before, else None."""
    losses = [loss for _, loss, _ in run.losses() if math.isfinite(loss)]
    third = len(losses) // 3
    if third < TREND_WINDOW:
        return None  # too little to tell: assume progress (no finding)
    before, last = _median(losses[-2 * third:-third]), _median(losses[-third:])
    if last > (1 - NOISE_PROGRESS) * before:
        return last, losses[0]
    return None


def _recent_update_ratio(run: _Run):
    """Median over the recent steps of the largest weight update ratio, or None."""
    names = set(run.weight_names())
    per_step = []
    for r in run.recent(key="params"):
        ratios = [_finite((p or {}).get("update_ratio")) for n, p in r["params"].items()
                  if n in names]
        ratios = [x for x in ratios if x is not None]
        if ratios:
            per_step.append(max(ratios))
    return _median(per_step)


def _gradient_noise(run: _Run):
    """Gradient noise scale B_noise much larger than the batch while steps of normal size
    leave a still-high loss where it was: batch too small or learning rate too high."""
    noise = _noise_readings(run)
    if noise is None or noise[0] < NOISE_FACTOR * noise[1]:
        return None
    stalled = _loss_stalled(run)
    if stalled is None or stalled[0] < NOISE_HIGH_LOSS * stalled[1]:
        return None
    ratio = _recent_update_ratio(run)
    if ratio is None or ratio < HEALTHY_UPDATE_RATIO:
        return None
    b_noise, batch, steps = noise
    if not math.isfinite(b_noise):
        return None  # |G| lost in the noise: no batch size to aim for (see NOISE_MASKED_BY)
    size = f"{_times(b_noise / batch)} the batch size of {batch}"
    target = f" (towards {_g(b_noise)} examples, McCandlish et al. 2018)"
    return Finding(
        "gradient_noise", "info",
        f"The gradient noise scale B_noise was {_g(b_noise)} (median of recorded steps "
        f"{_span(steps)}), {size}. The steps are not small (update ratio {_g(ratio)}), yet "
        f"the loss has stopped improving at {_g(stalled[0])} (it started at "
        f"{_g(stalled[1])}): each mini-batch gradient is mostly noise, so the steps go nowhere.",
        {"b_noise": b_noise, "batch_size": batch, "steps": steps, "update_ratio": ratio,
         "loss_now": stalled[0], "loss_start": stalled[1], "threshold": NOISE_FACTOR},
        f"Use a larger batch{target} or lower the learning rate; both make the steps less "
        "noisy (a decaying schedule such as warmup_cosine lowers it as training goes on).",
        [])


def _underfitting(run: _Run):
    """The loss stalled far above what the data allows while the mean gradient fell to near
    zero: the model has reached the best it can do and is too simple for the data."""
    stalled = _loss_stalled(run)
    if stalled is None:
        return None
    now, start = stalled
    chance = _finite(run.meta.get("chance_loss"))
    bar = chance if chance is not None and chance > 0 else start
    if not (bar > 0 and now >= UNDERFIT_HIGH_LOSS * bar):
        return None
    early = _median([_finite(r.get("grad_norm")) for r in run.steps[:TREND_WINDOW]])
    grad, how = _mean_gradient_now(run)
    if early is None or early <= 0 or grad is None or grad > UNDERFIT_GRAD_FALL * early:
        return None
    against = (f"the loss of guessing ({_g(chance)})" if bar == chance
               else f"where it started ({_g(start)})")
    return Finding(
        "underfitting", "warning",
        f"The training loss has stopped improving at {_g(now)}, {_pct(now / bar)} of "
        f"{against}, while the gradient has fallen to {_g(grad)} ({how}) from {_g(early)} "
        f"early in the run: the optimiser has found the best this model can do, and it is "
        f"not good.",
        {"loss_now": now, "loss_start": start, "chance_loss": chance, "grad_now": grad,
         "grad_early": early, "threshold": UNDERFIT_HIGH_LOSS},
        "The model is too simple for this data: give it hidden layers (a network without "
        "one draws only straight boundaries) or more neurons per layer, or input features "
        "that make the pattern simpler (squares, products, sines of the inputs). A larger "
        "batch or another learning rate will not help. If the data itself is this noisy "
        "(classes that overlap), no model can do much better.", [])


def _mean_gradient_now(run: _Run):
    """(the mean gradient's size over the recent steps, how it was measured) or (None, "").

    The noise readings' ``grad_sq_norm`` estimates |G|^2 with the mini-batch noise taken
    out (a negative estimate: |G| is lost in the noise, 0); without them, the recent
    mini-batch gradient norms, which the noise only makes larger.
    """
    estimates = [_num((r["noise"] or {}).get("grad_sq_norm")) for r in run.recent(key="noise")]
    estimates = [x for x in estimates if x is not None and math.isfinite(x)]
    if len(estimates) >= NOISE_MIN_READINGS:
        return (math.sqrt(max(_median(estimates), 0.0)),
                "the mean gradient, mini-batch noise taken out")
    norms = [_finite(r.get("grad_norm")) for r in run.recent()]
    norms = [x for x in norms if x is not None]
    if len(norms) < MIN_STEPS:
        return None, ""
    return _median(norms), "the median gradient norm of the recent steps"


def _batch_too_large(run: _Run):
    """Gradient noise scale B_noise much smaller than the batch: a smaller batch would do."""
    noise = _noise_readings(run)
    if noise is None or noise[0] * NOISE_FACTOR > noise[1]:
        return None
    b_noise, batch, steps = noise
    size = (f"{_times(batch / b_noise)} smaller than" if b_noise > 0 else "far below")
    return Finding(
        "batch_too_large", "info",
        f"The gradient noise scale B_noise was {_g(b_noise)} (median of recorded steps "
        f"{_span(steps)}), {size} the batch size of {batch}: the gradient of a much smaller "
        f"batch would be about as good.",
        {"b_noise": b_noise, "batch_size": batch, "steps": steps, "threshold": NOISE_FACTOR},
        f"A smaller batch (around {max(1, round(b_noise))} to {max(2, round(b_noise * 4))} "
        "examples) would make about as much progress per step for a fraction of the compute; "
        "or keep the batch and raise the learning rate.", [])


#: The rules, in the order they run and are listed among findings of equal severity.
RULES = {
    "divergence": _divergence,
    "exploding_gradients": _exploding_gradients,
    "vanishing_gradients": _vanishing_gradients,
    "dead_relus": _dead_relus,
    "saturated_units": _saturated_units,
    "poor_initialisation": _poor_initialisation,
    "lr_too_low": _lr_too_low,
    "overfitting": _overfitting,
    "gradient_noise": _gradient_noise,
    "underfitting": _underfitting,
    "batch_too_large": _batch_too_large,
}


def diagnose(readings, history=None) -> Report:
    """Diagnose a training run from its readings: what went wrong, why, and what to try.

    Args:
        readings: the :class:`~backprop.diagnostics.Readings` of a ``Monitor`` (or any
            object with ``meta``, ``steps``, ``epochs`` and ``nonfinite`` in that format).
            A :class:`~backprop.train.History` alone is accepted too: then only the rules
            that need losses (divergence, overfitting, exploding norms) can speak.
        history: the run's :class:`~backprop.train.History` (optional): its per-step losses
            (every step, not just the recorded ones) and epoch records (``val_loss``) are
            used in preference to those in ``readings``.

    Returns:
        a :class:`Report`: the findings, most serious first (empty for a healthy run).

    Rules about the state of the network (vanishing gradients, dead units, ...) look only
    at the steps before a divergence, since after it every reading is garbage. Readings
    of a PyTorch run (``meta["framework"] == "torch"``) get advice that names PyTorch's
    APIs (:func:`pytorch_wording`); the lab words it for its own controls
    (:func:`lab_wording`). ``meta["chance_loss"]``, when given (the loss of guessing), is
    the reference of the divergence criterion (:func:`loss_diverged`) and of underfitting.

    Example::

        report = diagnose(monitor.readings, trainer.history)
        print(report)
        if "divergence" in report:
            print(report["divergence"].evidence["lr"])
    """
    if readings is None and history is None:
        raise TypeError("diagnose: give the readings of a Monitor (monitor.readings) and/or a "
                        "training History; got None")
    for what, obj in (("readings", readings), ("history", history)):
        if obj is not None and not hasattr(obj, "steps"):
            raise TypeError(f"diagnose: {what} must be a Readings (monitor.readings) or a "
                            f"History, with .steps; got {type(obj).__name__}")
    if readings is not None and not hasattr(readings, "meta") and history is None:
        readings, history = None, readings  # a History alone
    run = _Run(readings, history)
    findings = []
    divergence = _divergence(run)
    if divergence is not None:
        findings.append(divergence)
        run.limit(divergence.evidence["step"])
    for name, rule in RULES.items():
        if name == "divergence":
            continue
        if name in ("gradient_noise", "batch_too_large") \
                and any(f.name in NOISE_MASKED_BY for f in findings):
            continue
        if name == "underfitting" and any(f.name in UNDERFIT_MASKED_BY for f in findings):
            continue
        finding = rule(run)
        if finding is not None:
            findings.append(finding)
    if run.meta.get("framework") == "torch":  # readings of a PyTorch run: PyTorch's APIs
        for finding in findings:
            finding.advice = pytorch_wording(finding.advice)
    return Report(findings, steps=len(run.all_steps))


#: Advice written for backprop's trainer and CLI, and its wording for a PyTorch user, whose
#: loop is their own; applied in order before every other ``nn.`` becomes ``torch.nn.``.
PYTORCH_WORDING = (
    ("clip_grad_norm=1.0 in fit/Trainer, --clip 1 with backprop train, or "
     "nn.utils.clip_grad_norm_",
     "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0) between loss.backward() and "
     "optimizer.step()"),
    ("gradient clipping (clip_grad_norm=1.0; --clip 1 with backprop train)",
     "gradient clipping (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))"),
    ("train with EarlyStopping(patience=3) and ModelCheckpoint, which saves the best epoch",
     "save model.state_dict() at each new best validation loss and stop after 3 epochs "
     "without one"),
    ("(AdamW, weight_decay=0.01)", "(torch.optim.AdamW, weight_decay=0.01)"),
    ("Adam with lr=1e-3 is", "torch.optim.Adam with lr=1e-3 is"),
    ("a decaying schedule such as warmup_cosine",
     "a decaying schedule such as torch.optim.lr_scheduler.CosineAnnealingLR"),
)


def pytorch_wording(advice: str) -> str:
    """``advice`` with the APIs it names changed to PyTorch's (``nn.init.kaiming_normal_``
    becomes ``torch.nn.init.kaiming_normal_``; the trainer's ``clip_grad_norm=1.0`` becomes
    a call of ``torch.nn.utils.clip_grad_norm_`` in the loop).

    Example::

        pytorch_wording("initialise with nn.init.kaiming_normal_")
        # 'initialise with torch.nn.init.kaiming_normal_'
    """
    for ours, theirs in PYTORCH_WORDING:
        advice = advice.replace(ours, theirs)
    return re.sub(r"(?<![\w.])nn\.", "torch.nn.", advice)


#: The same advice for a user of the backprop lab, whose controls are sliders and menus:
#: every API the advice names becomes the control that does it (applied in order; each
#: phrase must match the doctor's own wording, which a test checks).
LAB_WORDING = (
    ("Clip the gradient norm (clip_grad_norm=1.0 in fit/Trainer, --clip 1 with backprop "
     "train, or nn.utils.clip_grad_norm_)",
     "Clip the gradient norm (the Gradient clipping slider, at about 1)"),
    ("gradient clipping (clip_grad_norm=1.0; --clip 1 with backprop train)",
     "gradient clipping (the Gradient clipping slider, at about 1)"),
    ("and a learning-rate warmup also keep",
     "and a learning-rate warmup (warmup + cosine in the Schedule menu) also keep"),
    ("an initialisation scaled to the layer size (nn.init.kaiming_normal_ for ReLU, "
     "nn.init.xavier_uniform_ for tanh), fewer layers, normalisation layers "
     "(nn.LayerNorm / nn.BatchNorm1d) or residual connections",
     "an initialisation scaled to the layer size (He for ReLU, Xavier for tanh, in the "
     "Initialisation menu), or fewer hidden layers (the − beside Hidden layers)"),
    ("use LeakyReLU or GELU, which keep", "choose Leaky ReLU or GELU in the Activation "
     "menu, which keep"),
    ("initialise with nn.init.kaiming_normal_ and zero (or small positive) biases",
     "choose He in the Initialisation menu"),
    ("Scale the initialisation to the layer size (nn.init.xavier_uniform_ for sigmoid/tanh)",
     "Scale the initialisation to the layer size (Xavier in the Initialisation menu, for "
     "sigmoid/tanh)"),
    ("add normalisation (nn.LayerNorm) before the activation, or use ReLU/GELU in hidden "
     "layers", "or choose ReLU/GELU in the Activation menu"),
    ("Initialise each layer for its fan-in: nn.init.kaiming_normal_ (He) before ReLU, "
     "nn.init.xavier_uniform_ (Glorot) before tanh/sigmoid; normalisation layers "
     "(nn.LayerNorm) also keep the scale steady.",
     "In the Initialisation menu, choose He before ReLU or Xavier (Glorot) before "
     "tanh/sigmoid: each scales a layer's weights to its fan-in."),
    ("and check the initialisation (weights too large make gradients grow with depth)",
     "and check the Initialisation menu (weights too large make gradients grow with depth)"),
    ("Raise the learning rate", "Raise the Learning rate slider"),
    ("Adam with lr=1e-3 is a sound default.",
     "Adam (in the Optimiser menu) with learning rate 0.001 is a sound default."),
    ("train with EarlyStopping(patience=3) and ModelCheckpoint, which saves the best epoch",
     "export the weights (⤓ Weights) at the best step"),
    ("add weight decay (AdamW, weight_decay=0.01) or dropout",
     "raise the Weight decay slider (AdamW, 0.01) or the Dropout slider"),
    ("a decaying schedule such as warmup_cosine",
     "a decaying schedule such as warmup + cosine in the Schedule menu"),
    ("give it hidden layers (a network without one draws only straight boundaries) or more "
     "neurons per layer, or input features that make the pattern simpler (squares, "
     "products, sines of the inputs)",
     "add hidden layers (the + beside Hidden layers; a network without one draws only "
     "straight boundaries) or neurons (the + above a layer), or tick Input features that "
     "make the pattern simpler (x1², x1·x2, sin x1)"),
    ("Use a larger batch", "Use a larger Batch size"),
)


def lab_wording(advice: str) -> str:
    """``advice`` in the words of the backprop lab's page: the controls that do what it
    asks (the Initialisation menu, the Gradient clipping slider) instead of API calls.

    Example::

        lab_wording("initialise with nn.init.kaiming_normal_ and zero (or small positive) "
                    "biases")
        # 'choose He in the Initialisation menu'
    """
    for ours, theirs in LAB_WORDING:
        advice = advice.replace(ours, theirs)
    return advice


# -- small helpers --------------------------------------------------------------------------
def _recent_activation_medians(run: _Run, key: str, kinds, skip_output: bool = False) -> dict:
    """Per layer of the given kinds: the median of ``key`` over the latest recorded steps."""
    recent = run.recent(TREND_WINDOW, key="activations")
    if len(recent) < MIN_STEPS:
        return {}
    output = _output_layer(run) if skip_output else None
    medians = {}
    for name in run.layer_order():
        if name == output:
            continue  # a sigmoid output saturates when the network is confident: no problem
        values = [_finite(r["activations"][name].get(key)) for r in recent
                  if name in r["activations"] and r["activations"][name].get("kind") in kinds]
        values = [v for v in values if v is not None]
        if len(values) >= MIN_STEPS:
            medians[name] = _median(values)
    return medians


def _output_layer(run: _Run):
    """The last module with activation readings: the network's output, not a hidden layer."""
    order = run.layer_order()
    return order[-1] if order else None


def _layer(param_name: str) -> str:
    """"layers.0.weight" -> "layers.0" (the module that owns the parameter)."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


def _step_of(record) -> int:
    step = record.get("step") if isinstance(record, dict) else None
    return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) \
        and math.isfinite(step) else 0


def _num(x):
    """``x`` as a float (non-finite allowed), or None for anything that is not a number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        if isinstance(x, str) and x in NONFINITE_WORDS:
            return float(x)
        return None
    return float(x)


def _finite(x):
    x = _num(x)
    return x if x is not None and math.isfinite(x) else None


def _median(values):
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return None
    mid = len(values) // 2
    if len(values) % 2:
        return values[mid]
    a, b = values[mid - 1], values[mid]
    return a if a == b else (a + b) / 2  # (inf + inf) / 2 is fine; inf - inf never happens


def _g(x) -> str:
    """A number for people: 3 significant digits ("0.0123", "4.32e+32"), whole numbers
    under a million in full ("1000", not "1e+03")."""
    if x is None:
        return "?"
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}"


def _times(factor) -> str:
    """"1,200 times", "3.5 times", "2e+21 times"."""
    if not math.isfinite(factor):
        return "infinitely many times"
    if factor >= 1e6:
        return f"{factor:.2g} times"
    return f"{factor:,.0f} times" if factor >= 10 else f"{factor:.2g} times"


def _say(layer: str) -> str:
    """A module name in a sentence: "layer 0" for Sequential's bare numbers, else the name."""
    return f"layer {layer}" if layer.isdigit() else layer


def _nonfinite_what(nf: dict, run: _Run) -> str:
    """What turned non-finite, in words: "the loss", "the gradient of layers.0.weight"..."""
    kind, name = nf.get("kind"), nf.get("name") or ""
    if kind == "loss":
        return "the loss"
    if kind == "gradient":
        return ("the total gradient norm" if name in ("", "grad_norm")
                else f"the gradient of {name}")
    if kind == "parameter":
        return f"the weights of {name or 'a layer'}"
    return f"the output of {_say(name) if name else 'a layer'}"


def _nonfinite_layers(nf: dict, run: _Run) -> list:
    """The module behind a non-finite parameter, gradient or activation, when it is one."""
    name = nf.get("name") or ""
    if nf.get("kind") in ("parameter", "gradient") and (
            name in (run.meta.get("params") or []) or name.endswith((".weight", ".bias"))):
        return [_layer(name)]
    if nf.get("kind") == "activation" and name:
        return [name]
    return []


def _pct(fraction) -> str:
    """"75%", "190%", "0.1%"."""
    return f"{100 * fraction:.2g}%" if fraction < 0.1 else f"{100 * fraction:.0f}%"


def _span(steps) -> str:
    steps = list(steps)
    if not steps:
        return "?"
    return str(steps[0]) if steps[0] == steps[-1] else f"{steps[0]}-{steps[-1]}"


def _and(words) -> str:
    """"a", "a and b", "a, b and c"."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _plural(n, word) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _setting(lr, batch) -> str:
    parts = [f"learning rate {_g(lr)}" if lr is not None else "learning rate unknown"]
    if batch is not None:
        parts.append(f"batch size {batch}")
    return ", ".join(parts)


def _nonfinite_word(detail) -> str:
    """"nan", "inf", "-inf" or "NaN or Inf" from a non-finite record's detail text.

    The Monitor's details read "... 3 NaN and 0 infinite values ...": the counts decide,
    and whole words only, so "infinite" is never taken for "inf".
    """
    text = str(detail or "")
    counts = re.search(r"(\d+) NaN and (\d+) infinite", text)
    if counts:
        n_nan, n_inf = int(counts.group(1)), int(counts.group(2))
        if n_nan and not n_inf:
            return "nan"
        if n_inf and not n_nan:
            return "inf"
        return "NaN or Inf"
    lower = text.lower()
    for pattern, word in ((r"\bnan\b", "nan"), (r"-inf\b", "-inf"), (r"\binf\b", "inf")):
        if re.search(pattern, lower):
            return word
    return "NaN or Inf"
