"""Plots from hand-built readings: PNG files appear, are non-empty, and are written atomically;
without matplotlib the error names the extra to install."""
from __future__ import annotations

import builtins
import math
import os

import numpy as np
import pytest

from backprop.diagnostics import plots
from backprop.diagnostics.readings import Readings
from backprop.train import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARAMS = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
          "layers.4.weight", "layers.4.bias"]
LAYERS = ["layers.1", "layers.3"]


def _hist(rng, n=20):
    edges = np.linspace(-1.0, 3.0, n + 1)
    return {"edges": edges.tolist(), "counts": rng.integers(0, 50, n).tolist()}


def make_readings(n_steps=12, interval=10, diverge_at=None) -> Readings:
    """Readings shaped like a Monitor's: three weight layers, two ReLU/Tanh outputs."""
    rng = np.random.default_rng(0)
    steps = []
    for k in range(n_steps):
        step = 1 + k * interval
        blown = diverge_at is not None and step >= diverge_at
        params = {}
        for depth, name in enumerate(PARAMS):
            g = 10.0 ** (-3 + depth // 2) * (1 + 0.1 * k)
            params[name] = {"grad_norm": math.inf if blown else g, "weight_norm": 2.0,
                            "update_ratio": None if k == 0 else 10.0 ** (-4 + depth // 2),
                            "grad_abs_mean": g / 10}
        acts = {"layers.1": {"kind": "relu", "mean": 0.4, "std": 0.6, "dead_fraction": 0.25,
                             "saturated_fraction": None, "hist": _hist(rng)},
                "layers.3": {"kind": "tanh", "mean": 0.0, "std": 0.5, "dead_fraction": None,
                             "saturated_fraction": 0.1, "hist": _hist(rng)}}
        steps.append({"step": step, "epoch": 1 + k // 4, "loss": math.nan if blown else 1.0 / (k + 1),
                      "lr": 0.01, "grad_norm": 1.0, "params": params, "activations": acts,
                      "noise": None})
    epochs = [{"epoch": e, "step": 40 * e, "loss": 1.0 / e, "val_loss": 1.2 / e}
              for e in range(1, n_steps // 4 + 1)]
    nonfinite = None if diverge_at is None else {"step": diverge_at, "kind": "loss",
                                                 "name": "loss", "detail": "nan"}
    return Readings({"interval": interval, "params": PARAMS, "layers": LAYERS,
                     "batch_size": 32}, steps, epochs, nonfinite)


def _is_png(path):
    assert os.path.getsize(path) > 1000, path
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC, path


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


def test_each_plot_writes_a_png(mpl, tmp_path):
    r = make_readings()
    for fn, name in [(plots.plot_loss, "loss.png"), (plots.plot_grad_norm_heatmap, "g.png"),
                     (plots.plot_update_ratios, "u.png"),
                     (plots.plot_activation_histograms, "a.png")]:
        path = tmp_path / name
        assert fn(r, path) == str(path)
        _is_png(path)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "g.png", "loss.png", "u.png"]  # no temp files


def test_loss_from_a_history_and_a_diverged_run(mpl, tmp_path):
    h = History(steps=[{"step": s, "epoch": 1, "loss": 1.0 / s} for s in range(1, 30)]
                + [{"step": 30, "epoch": 1, "loss": math.inf}],
                epochs=[{"epoch": 1, "step": 30, "loss": math.nan, "val_loss": 0.5}])
    _is_png(plots.plot_loss(h, tmp_path / "h.png"))
    r = make_readings(diverge_at=61)
    _is_png(plots.plot_grad_norm_heatmap(r, tmp_path / "g.png"))  # inf cells are greyed out
    _is_png(plots.plot_loss(r, tmp_path / "l.png"))


def test_histograms_of_a_chosen_step_and_a_missing_one(mpl, tmp_path):
    r = make_readings()
    _is_png(plots.plot_activation_histograms(r, tmp_path / "a.png", step=11))
    with pytest.raises(ValueError, match="no activation readings at step 12"):
        plots.plot_activation_histograms(r, tmp_path / "b.png", step=12)
    assert not (tmp_path / "b.png").exists()


def test_write_plots_writes_what_the_data_supports(mpl, tmp_path):
    r = make_readings()
    h = History(steps=[{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    paths = plots.write_plots(r, h, tmp_path / "run")
    assert [os.path.basename(p) for p in paths] == list(plots.PLOT_FILES.values())
    for p in paths:
        _is_png(p)
    # Readings without activations or update ratios: only the loss and the heat map.
    bare = make_readings(n_steps=3)
    for s in bare.steps:
        s["activations"] = {}
        for p in s["params"].values():
            p["update_ratio"] = None
    paths = plots.write_plots(bare, None, tmp_path / "bare")
    assert [os.path.basename(p) for p in paths] == ["loss_steps.png", "grad_norms.png"]


def test_plain_objects_work_too(mpl, tmp_path):
    class Plain:  # not a Readings: just the four attributes
        pass

    src = make_readings(n_steps=4)
    p = Plain()
    p.meta, p.steps, p.epochs, p.nonfinite = src.meta, src.steps, src.epochs, None
    assert len(plots.write_plots(p, None, tmp_path)) == 4


def test_a_failed_save_leaves_no_temp_file(mpl, tmp_path, monkeypatch):
    import matplotlib.figure

    def broken(self, *a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.plot_loss(make_readings(), tmp_path / "loss.png")
    assert os.listdir(tmp_path) == []


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(plots.PlotDependencyError, match=r"pip install backprop\[plot\]") as e:
        plots.plot_loss(make_readings(), tmp_path / "loss.png")
    assert isinstance(e.value, ImportError)
    with pytest.raises(ImportError, match="matplotlib"):
        plots.write_plots(make_readings(), None, tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def figures(mpl, monkeypatch):
    """Every figure a plot function saves, kept open for inspection."""
    kept = []

    def save(fig, path):
        kept.append(fig)
        fig.canvas.draw()  # labels are laid out as they would be in the file
        return path
    monkeypatch.setattr(plots, "_save", save)
    yield kept
    import matplotlib.pyplot as plt
    for fig in kept:
        plt.close(fig)


def _sup(fig, which):
    """The figure's suptitle / supxlabel / supylabel text (getters are new in matplotlib)."""
    getter = getattr(fig, f"get_sup{which}", None)
    if getter is not None:
        return getter()
    artist = getattr(fig, f"_sup{which}", None)
    return "" if artist is None else artist.get_text()


def test_every_plot_is_labelled(figures, tmp_path):
    r = make_readings()
    plots.plot_loss(r, tmp_path / "l.png")
    plots.plot_grad_norm_heatmap(r, tmp_path / "g.png")
    plots.plot_update_ratios(r, tmp_path / "u.png")
    plots.plot_activation_histograms(r, tmp_path / "a.png")
    loss, grads, ratios, acts = figures
    ax = loss.axes[0]
    assert ax.get_title() == "Loss" and ax.get_xlabel() == "optimizer step"
    assert ax.get_ylabel() == "loss (log scale)" and ax.get_legend() is not None
    ax, bar = grads.axes
    assert ax.get_title() == "Gradient norm per layer"
    assert ax.get_xlabel() == "optimizer step" and "layer" in ax.get_ylabel()
    assert bar.get_ylabel() == "gradient norm (log scale)"
    assert [t.get_text() for t in ax.get_yticklabels()] == \
        ["layers.0.weight", "layers.2.weight", "layers.4.weight"]
    ax = ratios.axes[0]
    assert ax.get_ylabel() == "||update|| / ||weight||" and ax.get_legend() is not None
    assert _sup(acts, "xlabel") == "output value"
    assert _sup(acts, "ylabel").startswith("count")
    assert _sup(acts, "title") == "Activations (layer outputs) at step 111"
    titles = [a.get_title() for a in acts.axes if a.get_title()]
    assert titles[0].startswith("layers.1 (relu)\nmean 0.4, std 0.6, dead 25%")
    # Cells without a finite gradient are grey, and the title says so.
    plots.plot_grad_norm_heatmap(make_readings(diverge_at=61), tmp_path / "g2.png")
    assert figures[-1].axes[0].get_title().endswith(
        "(grey: zero, missing or non-finite gradient)")


def test_deep_networks_show_their_first_and_last_layers(figures, tmp_path):
    # 20 Linear + 19 Tanh outputs: the activations first, spread over the depth.
    r = make_readings(n_steps=2)
    names = [str(i) for i in range(39)]
    r.meta["layers"] = names
    for s in r.steps:
        s["activations"] = {n: {"kind": "linear" if i % 2 == 0 else "tanh", "mean": 0.0,
                                "std": 1.0, "dead_fraction": None, "saturated_fraction": 0.0,
                                "hist": {"edges": [0.0, 1.0], "counts": [4]}}
                            for i, n in enumerate(names)}
    plots.plot_activation_histograms(r, tmp_path / "a.png")
    fig = figures[0]
    shown = [a.get_title().split(" ")[0] for a in fig.axes if a.get_title()]
    assert len(shown) == plots.MAX_HISTOGRAMS
    assert shown[0] == "1" and shown[-1] == "38"              # first activation, the output
    assert all(int(n) % 2 == 1 for n in shown[:-1])            # Linear outputs left out
    assert _sup(fig, "title").endswith(f": {plots.MAX_HISTOGRAMS} of 39 layers")


def test_the_loss_plot_marks_where_a_history_stopped_going_finite(figures, tmp_path):
    # The trainer stops before it records the step whose loss was inf: the history ends at
    # step 2, and only the readings know that step 3 went wrong.
    h = History(steps=[{"step": 1, "loss": 0.5}, {"step": 2, "loss": 2e9}])
    r = make_readings(n_steps=1, diverge_at=3)
    plots.write_plots(r, h, tmp_path)
    labels = figures[0].axes[0].get_legend_handles_labels()[1]
    assert "first non-finite value (step 3)" in labels
    assert [t for t in figures[0].axes[0].get_xticks() if 1 <= t <= 3] == [1, 2, 3]


def test_a_layer_that_never_moves_is_drawn_not_dropped(figures, tmp_path):
    # Gradients too small to change float32 weights give update ratios of exactly 0: that
    # layer is the one to see, so it must not vanish from a log-scale plot.
    r = make_readings(n_steps=4)
    for s in r.steps:
        s["params"]["layers.0.weight"]["update_ratio"] = 0.0
    plots.plot_update_ratios(r, tmp_path / "u.png")
    ax = figures[0].axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0] == "layers.0.weight: no change (ratio 0)"
    assert labels[1:] == ["layers.2.weight", "layers.4.weight", "guide 0.001"]
    floor = ax.lines[0].get_ydata()
    assert len(floor) == 4 and 0 < floor.max() < 1e-3   # below every drawn ratio (>= 1e-3)
