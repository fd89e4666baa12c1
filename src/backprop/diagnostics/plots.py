"""Plots of training readings: loss, gradient-norm heat map, update ratios, activation histograms.

Needs matplotlib (``pip install backprop[plot]``), imported only when a plot is
drawn. Figures and files are made as :mod:`backprop.train.plotting` makes them (the
loss plot is drawn there too): figures on an Agg canvas of their own, never pyplot,
so nothing opens a window or switches matplotlib's backend, and every file is
written all-or-nothing, so a reader never sees half a PNG.

The inputs are :class:`~backprop.diagnostics.Readings` (``meta``, ``steps``,
``epochs``, ``nonfinite``, as recorded by ``Monitor``) and, for the loss, a
:class:`~backprop.train.History` (``steps`` and ``epochs``) when there is one.

Example::

    from backprop.diagnostics import plots
    paths = plots.write_plots(monitor.readings, trainer.history, "runs/spiral")
    # ['runs/spiral/loss_steps.png', 'runs/spiral/grad_norms.png', ...]
"""
from __future__ import annotations

import math
import os

import numpy as np

from backprop.train.plotting import (
    PlotDependencyError,
    _finite,
    _nan,
    draw_loss,
    new_figure,
    require_matplotlib,
    save_png,
)

__all__ = ["PlotDependencyError", "plot_loss", "plot_grad_norm_heatmap", "plot_update_ratios",
           "plot_activation_histograms", "write_plots", "UPDATE_RATIO_GUIDE", "PLOT_FILES"]

#: The update-to-weight ratio guide line: about 1e-3 per step is the rule of thumb
#: for a healthy learning rate (Karpathy, CS231n notes, "ratio of weights:updates").
UPDATE_RATIO_GUIDE = 1e-3

#: File names :func:`write_plots` uses, by plot.
PLOT_FILES = {"loss": "loss_steps.png", "grad_norms": "grad_norms.png",
              "update_ratios": "update_ratios.png", "activations": "activations.png"}

#: Most activation histograms drawn in one figure. A deeper network shows its activation
#: layers first (the Linear outputs feeding them are dropped, the network's output kept),
#: then an evenly spaced choice that always includes the first and the last layer: the
#: first layers are where vanishing signals and dead units start.
MAX_HISTOGRAMS = 12


def _save(fig, path) -> str:
    """Write ``fig`` as a PNG at ``path`` atomically (``train.plotting.save_png``)."""
    return save_png(fig, path, "plots")


def _weight_names(readings) -> list:
    """Parameter tensors to show, one row per layer: the ``.weight`` tensors in model order
    (every parameter when no name ends in ``.weight``)."""
    if hasattr(readings, "layer_weight_names"):
        names = list(readings.layer_weight_names())
    else:
        names = [n for n in readings.meta.get("params", []) if n.endswith(".weight")]
    if not names:
        names = list(readings.meta.get("params", []))
    if not names:  # meta without names: whatever the records hold, first seen first
        seen: dict = {}
        for rec in readings.steps:
            for n in rec.get("params", {}) or {}:
                seen.setdefault(n, None)
        names = [n for n in seen if n.endswith(".weight")] or list(seen)
    return names


def _series(readings, name: str, key: str):
    """(steps, values) of one per-parameter reading; NaN where missing or non-finite."""
    steps, values = [], []
    for rec in readings.steps:
        entry = (rec.get("params") or {}).get(name)
        steps.append(rec["step"])
        values.append(_nan(None if entry is None else entry.get(key)))
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


# -- the plots --------------------------------------------------------------------------------
def plot_loss(readings_or_history, path, *, nonfinite=None) -> str:
    """Training loss per step (and per-epoch train/validation loss) against the step.

    Takes a ``Readings`` or a ``History`` (both have ``steps`` and ``epochs``). The first
    non-finite value is marked by a red line at its step: the source's ``nonfinite``
    record, else ``nonfinite`` (a Readings' record, for a History that stops before the
    step that went NaN/Inf), else the first NaN/Inf loss among the steps.
    Returns ``path``.

    Example::

        plot_loss(trainer.history, "runs/spiral/loss_steps.png",
                  nonfinite=monitor.readings.nonfinite)
    """
    fig = new_figure(figsize=(7, 4))
    draw_loss(fig.subplots(), readings_or_history, nonfinite=nonfinite)
    fig.tight_layout()
    return _save(fig, path)


def plot_grad_norm_heatmap(readings, path) -> str:
    """A heat map of each layer's weight-gradient norm: layers (rows, input at the top) by
    recorded steps (columns), on a log colour scale. Vanishing gradients show as a pale
    top, exploding ones as a dark band growing to the right. Returns ``path``.

    Example::

        plot_grad_norm_heatmap(monitor.readings, "grad_norms.png")
    """
    require_matplotlib()
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    names = _weight_names(readings)
    steps = [r["step"] for r in readings.steps]
    grid = np.full((len(names), len(steps)), np.nan)
    for i, name in enumerate(names):
        grid[i] = _series(readings, name, "grad_norm")[1]
    fig = new_figure(figsize=(8, 1.2 + 0.45 * max(1, len(names))))
    ax = fig.subplots()
    positive = grid[np.isfinite(grid) & (grid > 0)]
    if positive.size and steps:
        lo, hi = float(positive.min()), float(positive.max())
        if hi <= lo:
            lo, hi = lo / 10, hi * 10
        shown = np.where(np.isfinite(grid) & (grid > 0), grid, np.nan)
        cmap = colormaps["viridis"].with_extremes(bad="lightgrey")  # zero/missing/non-finite
        # Columns at their own steps: the edges sit halfway between recorded steps.
        x = np.asarray(steps, dtype=float)
        if x.size > 1:
            mids = (x[1:] + x[:-1]) / 2
            edges = np.concatenate([[x[0] - (mids[0] - x[0])], mids, [x[-1] + (x[-1] - mids[-1])]])
        else:
            edges = np.array([x[0] - 0.5, x[0] + 0.5])
        mesh = ax.pcolormesh(edges, np.arange(len(names) + 1), np.ma.masked_invalid(shown),
                             cmap=cmap, norm=LogNorm(vmin=lo, vmax=hi), shading="flat")
        fig.colorbar(mesh, ax=ax, label="gradient norm (log scale)")
        ax.set_yticks(np.arange(len(names)) + 0.5)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()  # first layer on top, as the network is usually drawn
        ax.set_ylabel("weight of layer (input at top)")
        greyed = bool(np.isnan(shown).any())
    else:
        greyed = False
        ax.text(0.5, 0.5, "no finite gradient norms recorded", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("optimizer step")
    # Say what grey means: a dead layer must not look like a gap in the data.
    ax.set_title("Gradient norm per layer" +
                 ("\n(grey: zero, missing or non-finite gradient)" if greyed else ""))
    fig.tight_layout()
    return _save(fig, path)


def plot_update_ratios(readings, path) -> str:
    """Each layer's update-to-weight ratio ||Δw|| / ||w|| over the steps (log scale) with
    the 1e-3 guide line: far below it the layer barely learns (learning rate too low), far
    above it the steps are too large. Steps that changed a layer not at all (ratio 0) are
    triangles at the bottom. Returns ``path``.

    Example::

        plot_update_ratios(monitor.readings, "update_ratios.png")
    """
    fig = new_figure(figsize=(8.5, 4))
    ax = fig.subplots()
    from matplotlib import colormaps
    drawn = False
    series = [(name, *_series(readings, name, "update_ratio"))
              for name in _weight_names(readings)]
    # Past ten layers the default colours repeat: shade by depth instead (dark = input side).
    shades = list(colormaps["viridis"](np.linspace(0, 0.9, len(series)))) \
        if len(series) > 10 else [None] * len(series)
    positive = [v for _, _, y in series for v in y[np.isfinite(y) & (y > 0)]]
    # A ratio of exactly 0 (the step changed nothing: a gradient too small to move a float32
    # weight, or none at all) has no place on a log scale, yet it is the layer to look at:
    # it is drawn as triangles on a floor below every other value.
    floor = (min(positive) if positive else UPDATE_RATIO_GUIDE) / 10
    for (name, x, y), color in zip(series, shades, strict=True):
        keep = np.isfinite(y) & (y > 0)
        zero = y == 0
        if keep.any():
            color = ax.plot(x[keep], y[keep], lw=1.2, label=name, color=color)[0].get_color()
            drawn = True
        if zero.any():
            ax.plot(x[zero], np.full(int(zero.sum()), floor), ls="none", marker="v", ms=5,
                    color=color, label=f"{name}: no change (ratio 0)")
            drawn = True
    ax.axhline(UPDATE_RATIO_GUIDE, color="black", ls="--", lw=1,
               label=f"guide {UPDATE_RATIO_GUIDE:g}")
    ax.set_yscale("log")
    if not drawn:
        ax.text(0.5, 0.6, "no update ratios recorded", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("||update|| / ||weight||")
    ax.set_title("Update-to-weight ratio per layer")
    # Beside the axes, not over the lines: deep networks have many entries.
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
              ncol=1 if len(series) <= 14 else 2)
    fig.tight_layout()
    return _save(fig, path)


def plot_activation_histograms(readings, path, step=None) -> str:
    """One histogram per layer output, from the 20-bin histograms the Monitor stores.

    Uses the last recorded step that has activation readings, or ``step`` when given.
    Each title gives the layer, its kind, mean and std, and the dead (ReLU family) or
    saturated (sigmoid/tanh) fraction. Returns ``path``.

    Example::

        plot_activation_histograms(monitor.readings, "activations.png")
    """
    require_matplotlib()
    candidates = [r for r in readings.steps if r.get("activations")]
    if step is not None:
        candidates = [r for r in candidates if r["step"] == step]
        if not candidates:
            have = [r["step"] for r in readings.steps if r.get("activations")]
            raise ValueError(f"plot_activation_histograms: no activation readings at step "
                             f"{step}; steps with them: {have[:10]}{'...' if len(have) > 10 else ''}")
    record = candidates[-1] if candidates else None
    acts = {} if record is None else record["activations"]
    order = [n for n in readings.meta.get("layers", []) if n in acts]
    order += [n for n in acts if n not in order]
    order = [n for n in order if isinstance(acts[n].get("hist"), dict)]
    total = len(order)
    order = _choose_layers(order, acts, MAX_HISTOGRAMS)
    cols = min(4, max(1, len(order)))
    rows = max(1, math.ceil(len(order) / cols))
    fig = new_figure(figsize=(3.2 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(order):]:
        ax.axis("off")
    if not order:
        axes[0][0].axis("on")
        axes[0][0].text(0.5, 0.5, "no activation histograms recorded", ha="center",
                        va="center", transform=axes[0][0].transAxes)
    for ax, name in zip(axes.flat, order, strict=False):  # the spare axes were turned off
        a = acts[name]
        edges = np.asarray(a["hist"]["edges"], dtype=float)
        counts = np.asarray(a["hist"]["counts"], dtype=float)
        if edges.size == counts.size + 1 and counts.size and np.all(np.isfinite(edges)):
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue",
                   edgecolor="white", lw=0.3)
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center",
                    transform=ax.transAxes)
        extra = ""
        if _finite(a.get("dead_fraction")):
            extra = f", dead {a['dead_fraction']:.0%}"
        elif _finite(a.get("saturated_fraction")):
            extra = f", saturated {a['saturated_fraction']:.0%}"
        ax.set_title(f"{name} ({a.get('kind', '?')})\nmean {_nan(a.get('mean')):.2g}, "
                     f"std {_nan(a.get('std')):.2g}{extra}", fontsize=8)
        ax.tick_params(labelsize=7)
    title = "Activations (layer outputs)" + ("" if record is None else
                                             f" at step {record['step']}")
    if len(order) < total:
        title += f": {len(order)} of {total} layers"
    fig.suptitle(title)
    if order:
        fig.supxlabel("output value", fontsize=9)
        fig.supylabel("count (entries in the batch)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _choose_layers(order: list, acts: dict, most: int) -> list:
    """At most ``most`` of the layers in ``order`` (see :data:`MAX_HISTOGRAMS`), in order."""
    if len(order) <= most:
        return order
    # The activations and the output first: a Linear output says less than the
    # activation it feeds.
    kept = [n for i, n in enumerate(order)
            if acts[n].get("kind") != "linear" or i == len(order) - 1]
    if len(kept) <= most:
        return kept
    picks = np.linspace(0, len(kept) - 1, most).round().astype(int)
    return [kept[i] for i in sorted(set(picks.tolist()))]


def write_plots(readings, history=None, folder=".") -> list:
    """Write every plot the data supports into ``folder``; returns the paths written.

    The loss plot uses ``history`` when given (every step), else the readings;
    the gradient and update plots need recorded steps, the histograms need
    activation readings. Names are :data:`PLOT_FILES`.

    Example::

        write_plots(Readings.from_jsonl("runs/x/diagnostics.jsonl"),
                    History.from_jsonl("runs/x/metrics.jsonl"), "runs/x")
    """
    require_matplotlib()  # fail before anything is written when matplotlib is missing
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    written = []
    loss_source = history if history is not None and (history.steps or history.epochs) \
        else readings
    if loss_source is not None and (loss_source.steps or loss_source.epochs):
        written.append(plot_loss(loss_source, os.path.join(folder, PLOT_FILES["loss"]),
                                 nonfinite=getattr(readings, "nonfinite", None)))
    if readings is None:
        return written
    has_params = any(r.get("params") for r in readings.steps)
    if has_params:
        written.append(plot_grad_norm_heatmap(readings,
                                              os.path.join(folder, PLOT_FILES["grad_norms"])))
        if any(_finite(p.get("update_ratio")) for r in readings.steps
               for p in (r.get("params") or {}).values()):
            written.append(plot_update_ratios(readings,
                                              os.path.join(folder, PLOT_FILES["update_ratios"])))
    if any(r.get("activations") for r in readings.steps):
        written.append(plot_activation_histograms(
            readings, os.path.join(folder, PLOT_FILES["activations"])))
    return written
