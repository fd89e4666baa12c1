"""The one place the diagnostics touch PyTorch: a :class:`~backprop.diagnostics.Monitor`
pointed at a ``torch.nn.Module`` and a ``torch.optim.Optimizer`` reads them through this.

The Monitor's logic is framework-free: it asks an adapter for NumPy arrays (a
parameter's values, its gradient, a module's output), whether gradients are enabled,
the batch size of a forward call and the activation kind of a module. This module
answers those questions for PyTorch objects, importing ``torch`` only when such an
object is given (``import backprop`` never imports it). It also sees activation
*functions* called inside a module's ``forward`` (``F.relu(self.fc(x))``), through a
``TorchFunctionMode`` active during the forward passes of recorded steps.

What PyTorch's hooks cannot show, and so the Monitor cannot either:

- functional activations called outside any module's ``forward`` (in the training loop
  itself), or written as arithmetic (``x.clamp(min=0)``, ``x * (x > 0)``);
- the insides of ``torch.jit.script``-ed modules and of C++ extensions;
- with ``torch.compile``: the module hooks run as graph breaks (the compiler is told not
  to trace them, so it splits the forward around the hooked modules), and leaf modules
  are measured; functional activations are not watched in a model that holds a
  compiled module (the compiler fails under the ``TorchFunctionMode`` the watch uses);

Where the tensors live: on the CPU the Monitor reads them as NumPy views (no copy). On
any other device (a GPU) everything is reduced where the tensors are and only numbers
come back: the every-step NaN/Inf check's total gradient norm, the noise windows'
running sums, a recorded step's per-parameter gradient, weight and update norms
(:class:`TorchLayout`, PyTorch's ``_foreach`` kernels), and each layer output's
moments, dead and saturated counts; only a histogram's sample of at most
``HISTOGRAM_SAMPLE`` values per layer is copied (:meth:`TorchAdapter.activation_stats`).
The tests run that path on CPU tensors (``device_reductions``); no GPU has run it yet.

Example::

    import torch
    from backprop.diagnostics import Monitor, diagnose

    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Monitor(model, opt, interval=10) as mon:
        for x, y in batches:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            mon.log_loss(loss)
            opt.step()
    print(diagnose(mon.readings))
"""
from __future__ import annotations

import contextlib
import functools
import math
import threading

import numpy as np

from backprop.diagnostics._layout import Layout

__all__ = ["TorchAdapter", "TorchLayout", "is_torch_object"]

#: The name recorded in the readings' ``meta["framework"]`` for a PyTorch run.
FRAMEWORK = "torch"


def is_torch_object(obj) -> bool:
    """Whether ``obj``'s class is, or derives from, a class defined in ``torch``.

    Reads only class names, so it never imports torch (a user's ``class Net(nn.Module)``
    is defined in their own module; one of its bases comes from torch).
    """
    try:
        mro = type(obj).__mro__
    except AttributeError:
        return False
    return any((getattr(c, "__module__", "") or "").split(".")[0] == "torch" for c in mro)


def _module_kinds(torch):
    """(module class, activation kind) pairs, first match wins; PyTorch's ReLU family
    included (ReLU6 and Threshold-free relatives count as "relu", PReLU/RReLU as leaky)."""
    nn = torch.nn
    return (
        (nn.ReLU, "relu"), (nn.ReLU6, "relu"), (nn.LeakyReLU, "leaky_relu"),
        (nn.PReLU, "leaky_relu"), (nn.RReLU, "leaky_relu"), (nn.ELU, "elu"), (nn.CELU, "elu"),
        (nn.SELU, "elu"), (nn.GELU, "gelu"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"),
        (nn.Softplus, "softplus"), (nn.SiLU, "silu"),
        (nn.Linear, "linear"), (nn.Bilinear, "linear"), (nn.Conv1d, "linear"),
        (nn.Conv2d, "linear"), (nn.Conv3d, "linear"),
    )


def _quiet_modules(torch) -> frozenset:
    """PyTorch's module classes whose own ``forward`` calls no activation function: the
    containers, and the layers that compute with one functional op of their own
    (``F.linear``, ``F.conv2d``, ``F.batch_norm``, ...). Exact classes only: a subclass
    may call anything in its ``forward``."""
    nn = torch.nn
    names = ("Sequential", "ModuleList", "ModuleDict", "Identity", "Flatten", "Unflatten",
             "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
             "ConvTranspose2d", "ConvTranspose3d", "MaxPool1d", "MaxPool2d", "MaxPool3d",
             "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
             "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
             "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
             "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "Dropout", "Dropout1d",
             "Dropout2d", "Dropout3d", "AlphaDropout", "Embedding", "EmbeddingBag",
             "Upsample", "PixelShuffle", "PixelUnshuffle", "ZeroPad2d", "Softmax",
             "LogSoftmax")
    return frozenset(getattr(nn, n) for n in names if hasattr(nn, n))


def _function_kinds(torch):
    """Activation functions (as ``__torch_function__`` sees them) -> their kind."""
    F = torch.nn.functional
    T = torch.Tensor
    table = {
        "relu": (F.relu, F.relu_, torch.relu, torch.relu_, T.relu, T.relu_, F.relu6),
        "leaky_relu": (F.leaky_relu, F.leaky_relu_, F.prelu, F.rrelu, F.rrelu_),
        "elu": (F.elu, F.elu_, F.selu, F.selu_, F.celu, F.celu_, torch.selu, torch.celu),
        "gelu": (F.gelu,),
        "silu": (F.silu,),
        "softplus": (F.softplus,),
        "sigmoid": (torch.sigmoid, T.sigmoid, T.sigmoid_, F.sigmoid),
        "tanh": (torch.tanh, T.tanh, T.tanh_, F.tanh),
    }
    kinds = {}
    for kind, funcs in table.items():
        for f in funcs:
            kinds[f] = kind
    return kinds


class TorchAdapter:
    """Answers the Monitor's questions about PyTorch objects with NumPy arrays and numbers.

    Args:
        model: the ``torch.nn.Module`` being watched.
        optimizer: its ``torch.optim.Optimizer``, or None.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module`` or ``optimizer`` not a
            ``torch.optim.Optimizer``.
    """

    framework = FRAMEWORK

    def __init__(self, model, optimizer=None):
        import torch  # only here: a PyTorch object was given, so torch is installed

        self.torch = torch
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Monitor: a PyTorch model must be a torch.nn.Module, got "
                            f"{type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Monitor: with a PyTorch model the optimizer must be a "
                            f"torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.version = torch.__version__
        self._kinds = _module_kinds(torch)
        self._kind_of_class: dict = {}
        self._functions = _function_kinds(torch)
        self._quiet = _quiet_modules(torch)
        # Dtypes NumPy reads as they are (the fast path of _numpy).
        self._plain = frozenset({torch.float32, torch.float64, torch.float16})
        self._compiled = any(type(m).__name__ == "OptimizedModule" for m in model.modules())
        if self._compiled:
            # torch.compile cannot run a forward under the function watch's
            # TorchFunctionMode (dynamo fails on the mode stack): module hooks only.
            self.functional_watch = None
        # The adapter's own tensor calls, made inside a watched forward, are not the model's:
        # hide them from the function watch (and save its per-call cost).
        self._unwatched = getattr(torch._C, "DisableTorchFunction", contextlib.nullcontext)

    def layout(self, named: list) -> Layout:
        """The Monitor's layout of these ``(name, parameter)`` pairs: NumPy's on the CPU,
        :class:`TorchLayout` where a parameter lives on another device."""
        if all(p.device.type == "cpu" for _, p in named):
            return Layout(named, self)
        return TorchLayout(named, self)

    # -- arrays ---------------------------------------------------------------------------
    def _numpy(self, t) -> np.ndarray:
        """A NumPy view of a CPU tensor (a copy from any other device or odd dtype)."""
        t = t.detach()
        if t.dtype in self._plain and t.is_cpu and t.layout == self.torch.strided:
            return t.numpy()  # the usual case: a view, no copy
        if t.layout != self.torch.strided:  # sparse gradients (nn.Embedding(sparse=True))
            t = t.to_dense()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.dtype not in self._plain:  # bfloat16 and others NumPy lacks: in float32
            t = t.abs() if t.is_complex() else t.to(self.torch.float32)
        return t.numpy()

    def data(self, p) -> np.ndarray:
        """A parameter's values (a view of a CPU tensor: no copy)."""
        return self._numpy(p)

    def grad(self, p):
        """A parameter's gradient, or None when it has none."""
        g = p.grad
        if g is None:
            return None
        if g.dtype in self._plain:
            # The usual case, read every step: a CPU gradient outside the graph, whose
            # NumPy view needs no detach() (a new tensor each call) nor checks first.
            try:
                return g.numpy()
            except (RuntimeError, TypeError):  # another device, sparse, or create_graph=True
                pass
        return self._numpy(g)

    def grad_enabled(self) -> bool:
        return self.torch.is_grad_enabled()

    def first_tensor(self, value):
        """The tensor itself, or the first tensor of a tuple/list output; None if none."""
        return _monitor()._first_tensor(value, self.torch.Tensor)

    def output_array(self, value):
        """A copy of a module output's first tensor (ndim >= 1, floating), or None."""
        t = self.first_tensor(value)
        if t is None:
            return None
        with self._unwatched():
            if t.ndim == 0 or not (t.is_floating_point() or t.is_complex()):
                return None
            if self.device_reductions or t.device.type != "cpu":
                # Kept where it is (a copy on its device): its statistics are reduced there
                # and only numbers come back (activation_stats below).
                return t.detach().clone()
            # A copy: an in-place op later in forward (ReLU(inplace=True)) must not change it.
            return np.array(self._numpy(t), copy=True)

    # -- a module's outputs on a device: reduced there --------------------------------------
    device_reductions = False
    """Reduce layer outputs with PyTorch where they live even on the CPU (for tests: the
    GPU's path, run on CPU tensors). Outputs on any other device always are."""

    def output_sum(self, t) -> float:
        """The sum of a kept output (float64; non-finite if any entry is)."""
        with self._unwatched():
            return float(self._real(t).sum(dtype=self.torch.float64))

    def nonfinite_counts(self, t) -> str | None:
        """"N NaN and M infinite values out of S" for a kept output, None when all finite."""
        with self._unwatched():
            t = self._real(t)
            n_nan, n_inf = int(t.isnan().sum()), int(t.isinf().sum())
        if not n_nan and not n_inf:
            return None
        return f"{n_nan} NaN and {n_inf} infinite values out of {t.numel()}"

    def _real(self, t):
        """As NumPy reads it (``astype(float64)`` keeps a complex value's real part)."""
        return t.real if t.is_complex() else t

    def activation_stats(self, kind: str, tensors: list, histograms: bool = True,
                         sums: list | None = None) -> dict:
        """:func:`~backprop.diagnostics.monitor.activation_stats` of outputs kept on their
        device: the moments, dead and saturated counts are reduced there (in float64), and
        only the histogram's sample (at most HISTOGRAM_SAMPLE values) comes to the CPU."""
        m = _monitor()

        torch = self.torch
        with self._unwatched():
            flat = [self._real(t).reshape(-1) for t in tensors]
            flat = flat[0] if len(flat) == 1 else torch.cat(flat)
            if not flat.is_floating_point():
                flat = flat.double()
            n = flat.numel()
            total = sum(sums) if sums is not None else float(flat.sum(dtype=torch.float64))
            finite = math.isfinite(total) or bool(torch.isfinite(flat).all())
            if finite and not math.isfinite(total):
                total = float(flat.sum(dtype=torch.float64))
            mean = total / n
            if finite:
                wide = flat.double()
                mean_sq = float(wide.square().sum()) / n
                var = mean_sq - mean * mean
                if var < 1e-4 * mean_sq:  # cancellation: centre first (as the NumPy path)
                    var = float((wide - mean).square().sum()) / n
                std = math.sqrt(max(var, 0.0))
            else:
                std = math.nan
            stats = {"kind": kind, "mean": mean, "std": std,
                     "dead_fraction": None, "saturated_fraction": None}
            if kind in m.DEAD_KINDS:
                alive = [(t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(1, -1))
                         .amax(dim=0) > 0 for t in (self._real(t) for t in tensors)]
                if len(alive) == 1:
                    units = alive[0]
                elif all(a.shape == alive[0].shape for a in alive):
                    units = torch.stack(alive).any(dim=0)
                else:
                    units = torch.cat(alive)
                stats["dead_fraction"] = 1.0 - int(units.sum()) / units.numel()
            elif kind == "sigmoid":
                limit = math.sqrt(0.25 - m.SIGMOID_SATURATION_DERIVATIVE)
                stats["saturated_fraction"] = int(((flat - 0.5).abs() > limit).sum()) / n
            elif kind == "tanh":
                limit = math.sqrt(1.0 - m.TANH_SATURATION_DERIVATIVE)
                stats["saturated_fraction"] = int((flat.abs() > limit).sum()) / n
            if not histograms:
                stats["hist"] = None
                return stats
            values = flat if finite else flat[torch.isfinite(flat)]
            values = values[::m.sample_stride(values.numel(), tuple(tensors[0].shape))]
            sample = self._numpy(values)
        stats["hist"] = m._histogram(sample) if sample.size else {"edges": [], "counts": []}
        return stats

    def batch_len(self, args):
        """The length of the first tensor argument's first axis, or None."""
        return _monitor()._batch_len(args, self.torch.Tensor)

    @staticmethod
    def unwrap(model):
        """The user's model inside a ``torch.compile`` wrapper (whose parameter and module
        names carry an ``_orig_mod.`` prefix); any other model as it is."""
        # By name: importing torch._dynamo to check the class would cost a second.
        if type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            return model._orig_mod
        return model

    def hook(self, fn):
        """``fn`` made safe to register on a ``torch.compile``-d model: the compiler runs
        it as Python (a graph break) instead of tracing it into the graph. On a model that
        is not compiled, ``fn`` itself: the wrapper costs about 50 µs a call."""
        if not self._compiled:
            return fn
        disable = getattr(getattr(self.torch, "compiler", None), "disable", None)
        return disable(fn) if disable is not None else fn

    def kind(self, module) -> str:
        cls = type(module)
        kind = self._kind_of_class.get(cls)
        if kind is None:  # first match wins; remembered per class (asked every recorded step)
            kind = next((k for c, k in self._kinds if issubclass(cls, c)), "other")
            self._kind_of_class[cls] = kind
        return kind

    # -- activation functions called inside forward -----------------------------------------
    def functional_watch(self, model, on_output, skip_module):
        """Watch activation functions called inside ``model``'s modules' ``forward``.

        While ``model`` runs forward, every call of a function in the ReLU, sigmoid and
        tanh families is reported as ``on_output(name, kind, array)`` (a NumPy copy of
        its output); ``name`` is the
        name of the innermost module running it plus the function's name and ``()``
        (``"block.relu()"``, ``"relu()"`` in the top module, ``"relu()#2"`` for the
        second call in one module's forward). Calls inside a module for which
        ``skip_module(module)`` is true (an ``nn.ReLU`` whose output its own forward hook
        sees) are not reported.

        Returns:
            the hook handles (``.remove()`` each to stop watching); none when no module of
            ``model`` can make such a call outside a skipped module (every one is a
            PyTorch layer known to call none, or skipped): then the forward runs unwatched.
        """
        quiet = self._quiet
        if all(type(m) in quiet or skip_module(m) for m in model.modules()):
            return []
        torch = self.torch
        # Per thread: PyTorch's mode stack is per thread, so a forward running in another
        # thread (a validation thread, a data-parallel replica) keeps its own depth.
        local = threading.local()

        def mine():
            if not hasattr(local, "stack"):
                local.stack, local.counts, local.depth = [], {}, 0
            return local

        # The mode's class is made once (making a class costs tens of µs a recorded step).
        mode = _watch_mode_type(torch)(
            functions=self._functions, to_array=self.output_array, on_output=on_output,
            skip_module=skip_module, names={id(m): n for n, m in model.named_modules()},
            state=mine, grad_enabled=torch.is_grad_enabled)

        def pre(module, args):
            state = mine()
            if module is model:
                state.counts.clear()
                if state.depth == 0:
                    mode.__enter__()
                state.depth += 1
            state.stack.append(module)

        def post(module, args, output):
            state = mine()
            if state.stack and state.stack[-1] is module:
                state.stack.pop()
            if module is model and state.depth > 0:
                state.depth -= 1
                if state.depth == 0:
                    mode.__exit__(None, None, None)

        handles = []
        pre, post = self.hook(pre), self.hook(post)  # each wrapper made once: they cost
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post, always_call=True))
        handles.append(_ModeHandle(mode, mine, torch))
        return handles


class TorchLayout(Layout):
    """The Monitor's layout for PyTorch parameters on a GPU: every reduction stays there.

    On a device other than the CPU, everything the Monitor computes from parameters is
    computed where they live, with PyTorch's ``_foreach`` kernels, and only the numbers
    come back: the total gradient norm checked every step and the noise windows' running
    sums (one tensor per parameter, in its dtype) on every step that needs them; and on
    recorded steps each parameter's gradient, weight and update norms (the weights
    before the update kept as a copy on the device) and mean absolute gradient, in one
    transfer. No host buffer the size of the model is allocated. Gradients PyTorch's
    kernels cannot take as they are (sparse, or in a dtype NumPy lacks) and a missing
    gradient go through a dense float copy (zeros for a missing one).

    On the CPU, NumPy's BLAS reads the same memory faster than ``_foreach_norm`` (15 µs
    against 33 µs for the 235k gradients of a 784-256-128-10 MLP): :class:`Layout`'s
    own NumPy methods run there.
    """

    def __init__(self, named: list, adapter: TorchAdapter):
        torch = self.torch = adapter.torch
        as_numpy = {torch.float16: np.float16, torch.float32: np.float32,
                    torch.float64: np.float64}
        # Sizes and dtypes from the tensors themselves: no copy of a device tensor.
        self._index(named, adapter, lambda p: int(p.numel()),
                    lambda p: np.dtype(as_numpy.get(p.dtype, np.float32)))
        self._plain = adapter._plain
        self._strided = torch.strided
        self._foreach_norm = getattr(torch, "_foreach_norm", None)
        self._foreach_add_ = getattr(torch, "_foreach_add_", None)
        self._present: list = []
        self._grad_norms: list = []     # device scalars of the recorded step
        self._grad_l1: list = []
        self._before: list = []         # device copies of the weights
        self._change: list = []

    # -- recorded steps: per-parameter norms on the device, one transfer ----------------------
    def gather_grads(self, windows: list | tuple = ()) -> list:
        grads = self._grads()
        self._present = [i for i, p in enumerate(self.params)
                         if p.grad is not None and p.grad.numel() == self._sizes[i]]
        self._grad_norms = self._norms(grads, 2)
        self._grad_l1 = self._norms(grads, 1)
        self._add_to_windows(windows, grads)
        return self._present

    def gathered_sq_norm(self) -> float:
        return self._sum_sq(self._grad_norms)

    def gather_weights(self, row: int) -> None:
        """Keep the weights before the update (``row`` is always BEFORE here: the change
        comes from :meth:`record_change`), as a copy on their device."""
        self._before = [w.clone() for w in self._weights()]

    def record_change(self) -> None:
        # The difference of two nearby floats is exact: each dtype loses nothing.
        self._change = [a - b for a, b in zip(self._weights(), self._before, strict=True)] \
            if self._before else []

    def _weights(self) -> list:
        """The parameters' values (float32 where NumPy lacks their dtype, as it reads them)."""
        plain, torch = self._plain, self.torch
        return [p.detach() if p.dtype in plain else p.detach().to(torch.float32)
                for p in self.params]

    def norms(self, rows: int) -> tuple:
        if not self.params:
            return [[] for _ in range(rows)], []
        torch = self.torch
        parts = [self._grad_norms, self._norms(self._before, 2)]
        if rows > 2:
            parts.append(self._norms(self._change, 2))
        parts.append(self._grad_l1)
        flat = torch.cat([self._stack(group) for group in parts]).cpu().tolist()
        k = len(self.params)
        groups = [flat[i * k:(i + 1) * k] for i in range(len(parts))]
        abs_mean = [v / n for v, n in zip(groups[-1], self._sizes, strict=True)]
        return groups[:rows], abs_mean

    def _norms(self, tensors: list, order: int) -> list:
        """Each tensor's ``order``-norm, as scalar tensors on its device."""
        if self._foreach_norm is not None:
            return list(self._foreach_norm(tensors, order))
        return [self.torch.linalg.vector_norm(t, order) for t in tensors]  # pragma: no cover

    def _stack(self, norms: list):
        """Scalar tensors in one float64 vector (on their device)."""
        torch = self.torch
        if len({n.dtype for n in norms}) > 1:  # parameters of several dtypes
            norms = [n.double() for n in norms]
        return torch.stack(norms).double()

    def _sum_sq(self, norms: list) -> float:
        """Σ norm² in float64 (one transfer)."""
        if not norms:
            return 0.0
        return float(self._stack(norms).square().sum())

    def _dense(self, p, g):
        """``g`` as a dense tensor of ``p``'s shape in a float dtype (zeros for None)."""
        torch = self.torch
        if g is None:
            return torch.zeros_like(p, dtype=torch.float32 if p.dtype not in self._plain
                                    else p.dtype, layout=torch.strided)
        g = g.detach()
        if g.layout != self._strided:
            g = g.to_dense()
        if g.is_complex():
            g = g.abs()
        if g.dtype not in self._plain:
            g = g.to(torch.float32)
        return g

    def _grads(self) -> list:
        """Every watched parameter's gradient as a tensor PyTorch's kernels take."""
        out = []
        plain, strided = self._plain, self._strided
        for p in self.params:
            g = p.grad
            if g is None or g.dtype not in plain or g.layout != strided:
                g = self._dense(p, g)
            elif g.requires_grad:  # a gradient kept with create_graph=True
                g = g.detach()
            out.append(g)
        return out

    def _total_sq(self, tensors: list) -> float:
        """Σ‖t‖² over ``tensors``, on their device, one number back; in float64 when the
        float32 norms overflowed (as :func:`sq_norm` does)."""
        total = self._sum_sq(self._norms(tensors, 2))
        if not math.isfinite(total):
            total = self._sum_sq(self._norms([t.double() for t in tensors], 2))
        return total

    def grad_sq_norm(self) -> float:
        return self._total_sq(self._grads())

    def window_step(self, windows: list) -> float:
        grads = self._grads()
        self._add_to_windows(windows, grads)
        return self._total_sq(grads)

    def _add_to_windows(self, windows, grads: list) -> None:
        for window in windows:
            if window.sum is None:
                window.sum = self.sum_start(grads)
            else:
                self.sum_add(window.sum, grads)

    @staticmethod
    def sum_start(grads):
        return [g.clone() for g in grads]

    def sum_add(self, total, grads) -> None:
        if self._foreach_add_ is not None:
            self._foreach_add_(total, grads)
        else:  # pragma: no cover
            for t, g in zip(total, grads, strict=True):
                t.add_(g)

    def sum_sq_norm(self, total) -> float:
        return self._total_sq(total)

    def sum_to_flat(self, total) -> np.ndarray:
        if not total:
            return np.zeros(0, self.dtype)
        return np.concatenate([self.arrays._numpy(t).reshape(-1).astype(self.dtype, copy=False)
                               for t in total])

    def sum_from_flat(self, flat: np.ndarray):
        torch = self.torch
        out = []
        for p, start, size in zip(self.params, self.offsets, self.sizes, strict=True):
            piece = torch.from_numpy(np.array(flat[start:start + size])).reshape(p.shape)
            dtype = p.dtype if p.dtype in self._plain else torch.float32
            out.append(piece.to(device=p.device, dtype=dtype))
        return out


@functools.cache
def _watch_mode_type(torch):
    """The TorchFunctionMode class of :meth:`TorchAdapter.functional_watch` (made once:
    torch is imported only when a PyTorch object is given)."""
    from torch.overrides import TorchFunctionMode

    class _Watch(TorchFunctionMode):
        """Reports the activation functions called while a watched forward runs."""

        def __init__(self, *, functions, to_array, on_output, skip_module, names, state,
                     grad_enabled):
            super().__init__()
            self.functions, self.to_array, self.on_output = functions, to_array, on_output
            self.skip_module, self.names, self.state = skip_module, names, state
            self.grad_enabled = grad_enabled
            self.removed = False  # once the handles are removed

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if self.removed:  # left on another thread's stack by a forward under way: inert
                return out
            kind = self.functions.get(func)
            state = self.state()
            stack, counts = state.stack, state.counts
            if kind is not None and stack and self.grad_enabled():
                module = stack[-1]
                if not self.skip_module(module):
                    owner = self.names.get(id(module), type(module).__name__)
                    base = f"{owner}.{getattr(func, '__name__', kind).rstrip('_')}()" \
                        if owner else f"{getattr(func, '__name__', kind).rstrip('_')}()"
                    n = counts.get(base, 0) + 1
                    counts[base] = n
                    array = self.to_array(out)
                    if array is not None:
                        self.on_output(base if n == 1 else f"{base}#{n}", kind, array)
            return out

    return _Watch


class _ModeHandle:
    """Removed with the hooks: leaves no watch behind when the hooks go while a forward
    is under way (the Monitor closed from inside it, or a forward that never reached its
    end), in the thread that removes them."""

    def __init__(self, mode, state, torch):
        self.mode, self.state, self.torch = mode, state, torch

    def remove(self):
        mode = self.mode
        mode.removed = True
        state = self.state()
        state.stack.clear()
        if state.depth > 0:
            state.depth = 0
            if _top_function_mode(self.torch) is mode:
                mode.__exit__(None, None, None)


def _monitor():
    """backprop.diagnostics.monitor, which imports this module (so not at its top)."""
    from backprop.diagnostics import monitor
    return monitor


def _top_function_mode(torch):
    """The innermost active ``TorchFunctionMode`` of this thread, or None."""
    try:
        n = torch._C._len_torch_function_stack()
        return torch._C._get_function_stack_at(n - 1) if n else None
    except AttributeError:  # an older PyTorch without these: cannot tell, leave it
        return None
