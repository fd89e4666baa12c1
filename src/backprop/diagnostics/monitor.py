"""``Monitor``: measure a network while it trains, through hooks, without touching its code.

Every ``interval`` optimizer steps (steps 1, 1 + interval, 1 + 2·interval, ...) the
monitor records, per parameter, the gradient norm, weight norm, update ratio
``‖w_after − w_before‖ / ‖w_before‖`` and mean absolute gradient; per leaf module,
statistics of its output (mean, std, dead and saturated fractions, a histogram); and
an estimate of the gradient noise scale. Every step it checks, cheaply, that the loss
and the total gradient norm are finite, and keeps the first NaN/Inf it meets with
the name of the tensor that holds it. What it measures is in ``monitor.readings``
(:class:`~backprop.diagnostics.Readings`).

How it attaches:

- optimizer step pre/post hooks: gradients and weights before the step, weights
  after it (update ratios), the step count;
- forward hooks on the leaf modules, present only during recorded steps: attached
  after the step before a recorded one and removed in its pre-step hook, so other
  steps run without them. Forward passes without gradients (validation under
  ``no_grad``) are ignored;
- as a training :class:`~backprop.train.Callback`: the loss, learning rate and epoch
  of each step and the epoch records (``val_loss``...) come from the trainer, and the
  gradients are read before the trainer clips them.

Gradient noise (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training",
appendix A): over the K consecutive mini-batch gradients ``g_i`` (batch size B) of the
window ending at a recorded step, ``S = Σ‖g_i − ḡ‖² / (K − 1)`` estimates tr(Σ)/B and
``‖G‖² ≈ ‖ḡ‖² − S/K``; the record holds ``trace_cov = B·S``, ``grad_sq_norm`` and
``b_noise = trace_cov / grad_sq_norm`` (the "simple" noise scale: around it, a larger
batch stops buying proportionally faster progress). The loss must be a batch mean.
Only a full window gives an estimate: a few gradients make a wild one (a negative
``grad_sq_norm``, an infinite ``b_noise``). The open windows are part of the monitor's
training-checkpoint state, so a resumed run estimates exactly what an uninterrupted
one would.

PyTorch models: ``Monitor(model, optimizer)`` with a ``torch.nn.Module`` and a
``torch.optim.Optimizer`` records the same readings through PyTorch's own forward and
optimizer step hooks (plus activation functions called inside ``forward``, see
:mod:`backprop.diagnostics.torch_adapter`, the one module that imports torch, and
only then). Everything framework-specific goes through an adapter that hands this
module NumPy arrays; ``meta["framework"]`` says which one made the readings.

Example::

    from backprop.diagnostics import Monitor

    # with the trainer
    fit(model, loss_fn, opt, loader, epochs=5, callbacks=[Monitor(model)])

    # in a loop of your own
    with Monitor(model, opt, interval=10, path="runs/x/diagnostics.jsonl") as mon:
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            mon.log_loss(loss)            # optional; before opt.step()
            opt.step()
    mon.readings.last()["grad_norm"]
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
from typing import Any, Literal

import numpy as np

from backprop import nn
from backprop.autograd.grad_mode import is_grad_enabled

# Only the check by class name: the adapter imports torch itself, when it is made.
from backprop.diagnostics._layout import Layout as _Layout
from backprop.diagnostics._layout import NoiseWindow as _NoiseWindow
from backprop.diagnostics._layout import sq_norm as _sq_norm
from backprop.diagnostics._layout import sum_and_sq as _sum_and_sq
from backprop.diagnostics.readings import Readings, ReadingsWriter
from backprop.diagnostics.torch_adapter import is_torch_object
from backprop.tensor import Tensor
from backprop.train import Callback

__all__ = ["Monitor"]

# An entry counts as saturated when the derivative of its activation is under 1% of
# the derivative's peak: there the unit passes back almost no gradient.
# sigmoid: s'(x) = s(1 - s), peak 0.25 at s = 0.5; 1% of it is 0.0025 (|x| > ~5.99).
SIGMOID_SATURATION_DERIVATIVE = 0.0025
# tanh: tanh'(x) = 1 - t^2, peak 1 at t = 0; 1% of it is 0.01 (|x| > ~2.99).
TANH_SATURATION_DERIVATIVE = 0.01
# Steps between two recorded steps by default. A recorded step costs about 1 ms of statistics
# on a 784-256-128-10 MLP, each step of a noise window ~100 µs and every other step ~45 µs
# (the NaN/Inf check): 124-152 µs a step on average, 10-12% of a 1.3 ms step at batch 64, a few %
# of larger steps (benchmarks/torch_monitor_overhead.py --inside; the README has the figures),
# while 25 steps is still fine-grained enough to follow a trend.
DEFAULT_INTERVAL = 25
# Bins of the activation histograms: enough to see a shape, small enough to store every record.
HISTOGRAM_BINS = 20
# A histogram is counted over at most this many entries of an output (an evenly spaced
# sample of larger ones, whose range also sets the edges). A bin holding 10% of the mass is
# then known to about ±10%: enough for a picture of the distribution, which is what the
# histogram is for (the dead and saturated fractions use every entry). Binning every
# entry of a large batch cost more than all the other statistics together.
HISTOGRAM_SAMPLE = 1024
# Activations whose units can die (output <= 0 for every input, hence no gradient through
# the flat or nearly flat negative side).
DEAD_KINDS = frozenset({"relu", "leaky_relu", "gelu", "elu"})

# Module class -> activation kind; the first isinstance match wins.
_MODULE_KINDS = (
    (nn.ReLU, "relu"), (nn.LeakyReLU, "leaky_relu"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"),
    (nn.GELU, "gelu"), (nn.ELU, "elu"), (nn.Softplus, "softplus"), (nn.SiLU, "silu"),
    (nn.Linear, "linear"), (nn.Conv2d, "linear"),
)


def module_kind(module) -> str:
    """The activation kind of a module's output: ``"relu"``, ``"sigmoid"``, ``"linear"``, ...

    Linear and convolution layers are ``"linear"``; anything else not listed is ``"other"``.
    """
    for cls, kind in _MODULE_KINDS:
        if isinstance(module, cls):
            return kind
    return "other"


class _BackpropArrays:
    """The Monitor's view of backprop's own objects: NumPy arrays and plain numbers.

    The Monitor asks every framework-specific question through such an adapter (this one,
    or :class:`~backprop.diagnostics.torch_adapter.TorchAdapter` for PyTorch models), so
    its logic works on NumPy arrays whatever trained the network.
    """

    framework = "backprop"
    version = None

    @staticmethod
    def data(p) -> np.ndarray:
        return p._data

    @staticmethod
    def grad(p):
        g = p.grad
        return None if g is None else g._data

    @staticmethod
    def grad_enabled() -> bool:
        return is_grad_enabled()

    @staticmethod
    def output_array(value):
        t = _first_tensor(value)
        if t is None or t.ndim == 0:
            return None
        # A copy: whatever later writes into the output must not change the reading.
        return np.array(t._data, copy=True)

    @staticmethod
    def batch_len(args):
        return _batch_len(args)

    kind = staticmethod(module_kind)

    @staticmethod
    def unwrap(model):
        return model

    @staticmethod
    def hook(fn):
        """``fn`` as registered as a hook (as it is: nothing compiles backprop's forward)."""
        return fn

    functional_watch = None  # backprop's layers are modules: their hooks see every activation


def _arrays_for(model, optimizer):
    """The adapter for this model and optimizer: backprop's own, or PyTorch's."""
    if is_torch_object(model) or (optimizer is not None and is_torch_object(optimizer)):
        # Imported only here: backprop never imports torch unless handed a torch object.
        from backprop.diagnostics.torch_adapter import TorchAdapter
        return TorchAdapter(model, optimizer)
    return _BackpropArrays()


def _first_tensor(value, tensor_type=Tensor):
    """The tensor itself, or the first tensor of a tuple/list output; None if there is none.
    ``tensor_type``: the framework's tensor class (PyTorch's for its adapter)."""
    if isinstance(value, tensor_type):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, tensor_type):
                return item
    return None


def _batch_len(args, tensor_type=Tensor):
    """The length of the first tensor argument's first axis, or None."""
    for arg in args:
        t = _first_tensor(arg, tensor_type)
        if t is not None and t.ndim > 0:
            return int(t.shape[0])
    return None


def _nonfinite_counts(a: np.ndarray) -> str | None:
    """"N NaN and M infinite values out of S", or None when every value is finite."""
    if np.isfinite(a).all():
        return None
    n_nan = int(np.count_nonzero(np.isnan(a)))
    n_inf = int(np.count_nonzero(np.isinf(a)))
    return f"{n_nan} NaN and {n_inf} infinite values out of {a.size}"


_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _quiet(needed: bool):
    """Silence NumPy's floating-point warnings, only where non-finite values may raise them.

    ``np.errstate`` costs microseconds each time, and recorded steps would enter it
    a dozen times; finite values need none.
    """
    return np.errstate(all="ignore") if needed else contextlib.nullcontext()


def _histogram(values: np.ndarray) -> dict:
    """A HISTOGRAM_BINS-bin histogram of finite ``values`` (1-D, not empty) over their range.

    Binned as np.histogram bins (the last bin closed; a unit-wide range around the value
    when all are equal), but computed directly: np.histogram's general path is several
    times slower, and this runs for every layer of every recorded step.
    """
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if hi - lo > _FLOAT16_MAX and values.dtype != np.float64 \
            and hi - lo > float(np.finfo(values.dtype).max):
        # values - lo would overflow the dtype (to inf, and a negative bin): in float64
        values = values.astype(np.float64)
    dtype = values.dtype.type
    scaled = values - dtype(lo)
    scaled *= dtype(HISTOGRAM_BINS / (hi - lo))
    index = scaled.astype(np.int32)  # in [0, bins]: only the maximum lands on `bins`
    np.minimum(index, HISTOGRAM_BINS - 1, out=index)
    counts = np.bincount(index, minlength=HISTOGRAM_BINS)
    width = (hi - lo) / HISTOGRAM_BINS
    return {"edges": [lo + i * width for i in range(HISTOGRAM_BINS)] + [hi],
            "counts": counts.tolist()}


def _moments_and_shape(kind: str, arrays: list, sums: list | None,
                       squares: list | None) -> tuple:
    """(stats without "hist", the finite sample to histogram) of one module's outputs."""
    flat = arrays[0].ravel() if len(arrays) == 1 else np.concatenate([a.ravel() for a in arrays])
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    n = flat.size
    total = float(np.add.reduce(flat)) if sums is None else float(sum(sums))
    # Any NaN or inf makes the sum non-finite; a non-finite sum of finite values overflowed.
    finite = math.isfinite(total) or bool(np.isfinite(flat).all())
    with _quiet(not finite):
        if finite and not math.isfinite(total):
            total = float(flat.sum(dtype=np.float64))
        mean = total / n
        if finite:
            mean_sq = (float(sum(squares)) if squares is not None else _sq_norm(flat)) / n
            var = mean_sq - mean * mean
            # E[x²] − mean² cancels when the spread is tiny next to the mean: then centre first.
            if var < 1e-4 * mean_sq:
                var = _sq_norm(flat - flat.dtype.type(mean)) / n
            std = math.sqrt(max(var, 0.0))
        else:
            std = math.nan
        stats = {"kind": kind, "mean": mean, "std": std,
                 "dead_fraction": None, "saturated_fraction": None}
        if kind in DEAD_KINDS:
            alive = [(a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1))
                     .max(axis=0) > 0 for a in arrays]
            if len(alive) == 1:
                units = alive[0]
            elif all(m.shape == alive[0].shape for m in alive):
                units = np.logical_or.reduce(alive)
            else:  # calls with different feature shapes: their units are different units
                units = np.concatenate(alive)
            stats["dead_fraction"] = 1.0 - float(np.count_nonzero(units)) / units.size
        elif kind == "sigmoid":
            # s(1 - s) < c  <=>  |s - 1/2| > sqrt(1/4 - c)
            limit = math.sqrt(0.25 - SIGMOID_SATURATION_DERIVATIVE)
            stats["saturated_fraction"] = float(np.count_nonzero(
                np.abs(flat - flat.dtype.type(0.5)) > limit)) / n
        elif kind == "tanh":
            # 1 - t^2 < c  <=>  |t| > sqrt(1 - c)
            limit = math.sqrt(1.0 - TANH_SATURATION_DERIVATIVE)
            stats["saturated_fraction"] = float(np.count_nonzero(np.abs(flat) > limit)) / n
    return stats, _sample(flat if finite else flat[np.isfinite(flat)], arrays[0])


def activation_stats(kind: str, arrays: list, histograms: bool = True,
                     sums: list | None = None, squares: list | None = None) -> dict:
    """Statistics of one module's outputs over a step (one array per call of the module).

    ``dead_fraction`` (relu family): the share of units, i.e. entries of an output with
    the batch axis removed, that were <= 0 for every sample. ``saturated_fraction``
    (sigmoid, tanh): the share of entries whose derivative is under 1% of its peak.
    Non-finite entries make mean and std non-finite and are left out of the histogram,
    which counts at most HISTOGRAM_SAMPLE entries. ``sums``: each array's sum, if known;
    ``squares``: each array's ‖a‖² (finite), if known (with ``sums``).

    Example::

        activation_stats("relu", [np.maximum(np.random.randn(32, 16), 0)])["dead_fraction"]
    """
    stats, sample = _moments_and_shape(kind, arrays, sums, squares if sums is not None else None)
    if not histograms:
        stats["hist"] = None
    else:
        stats["hist"] = _histogram(sample) if sample.size else {"edges": [], "counts": []}
    return stats


def _sample(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """At most HISTOGRAM_SAMPLE entries of ``values`` (a view), evenly spaced."""
    return values[::sample_stride(values.size, first.shape)]


def sample_stride(size: int, first_shape: tuple) -> int:
    """The stride that picks at most HISTOGRAM_SAMPLE of ``size`` values for a histogram.

    The stride is made coprime with the length of one sample's output (``first_shape``:
    the shape of the first output, batch axis first), so that the sample visits every
    feature rather than the same few columns of each row.
    """
    if size <= HISTOGRAM_SAMPLE:
        return 1
    stride = -(-size // HISTOGRAM_SAMPLE)
    row = math.prod(first_shape[1:]) if len(first_shape) > 1 else 1
    while row > 1 and math.gcd(stride, row) != 1:
        stride += 1
    return stride


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"Monitor: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class Monitor(Callback):
    """Record gradients, weights, updates, activations and gradient noise while training.

    Use it as a trainer callback (``fit(..., callbacks=[Monitor(model)])``, the
    optimizer comes from the trainer) or in a loop of your own (``Monitor(model, opt)``;
    the optimizer's step hooks drive it). Without any optimizer, each
    :meth:`log_loss` call ends a step instead (no update ratios then).

    Args:
        model: the ``nn.Module`` being trained (backprop's, or a ``torch.nn.Module``).
        optimizer: its optimizer (None: taken from the trainer at ``on_fit_start``, or
            no optimizer at all, see above); a ``torch.optim.Optimizer`` for a PyTorch
            model.
        interval: record steps 1, 1 + interval, 1 + 2·interval, ... (default 25: a
            recorded step costs several unrecorded ones, and at 25 a small MLP trains
            under 10% slower with a Monitor; ``benchmarks/diagnostics_overhead.py``).
        activations: record statistics of every leaf module's output on recorded steps.
        noise: estimate the gradient noise scale at recorded steps.
        noise_window: consecutive step gradients K per noise estimate (>= 2); the window
            ends at the recorded step. A recorded step with fewer than K steps before it
            (early in a run) gets no estimate.
        histograms: keep a 20-bin histogram of each leaf module's output.
        path: a JSON-lines file to append the readings to as they are made, each line
            flushed, so a crashed or diverged run keeps what was seen. Read it with
            ``Readings.from_jsonl``.

    Notes:
        - In a loop of your own, call :meth:`log_loss` before ``optimizer.step()``;
          gradients are read in the pre-step hook, so they are after any clipping you
          do yourself (the trainer's callback path reads them before its clipping).
        - Forward passes under ``no_grad`` are not measured; one with gradients enabled
          during a recorded step is (evaluate under ``no_grad``).
        - Parameters without a gradient at a recorded step are left out of its record.
          The parameters watched are the model's when the monitor is made, re-read when
          a fit starts; leaf modules are re-read at every recorded step (a swapped
          activation module is measured).
        - Resuming with ``fit(resume_from=...)`` continues the ``path`` file from the
          checkpoint's step (a damaged line in it is skipped with a warning); without
          ``path`` the readings start empty. The checkpoint holds the open noise windows
          (:meth:`state_dict`), so the estimates after the resume are those of an
          uninterrupted run.

    Example::

        mon = Monitor(model, interval=5)
        fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=3, callbacks=[mon])
        mon.readings.param_series("0.weight", "update_ratio")
        mon.close()
    """

    # Runs before the other callbacks, so it sees each event first.
    order = -100

    def __init__(self, model, optimizer=None, *, interval: int = DEFAULT_INTERVAL,
                 activations: bool = True,
                 noise: bool = True, noise_window: int = 8, histograms: bool = True,
                 path=None):
        if not (hasattr(model, "named_parameters") and hasattr(model, "named_modules")):
            raise TypeError(f"Monitor: model must be an nn.Module (backprop's or PyTorch's), "
                            f"got {type(model).__name__}")
        if optimizer is not None and not all(
                hasattr(optimizer, a) for a in ("register_step_pre_hook",
                                                "register_step_post_hook", "param_groups")):
            raise TypeError(f"Monitor: optimizer must be a backprop optimizer or a "
                            f"torch.optim.Optimizer (with step hooks), got "
                            f"{type(optimizer).__name__}")
        self._arrays = _arrays_for(model, optimizer)
        self.model = model
        # The network the hooks go on and the names come from (torch.compile's wrapper
        # holds the user's model: its names, without the wrapper's "_orig_mod." prefix).
        self._net = self._arrays.unwrap(model)
        self.optimizer = None
        self.interval = _check_int(interval, "interval", 1)
        self.noise_window = _check_int(noise_window, "noise_window", 2)
        self.activations = bool(activations)
        self.noise = bool(noise)
        self.histograms = bool(histograms)
        self.path = None if path is None else os.fspath(path)
        self.readings = Readings(meta={
            "interval": self.interval, "params": [], "layers": [], "batch_size": None,
            "noise_window": self.noise_window if self.noise else None,
            "framework": self._arrays.framework})
        if self._arrays.version is not None:
            self.readings.meta["framework_version"] = self._arrays.version
        self._set_params(list(self._net.named_parameters()))
        self.step = 0                  # optimizer steps completed
        self._closed = False
        self._trainer = None
        self._borrowed_optimizer = False
        self._opt_handles: list = []
        self._fwd_handles: list = []
        self._capture_hooks: dict = {}  # leaf module name -> its forward hook (made once)
        self._writer: ReadingsWriter | None = None
        self._saved_windows: dict | None = None  # noise windows from a checkpoint, for _sync_to
        self._file_made = False        # whether this monitor has written its file yet
        self._written_meta: dict | None = None  # the meta last written to the live file
        self._reset_step_state()
        if optimizer is not None:
            self._attach_optimizer(optimizer)
        if self._recorded(1):
            self._attach_forward_hooks()

    # -- public ---------------------------------------------------------------------------
    def log_loss(self, loss) -> None:
        """Give the loss of the current step's batch (a tensor or a number).

        Call it after ``backward`` and before ``optimizer.step()``; several calls in one
        step (gradient accumulation) are averaged. A NaN/Inf is recorded at once.
        Without an optimizer, each call also ends a step.
        """
        if self._closed:
            return
        value = float(loss.item() if hasattr(loss, "item") else loss)
        self._loss_sum += value
        self._loss_count += 1
        if not math.isfinite(value):
            self._nonfinite_loss(value, self.step + 1)
        if self.optimizer is None and self._trainer is None:
            self._end_step_without_optimizer()

    def log_epoch(self, epoch: int, **metrics) -> None:
        """Record an epoch of a loop of your own: ``mon.log_epoch(3, loss=0.4, val_loss=0.5)``."""
        if self._closed:
            return
        record: dict[str, Any] = {"epoch": int(epoch), "step": self.step}
        record.update((k, float(v) if isinstance(v, numbers.Real) else v)
                      for k, v in metrics.items())
        self._add_epoch(record)

    def close(self) -> None:
        """Remove every hook and close the live file; the readings stay. Safe to call twice."""
        self._remove_forward_hooks()
        for handle in self._opt_handles:
            handle.remove()
        self._opt_handles = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._closed = True

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> Literal[False]:
        self.close()
        return False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"step {self.step}"
        return (f"Monitor(interval={self.interval}, {state}, "
                f"{len(self.readings.steps)} recorded steps)")

    def _set_params(self, named: list) -> None:
        """Watch these ``(name, parameter)`` pairs (a new set resets the noise windows)."""
        self._named = named
        make = getattr(self._arrays, "layout", None)
        self._layout = make(named) if make is not None else _Layout(named, self._arrays)
        self._windows: dict = {}       # recorded step -> _NoiseWindow ending there
        self.readings.meta["params"] = [n for n, _ in named]

    # -- schedule -------------------------------------------------------------------------
    def _recorded(self, step: int) -> bool:
        return (step - 1) % self.interval == 0

    def _reset_step_state(self) -> None:
        self._grads_seen = False
        self._loss_sum = 0.0
        self._loss_count = 0
        self._lr: float | None = None
        self._pending: dict[str, Any] | None = None  # the record of the recorded step under way
        self._present: list[int] = []  # indices (in the layout) of params with a gradient
        self._weights_kept = False     # the layout holds this step's weights before the update
        self._capture: dict = {}       # leaf module name -> [(output array, its sum, ‖·‖²)]
        self._kinds: dict = {}
        self._examples = 0             # samples seen by the model in this (recorded) step

    # -- hooks: attach and remove ---------------------------------------------------------
    def _attach_optimizer(self, optimizer) -> None:
        self.optimizer = optimizer
        self._opt_handles = [optimizer.register_step_pre_hook(self._pre_step),
                             optimizer.register_step_post_hook(self._post_step)]

    def _detach_optimizer(self) -> None:
        for handle in self._opt_handles:
            handle.remove()
        self._opt_handles = []
        self.optimizer = None

    def _leaf_modules(self) -> list:
        leaves = []
        for name, module in self._net.named_modules():
            if next(iter(module.children()), None) is None:
                leaves.append((name or type(module).__name__, module))
        return leaves

    def _attach_forward_hooks(self) -> None:
        if self._fwd_handles or self._closed:
            return
        self._capture, self._kinds, self._examples = {}, {}, 0
        arrays = self._arrays
        count = self._capture_hooks.get(None)  # made once: a framework's wrapper may cost
        if count is None:
            count = self._capture_hooks[None] = arrays.hook(self._count_batch)
        handles = [self._net.register_forward_pre_hook(count)]
        if self.activations:
            made = self._capture_hooks
            kind_of = arrays.kind
            for name, module in self._leaf_modules():
                self._kinds[name] = kind_of(module)
                hook = made.get(name)
                if hook is None:
                    hook = made[name] = arrays.hook(self._make_capture(name))
                handles.append(module.register_forward_hook(hook))
            if self._arrays.functional_watch is not None:
                # Activation functions inside forward (F.relu(...)): a leaf module of an
                # activation kind is measured by its own hook already.
                handles += self._arrays.functional_watch(
                    self._net, self._capture_functional,
                    lambda m: next(iter(m.children()), None) is None
                    and kind_of(m) not in ("other", "linear"))
        self._fwd_handles = handles

    def _remove_forward_hooks(self) -> None:
        for handle in self._fwd_handles:
            handle.remove()
        self._fwd_handles = []

    def _count_batch(self, module, args) -> None:
        if not self._arrays.grad_enabled():
            return
        n = self._arrays.batch_len(args)
        if n is not None:
            self._examples += n

    def _make_capture(self, name: str):
        arrays = self._arrays

        def hook(module, args, output):
            if not arrays.grad_enabled():  # validation / inference: not part of the step
                return
            a = arrays.output_array(output)  # a copy of the output
            if a is not None:
                self._capture_array(name, a, type(module).__name__)
        return hook

    def _capture_functional(self, name: str, kind: str, a: np.ndarray) -> None:
        """An activation function's output inside a module's forward (PyTorch models)."""
        self._kinds[name] = kind
        self._capture_array(name, a, "a function call")

    def _capture_array(self, name: str, a, what: str) -> None:
        # The sum: the mean needs it, and it is non-finite if any entry is (the check
        # happens here, in forward order, so the first layer to break is the one named).
        square = None  # ‖a‖², where one pass gives it with the sum
        if isinstance(a, np.ndarray):
            total, square = _sum_and_sq(a)
        else:  # a framework's tensor left on its device (TorchAdapter.output_array)
            total = self._arrays.output_sum(a)
        self._capture.setdefault(name, []).append((a, total, square))
        if not math.isfinite(total) and self.readings.nonfinite is None:
            counts = _nonfinite_counts(a) if isinstance(a, np.ndarray) \
                else self._arrays.nonfinite_counts(a)
            if counts is not None:
                self._set_nonfinite(self.step + 1, "activation", name,
                                    f"the output of {name} ({what}) has {counts}")

    # -- the step -------------------------------------------------------------------------
    def _observe_grads(self) -> None:
        """Read the gradients of the step under way: cheap checks always, details if recorded."""
        self._grads_seen = True
        s = self.step + 1
        layout = self._layout
        recorded = (s - 1) % self.interval == 0
        # The next recorded step is r = s + (1 - s) % interval; s is in its window if r - s < K.
        in_window = self.noise and (1 - s) % self.interval < self.noise_window
        if not (recorded or in_window):  # the cheap check only: no copy of the gradients
            if self._trainer is not None:
                # The Trainer computes the total norm of every step itself and stops on a
                # non-finite one; on_exception then names the gradient. Nothing to add here.
                return
            total_sq = layout.grad_sq_norm()
            if not math.isfinite(total_sq) and self.readings.nonfinite is None:
                self._locate_nonfinite_grad(s, math.sqrt(total_sq))
            return
        windows = self._open_windows(s) if in_window else []
        if recorded:  # the windows' sums are added in the same pass
            present = layout.gather_grads(windows)
            total_sq = layout.gathered_sq_norm()
        else:
            total_sq = layout.window_step(windows)
        for window in windows:
            window.note(total_sq)
        if not math.isfinite(total_sq) and self.readings.nonfinite is None:
            self._locate_nonfinite_grad(s, math.sqrt(total_sq))
        if recorded:
            # The gradients' per-parameter numbers are read here (before any clipping);
            # the record is finished at the end of the step, with the weights'.
            self._present = present
            self._pending = {"step": s, "epoch": None, "loss": None, "lr": None,
                             "grad_norm": math.sqrt(total_sq), "params": {},
                             "activations": {}, "noise": None}

    def _open_windows(self, s: int) -> list:
        """The noise windows step ``s`` belongs to, those of the recorded steps r in
        [s, s + K - 1] opened where new; with any still open from before."""
        windows = self._windows
        r = s + (1 - s) % self.interval
        end = s + self.noise_window
        while r < end:
            if r not in windows:
                windows[r] = _NoiseWindow()
            r += self.interval
        return list(windows.values())

    def _param_stats(self, step: int, updated: bool) -> None:
        """Fill the pending record's per-parameter numbers (with update ratios if ``updated``)."""
        layout = self._layout
        rows = 3 if updated else 2
        with _quiet(self.readings.nonfinite is not None):  # inf - inf, inf * 0 only then
            if updated:
                layout.record_change()
            norms, abs_mean = layout.norms(rows)
        assert self._pending is not None, "_param_stats runs with a record under way"
        params = self._pending["params"]
        bad_before = bad_after = False
        for i in self._present:
            wn = norms[layout.BEFORE][i]
            stats = {"grad_norm": norms[layout.GRADS][i], "weight_norm": wn,
                     "update_ratio": None, "grad_abs_mean": abs_mean[i]}
            bad_before = bad_before or not math.isfinite(wn)
            if updated:
                dn = norms[layout.CHANGE][i]
                stats["update_ratio"] = dn / wn if wn else None
                bad_after = bad_after or not math.isfinite(dn)
            params[layout.names[i]] = stats
        if self.readings.nonfinite is None and (bad_before or bad_after):
            if bad_before:  # broken before this update: put the blame on an earlier step
                self._locate_nonfinite_param(step, "before the update of step")
            else:
                self._locate_nonfinite_param(step, "after the update of step")

    def _pre_step(self, optimizer, args, kwargs) -> None:
        if self._closed:
            return
        if not self._grads_seen:
            self._observe_grads()
        if self._pending is None:
            return
        self._lr = float(optimizer.param_groups[0]["lr"])  # before a scheduler changes it
        self._finish_forward()
        self._layout.gather_weights(self._layout.BEFORE)  # for the update ratios
        self._weights_kept = True

    def _post_step(self, optimizer, args, kwargs) -> None:
        if self._closed:
            return
        s = self.step + 1
        self.step = s
        pending = self._pending
        if pending is not None and self._weights_kept:
            self._param_stats(s, updated=True)
            pending["lr"] = self._lr
            if self._loss_count:
                pending["loss"] = self._loss_sum / self._loss_count
        if self._trainer is None:
            self._finish_step()
        # With a trainer, on_batch_end adds its loss, lr and epoch and finishes the step.

    def _finish_step(self) -> None:
        """Emit the pending record (if any), reset, and hook up the next step if recorded."""
        pending = self._pending
        if pending is None and not self._capture and not self._examples:
            # An unrecorded step: reset only what such a step touched.
            self._grads_seen = False
            self._loss_sum, self._loss_count, self._lr = 0.0, 0, None
        else:
            self._reset_step_state()
        if pending is not None:
            self._add_step(pending)
            for stale in [r for r in self._windows if r <= self.step]:  # never finished
                del self._windows[stale]
        if (self.step % self.interval) == 0:  # the next step, step + 1, is recorded
            self._attach_forward_hooks()

    def _finish_forward(self) -> None:
        """Remove the forward hooks and turn what they captured into the pending record."""
        self._remove_forward_hooks()
        pending = self._pending
        capture, kinds = self._capture, self._kinds
        self._capture = {}
        batch = self._examples or None
        if pending is None:
            return
        if batch is not None and self.readings.meta.get("batch_size") is None:
            self.readings.meta["batch_size"] = batch
        layers = self.readings.meta["layers"]
        activations = pending["activations"]
        for name, arrays in capture.items():
            outputs = [a for a, _, _ in arrays]
            sums = [total for _, total, _ in arrays]
            if isinstance(outputs[0], np.ndarray):
                squares = [sq for _, _, sq in arrays]
                activations[name] = activation_stats(
                    kinds.get(name, "other"), outputs, self.histograms, sums=sums,
                    squares=None if None in squares else squares)
            else:  # reduced on the tensors' device
                activations[name] = self._arrays.activation_stats(
                    kinds.get(name, "other"), outputs, self.histograms, sums=sums)
            if name not in layers:
                layers.append(name)
        window = self._windows.pop(pending["step"], None)
        if window is not None:
            pending["noise"] = window.estimate(self._layout, batch or self.readings.meta.get("batch_size"),
                                               self.noise_window)

    def _end_step_without_optimizer(self) -> None:
        """``log_loss`` without an optimizer: the step ends here, no update is seen."""
        if not self._grads_seen:
            self._observe_grads()
        if self._pending is not None:
            self._finish_forward()
            self._layout.gather_weights(self._layout.BEFORE)
            self._param_stats(self.step + 1, updated=False)
            self._pending["loss"] = self._loss_sum / self._loss_count
        self.step += 1
        self._finish_step()

    # -- non-finite values ----------------------------------------------------------------
    def _set_nonfinite(self, step: int, kind: str, name: str, detail: str) -> None:
        if self.readings.nonfinite is not None:
            return
        record = {"step": int(step), "kind": kind, "name": name, "detail": detail}
        self.readings.nonfinite = record
        self._write("nonfinite", record)

    def _locate_nonfinite_grad(self, step: int, total: float) -> None:
        for name, p in self._named:
            g = self._arrays.grad(p)
            if g is not None and not np.isfinite(g).all():
                self._set_nonfinite(step, "gradient", name,
                                    f"the gradient of {name} has {_nonfinite_counts(g)} "
                                    f"(total gradient norm {total})")
                return

    def _locate_nonfinite_param(self, step: int, when: str) -> bool:
        for name, p in self._named:
            data = self._arrays.data(p)
            if not np.isfinite(data).all():
                self._set_nonfinite(step, "parameter", name,
                                    f"{name} has {_nonfinite_counts(data)} ({when} {step})")
                return True
        return False

    def _nonfinite_loss(self, value: float, step: int) -> None:
        if self.readings.nonfinite is not None:
            return
        # A parameter already broken explains the loss better than the loss itself.
        if not self._locate_nonfinite_param(step, "found when the loss became non-finite at step"):
            self._set_nonfinite(step, "loss", "loss", f"the loss of step {step} is {value}")

    # -- output ---------------------------------------------------------------------------
    def _write(self, kind: str, record: dict) -> None:
        if self.path is None or self._closed:
            return
        if self._writer is None:
            # The first file of a new monitor holds nothing to keep: a plain write. Later
            # (a new fit, a resume) the file is rewritten all or nothing.
            self._writer = ReadingsWriter(self.path, self.readings, atomic=self._file_made)
            self._file_made = True
            self._written_meta = _meta_copy(self.readings.meta)
            return  # the rewrite included this record already
        if kind != "meta" and self.readings.meta != self._written_meta:
            self._written_meta = _meta_copy(self.readings.meta)
            self._writer.write("meta", self.readings.meta)
        self._writer.write(kind, record)

    def _add_step(self, record: dict) -> None:
        self.readings.steps.append(record)
        self._write("step", record)

    def _add_epoch(self, record: dict) -> None:
        self.readings.epochs.append(record)
        self._write("epoch", record)

    # -- the trainer's events ---------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        if self._closed:
            return
        if trainer.model is not self.model:
            raise ValueError("Monitor: the trainer trains a different model from the one this "
                             "monitor watches; pass the same model to both")
        if self.optimizer is None:
            self._attach_optimizer(trainer.optimizer)
            self._borrowed_optimizer = True
        elif trainer.optimizer is not self.optimizer:
            raise ValueError("Monitor: the trainer steps a different optimizer from the one "
                             "given to this monitor; pass Monitor(model) to use the trainer's")
        self._trainer = trainer
        named = list(self._net.named_parameters())
        if [(n, id(p)) for n, p in named] != self._layout.key:  # the model was edited
            self._set_params(named)
        if trainer.step != self.step or (trainer.resuming and not self.readings.steps):
            self._sync_to(trainer.step, trainer.resuming)
        self._reset_step_state()
        self._remove_forward_hooks()
        if self._recorded(self.step + 1):
            self._attach_forward_hooks()

    def _sync_to(self, step: int, resuming: bool) -> None:
        """Continue from the trainer's step: drop later readings, reload the live file."""
        if resuming and self.path is not None and not self.readings.steps \
                and os.path.exists(self.path) and self._writer is None:
            try:
                old = Readings.from_jsonl(self.path)
            except (OSError, ValueError):
                old = None
            if old is not None:  # what this monitor knows wins; the file fills the gaps
                old.meta.update((k, v) for k, v in self.readings.meta.items()
                                if v is not None and v != [])
                self.readings = old
        self.readings.truncate(step)
        self.step = step
        self._windows = self._restored_windows(step)
        if self.path is not None:
            if self._writer is not None:
                self._writer.close()
            self._writer = ReadingsWriter(self.path, self.readings)
            self._file_made = True
            self._written_meta = _meta_copy(self.readings.meta)

    # -- training checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """The noise windows still open at this step, for training checkpoints.

        A window's sums are one vector the size of the model's parameters: without them a
        resumed run would start its open window part-way and get no estimate there.
        """
        windows = {}
        for r, w in self._windows.items():
            windows[r] = {"sum": None if w.sum is None else
                          self._layout.sum_to_flat(w.sum), "sq_sum": w.sq_sum,
                          "count": w.count, "bad": w.bad}
        return {"step": self.step, "interval": self.interval, "noise_window": self.noise_window,
                "windows": windows}

    def load_state_dict(self, state: dict) -> None:
        """Keep a checkpoint's noise windows; they are taken up when the resumed fit starts."""
        self._saved_windows = state if isinstance(state, dict) else None

    def _restored_windows(self, step: int) -> dict:
        """The checkpoint's open windows if they belong to ``step`` and this set-up, else {}."""
        saved, self._saved_windows = self._saved_windows, None
        if not saved or saved.get("step") != step or saved.get("interval") != self.interval \
                or saved.get("noise_window") != self.noise_window:
            return {}
        size = (self._layout.total_size,)
        windows = {}
        try:
            for r, w in saved["windows"].items():
                total = w["sum"]
                if total is not None and (not isinstance(total, np.ndarray)
                                          or total.shape != size):
                    return {}  # another model: estimates from these sums would mean nothing
                window = _NoiseWindow()
                window.sum = None if total is None else self._layout.sum_from_flat(total)
                window.sq_sum, window.count = float(w["sq_sum"]), int(w["count"])
                window.bad = bool(w["bad"])
                windows[int(r)] = window
        except (KeyError, TypeError, ValueError, AttributeError):
            return {}  # not what state_dict wrote: start the windows afresh
        return windows

    def on_before_optimizer_step(self, trainer) -> None:
        # Before the trainer clips: the gradients as backward left them.
        if not self._closed and not self._grads_seen:
            self._observe_grads()

    def on_batch_end(self, trainer, record: dict) -> None:
        if self._closed:
            return
        pending = self._pending
        if pending is not None:
            pending["epoch"] = record.get("epoch")
            if isinstance(record.get("loss"), numbers.Real):
                pending["loss"] = float(record["loss"])
            lr = record.get("lr")
            if isinstance(lr, (list, tuple)):  # param groups with different rates: the first
                lr = lr[0] if lr else None
            if lr is not None:
                pending["lr"] = float(lr)
        self._finish_step()

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self._closed:
            return
        epoch = {k: record[k] for k in ("epoch", "step", "loss", "val_loss", "accuracy",
                                        "val_accuracy", "lr") if k in record}
        if isinstance(epoch.get("lr"), (list, tuple)):
            epoch["lr"] = epoch["lr"][0] if epoch["lr"] else None
        self._add_epoch(epoch)

    def _end_fit(self, trainer) -> None:
        error = trainer.diverged
        if error is not None:
            self._diverged(error)
        self._remove_forward_hooks()
        self._reset_step_state()
        self._trainer = None
        if self._borrowed_optimizer:
            self._detach_optimizer()
            self._borrowed_optimizer = False
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _diverged(self, error) -> None:
        quantity = getattr(error, "quantity", None)
        step = getattr(error, "step", self.step + 1)
        value = getattr(error, "value", math.nan)
        if quantity == "loss":
            self._nonfinite_loss(value, step)
        elif quantity is not None and self.readings.nonfinite is None:
            self._locate_nonfinite_grad(step, value)  # the gradients are still there
            if self.readings.nonfinite is None:
                self._set_nonfinite(step, "gradient", "grad_norm",
                                    f"the total gradient norm of step {step} is {value}")

    def on_fit_end(self, trainer) -> None:
        if not self._closed:
            self._end_fit(trainer)

    def on_exception(self, trainer, error: BaseException) -> None:
        if self._closed:
            return
        if trainer.diverged is None and hasattr(error, "quantity"):
            self._diverged(error)
        self._end_fit(trainer)


def _meta_copy(meta: dict) -> dict:
    return {k: list(v) if isinstance(v, list) else v for k, v in meta.items()}
