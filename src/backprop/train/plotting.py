"""Figures for files: a matplotlib figure without pyplot, written atomically, and the loss plot.

The one home of the loss plot that every surface draws (``backprop train``'s
``loss_curve.png``, the doctor's ``loss_steps.png``), and of how backprop makes and
writes a figure. matplotlib (``pip install backprop[plot]``) is imported only when a
figure is made. Figures are :class:`matplotlib.figure.Figure` objects drawn by the Agg
canvas directly: pyplot is never imported, so matplotlib's global backend is left as
the program set it, no window ever opens, and no figure needs closing.

Example::

    from backprop.train.plotting import draw_loss, new_figure, save_png
    fig = new_figure(figsize=(7, 4))
    draw_loss(fig.subplots(), trainer.history)
    save_png(fig, "runs/spiral/loss.png")
"""
from __future__ import annotations

import math
import os

from backprop.serialization import atomic_write

__all__ = ["PlotDependencyError", "require_matplotlib", "new_figure", "save_png", "draw_loss"]


class PlotDependencyError(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def require_matplotlib() -> None:
    """Raise :class:`PlotDependencyError`, naming the extra to install, without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise PlotDependencyError(
            "backprop's plots need matplotlib, which is not installed: "
            "pip install backprop[plot]") from e


def new_figure(**kwargs):
    """A :class:`matplotlib.figure.Figure` (``kwargs`` as its constructor takes them, e.g.
    ``figsize``) on an Agg canvas of its own: no pyplot, no backend switch."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path, fn: str = "plot") -> str:
    """Write ``fig`` as a 100-dpi PNG at ``path``, creating its folder; all-or-nothing
    (``serialization.atomic_write``: a reader never sees half a PNG). Returns ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100), fn)
    return path


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _nan(v) -> float:
    return float(v) if _finite(v) else math.nan


def draw_loss(ax, source, *, nonfinite=None) -> None:
    """Draw the training loss per step, and the per-epoch train/validation loss, on ``ax``.

    ``source`` is a ``History`` or a diagnostics ``Readings`` (anything with ``steps`` and
    ``epochs`` lists of records with a ``"step"``). The first non-finite value is marked
    by a red line at its step: the source's ``nonfinite`` record, else ``nonfinite`` (a
    Readings' record, for a History that stops before the step that went NaN/Inf), else
    the first NaN/Inf loss among the steps. The scale is logarithmic when every finite
    loss is positive.

    Example::

        fig = new_figure(figsize=(7, 4))
        draw_loss(fig.subplots(), trainer.history, nonfinite=monitor.readings.nonfinite)
    """
    from matplotlib.ticker import MaxNLocator

    steps = [r for r in getattr(source, "steps", []) if "step" in r]
    epochs = [r for r in getattr(source, "epochs", []) if "step" in r]
    drawn = []  # every finite loss plotted: the log scale needs some, all of them positive
    if steps:
        x = [r["step"] for r in steps]
        y = [_nan(r.get("loss")) for r in steps]
        drawn += [v for v in y if not math.isnan(v)]
        ax.plot(x, y, lw=0.8, alpha=0.6, label="batch loss")
    for key, label in (("loss", "epoch loss (train)"), ("val_loss", "validation loss")):
        pts = [(r["step"], _nan(r.get(key))) for r in epochs if key in r]
        if pts:
            drawn += [v for _, v in pts if not math.isnan(v)]
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, lw=1.5, label=label)
    own = getattr(source, "nonfinite", None)
    bad = own.get("step") if isinstance(own, dict) else None
    if bad is None and isinstance(nonfinite, dict):
        bad = nonfinite.get("step")
    if bad is None:
        bad = next((r["step"] for r in steps if "loss" in r and r["loss"] is not None
                    and not _finite(r["loss"])), None)
    if bad is not None:
        ax.axvline(bad, color="red", ls="--", lw=1, label=f"first non-finite value (step {bad})")
    # Linear when a loss is 0 or negative, or when none is finite (a run NaN from its first
    # step): matplotlib refuses a log scale with no positive value to place.
    if drawn and all(v > 0 for v in drawn):
        ax.set_yscale("log")
    if not (steps or epochs):
        ax.text(0.5, 0.5, "no loss recorded", ha="center", va="center", transform=ax.transAxes)
    elif not drawn:
        ax.text(0.5, 0.5, "no finite loss recorded", ha="center", va="center",
                transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (log scale)" if ax.get_yscale() == "log" else "loss")
    ax.set_title("Loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
