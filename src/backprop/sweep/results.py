"""A sweep's results: the ``sweep.jsonl`` log (one writer, each trial once), the table,
the summary of the doctor's findings, and the heat map.

Everything here reads and writes plain records (dicts); no Ray.

Example::

    result = load("sweeps/spiral")
    print(result.table())
    print(result.summary())        # "diverged in 12 of 35 trials, all at lr >= 1"
    result.heatmap("lr", "batch_size", "map.png")
"""
from __future__ import annotations

import json
import math
import os

from backprop.serialization import atomic_write, atomic_write_text, json_dumps
from backprop.sweep.space import Space, SweepError, normalize

__all__ = ["SweepLog", "SweepResult", "load", "write_definition", "read_definition",
           "LOG_FILE", "DEFINITION_FILE", "METRICS"]

LOG_FILE = "sweep.jsonl"
DEFINITION_FILE = "sweep.json"
METRICS = ("test_loss", "train_loss")
"""What a sweep ranks trials by (lower is better)."""


class SweepLog:
    """``sweep.jsonl``, appended one whole line per finished trial, each trial_id once.

    Only the sweep's driver writes it. A line is written with one ``write`` on a file
    opened for appending, then fsynced; a driver killed mid-line leaves a partial last
    line, which the next :class:`SweepLog` on the file cuts off before appending.

    Example::

        log = SweepLog("sweeps/a/sweep.jsonl")
        log.append({"trial_id": "t000-lr=0.1", ...})   # True
        log.append({"trial_id": "t000-lr=0.1", ...})   # False: already there
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.records = read_log(self.path, repair=True)
        self.ids = {r["trial_id"] for r in self.records}

    def __contains__(self, trial_id) -> bool:
        return trial_id in self.ids

    def append(self, record: dict) -> bool:
        """Append ``record`` unless its trial_id is already logged; True when written."""
        trial_id = record.get("trial_id")
        if not isinstance(trial_id, str) or not trial_id:
            raise SweepError(f"a sweep record needs a trial_id, got {trial_id!r}")
        if trial_id in self.ids:
            return False
        line = (json_dumps(record, "null") + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            while written < len(line):  # a short write (a signal): finish the line
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        self.ids.add(trial_id)
        self.records.append(json.loads(line))
        return True


def read_log(path, repair: bool = False) -> list:
    """The records of a ``sweep.jsonl``, first of each trial_id only.

    A last line without its newline (the writer was killed mid-line) is ignored, and cut
    off the file when ``repair``. Any other unreadable line is a SweepError naming it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    complete = data.rfind(b"\n") + 1
    if complete < len(data) and repair:
        with open(path, "r+b") as f:
            f.truncate(complete)
    records, seen = [], set()
    for number, raw in enumerate(data[:complete].splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            raise SweepError(f"{path}, line {number}: not a JSON record") from None
        if not isinstance(record, dict) or not isinstance(record.get("trial_id"), str):
            raise SweepError(f"{path}, line {number}: not a trial record (no trial_id)")
        problem = _record_problem(record)
        if problem:
            raise SweepError(f"{path}, line {number}: not a trial record ({problem})")
        if record["trial_id"] not in seen:
            seen.add(record["trial_id"])
            records.append(record)
    return records


def _record_problem(record: dict) -> str | None:
    """What makes a record unreadable by the table, summary and map (None: nothing)."""
    for key in ("config", "final", "best"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            return f"{key} is not an object"
    for key in ("final", "best"):
        for name, value in (record.get(key) or {}).items():
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                return f"{key}.{name} is not a number"
    if not isinstance(record.get("findings") or [], list):
        return "findings is not a list"
    return None


# -- the sweep's definition -----------------------------------------------------------------
def _space_to_json(space: dict) -> dict:
    return {k: v.to_dict() if isinstance(v, Space) else list(v) for k, v in space.items()}


def _space_from_json(data: dict) -> dict:
    return {k: Space.from_dict(v) if isinstance(v, dict) else v for k, v in data.items()}


def write_definition(out, definition: dict) -> str:
    """Write ``sweep.json`` (base, space, samples, seed, metric, ...) into ``out``."""
    data = dict(definition)
    data["space"] = _space_to_json(normalize(data["space"]))
    path = os.path.join(os.fspath(out), DEFINITION_FILE)
    text = json_dumps(data, "null", indent=2) + "\n"
    atomic_write_text(path, text, "sweep")
    return path


def read_definition(out) -> dict:
    """The definition ``sweep.json`` in ``out`` holds (its space with Space objects)."""
    path = os.path.join(os.fspath(out), DEFINITION_FILE)
    if not os.path.exists(path):
        raise SweepError(f"{out} holds no sweep: {DEFINITION_FILE} is missing")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("space"), dict):
            raise ValueError("it needs an object with a space object")
        data["space"] = _space_from_json(data["space"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SweepError(f"{path} is not a sweep definition: {e}") from None
    return data


# -- reading the results --------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def diverged(record: dict) -> bool:
    """Did the trial diverge? Its loss became NaN/Inf (``diverged``, the run stopped), or the
    doctor found a divergence in a loss that stayed finite. The table, the summary and the
    heat map all use this one test."""
    return bool(record.get("diverged")) or "divergence" in (record.get("findings") or [])


def _status(record: dict) -> str:
    if diverged(record):
        return "diverged"
    if record.get("stopped_early"):
        return "stopped"
    return "ok"


class SweepResult:
    """The trials of a sweep as records (dicts), with the ways to read them.

    Args:
        trials: the records, as in ``sweep.jsonl``.
        definition: the sweep's definition (``sweep.json``), or None.
        failed: ``{trial_id: error}`` of trials that failed past their retries.
    """

    def __init__(self, trials, definition: dict | None = None, failed: dict | None = None):
        self.trials = list(trials)
        self.definition = definition or {}
        self.failed = dict(failed or {})

    @property
    def metric(self) -> str:
        return self.definition.get("metric", "test_loss")

    @property
    def keys(self) -> list:
        """The swept fields, in the space's order."""
        space = self.definition.get("space")
        if space:
            return list(space)
        keys = []
        for record in self.trials:
            keys += [k for k in record.get("config", {}) if k not in keys]
        return keys

    def _score(self, record: dict, metric: str):
        value = (record.get("final") or {}).get(metric)
        if value is None and metric == "test_loss":  # a run without a test set
            value = (record.get("final") or {}).get("train_loss")
        if diverged(record) or value is None or not math.isfinite(value):
            return None
        return value

    def ranked(self, metric: str | None = None) -> list:
        """The records best first (lowest ``metric`` of the final model); diverged last."""
        metric = metric or self.metric
        if metric not in METRICS:
            raise SweepError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        return sorted(self.trials, key=lambda r: (self._score(r, metric) is None,
                                                  self._score(r, metric) or 0.0))

    def best(self, metric: str | None = None) -> dict | None:
        """The best trial's record (None when every trial diverged or there are none)."""
        ranked = self.ranked(metric)
        if not ranked or self._score(ranked[0], metric or self.metric) is None:
            return None
        return ranked[0]

    def table(self, metric: str | None = None, limit: int | None = None) -> str:
        """The trials as a text table, best first (``trial``: the start of the trial's id,
        its folder under ``OUT/trials/``)."""
        metric = metric or self.metric
        keys = self.keys
        header = ["#", "trial", *keys, metric, "accuracy", "epochs", "status", "findings"]
        rows = []
        for rank, r in enumerate(self.ranked(metric), 1):
            if limit is not None and rank > limit:
                break
            final = r.get("final") or {}
            rows.append([str(rank), r["trial_id"].split("-")[0],
                         *(_fmt(r.get("config", {}).get(k)) for k in keys),
                         _fmt(self._score(r, metric)), _fmt(final.get("accuracy")),
                         _fmt(r.get("epochs")), _status(r),
                         ",".join(r.get("findings") or []) or "-"])
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
                  for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
        if limit is not None and len(self.trials) > limit:
            lines.append(f"... and {len(self.trials) - limit} more")
        return "\n".join(lines)

    def summary(self) -> str:
        """The doctor's findings counted over the sweep, one line each.

        Example: ``"diverged in 12 of 35 trials, all at lr >= 1"``.
        """
        n = len(self.trials)
        if n == 0:
            return "no trials finished"
        lines = []
        best = self.best()
        if best is not None:
            config = ", ".join(f"{k}={_fmt(v)}" for k, v in best.get("config", {}).items())
            lines.append(f"best: {best['trial_id']} ({config}): {self.metric} "
                         f"{_fmt(self._score(best, self.metric))}")
        # A loss that became NaN/Inf stops a trial (diverged); the doctor also calls a
        # finite loss that blew up a divergence: both count.
        bad = [r for r in self.trials if diverged(r)]
        hard = sum(bool(r.get("diverged")) for r in bad)
        line = f"diverged in {len(bad)} of {n} trials{self._where(bad)}"
        if 0 < hard < len(bad):
            line += f" ({hard} stopped at a NaN/Inf loss)"
        lines.append(line)
        stopped = [r for r in self.trials if r.get("stopped_early")]
        if stopped:
            lines.append(f"stopped early (ASHA) in {len(stopped)} of {n} trials")
        counts: dict[str, list[dict]] = {}  # finding -> the trials that had it
        for r in self.trials:
            for name in dict.fromkeys(r.get("findings") or []):
                counts.setdefault(name, []).append(r)
        for name, records in sorted(counts.items(), key=lambda kv: -len(kv[1])):
            if name == "divergence":
                continue
            lines.append(f"{name} in {len(records)} of {n} trials{self._where(records)}")
        if self.failed:
            lines.append(f"failed past their retries: {len(self.failed)} trials "
                         f"({', '.join(sorted(self.failed))}); rerun them with --resume")
        return "\n".join(lines)

    def _where(self, subset: list) -> str:
        """", all at lr >= 1" when one swept number separates ``subset`` from the rest."""
        if not subset:
            return ""
        ids = {r["trial_id"] for r in subset}
        rest = [r for r in self.trials if r["trial_id"] not in ids]
        for key in self.keys:
            inside = [r.get("config", {}).get(key) for r in subset]
            outside = [r.get("config", {}).get(key) for r in rest]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in inside + outside):
                continue
            if not rest:
                if len(set(inside)) > 1:
                    continue
                return f", all at {key} = {_fmt(inside[0])}"
            if min(inside) > max(outside):
                return f", all at {key} >= {_fmt(min(inside))}"
            if max(inside) < min(outside):
                return f", all at {key} <= {_fmt(max(inside))}"
        return ""

    def heatmap(self, x: str | None = None, y: str | None = None, path=None,
                metric: str | None = None) -> str:
        """Draw the stability map: ``metric`` over two swept axes, diverged cells marked.

        Each cell shows the best (lowest) value among the trials at that (x, y); a cell
        where every trial diverged is hatched and marked "x". Writes a PNG to ``path``
        (default ``heatmap.png``) and returns the path. Needs matplotlib.
        """
        from backprop.sweep.space import field_name
        keys = self.keys
        if x is None or y is None:
            if len(keys) < 2:
                raise SweepError(f"a heat map needs two swept options; this sweep varies "
                                 f"{', '.join(keys) or 'none'}")
            x, y = keys[0], keys[1]
        x, y = field_name(x), field_name(y)
        for key in (x, y):
            if key not in keys:
                raise SweepError(f"cannot draw {key.replace('_', '-')}: the sweep varies "
                                 f"{', '.join(k.replace('_', '-') for k in keys)}")
        if x == y:
            raise SweepError("a heat map needs two different options")
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise SweepError("the heat map needs matplotlib: pip install 'backprop[plot]'") \
                from None
        import numpy as np
        metric = metric or self.metric
        xs = sorted({r["config"][x] for r in self.trials if x in r.get("config", {})},
                    key=_order)
        ys = sorted({r["config"][y] for r in self.trials if y in r.get("config", {})},
                    key=_order)
        grid = np.full((len(ys), len(xs)), np.nan)
        tried = np.zeros_like(grid, dtype=bool)
        for r in self.trials:
            c = r.get("config", {})
            if x not in c or y not in c:
                continue
            i, j = ys.index(c[y]), xs.index(c[x])
            tried[i, j] = True
            score = self._score(r, metric)
            if score is not None:
                grid[i, j] = score if np.isnan(grid[i, j]) else min(grid[i, j], score)
        fig = Figure(figsize=(1.1 * len(xs) + 2.5, 0.6 * len(ys) + 2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        finite = grid[np.isfinite(grid)]
        shown = np.log10(np.maximum(grid, 1e-12)) if finite.size and finite.min() > 0 else grid
        image = ax.imshow(np.ma.masked_invalid(shown), cmap="viridis_r", aspect="auto",
                          origin="lower")
        fig.colorbar(image, ax=ax, label=f"log10 {metric}" if shown is not grid else metric)
        for i in range(len(ys)):
            for j in range(len(xs)):
                if tried[i, j] and np.isnan(grid[i, j]):
                    ax.add_patch(_hatch(j, i))
                    ax.text(j, i, "x", ha="center", va="center", color="crimson")
                elif tried[i, j]:
                    # viridis_r: high values are dark
                    dark = float(np.asarray(image.norm(shown[i, j]))) > 0.5
                    ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center",
                            color="white" if dark else "black", fontsize=7)
        ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
        ax.set_xlabel(x.replace("_", "-"))
        ax.set_ylabel(y.replace("_", "-"))
        ax.set_title(f"{metric} (x: diverged)")
        fig.tight_layout()
        path = os.fspath(path or "heatmap.png")
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100), "heatmap")
        return path


def _hatch(j, i):
    from matplotlib.patches import Rectangle
    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="crimson")


def _order(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def load(out) -> SweepResult:
    """The results of the sweep in folder ``out`` (``sweep.json`` and ``sweep.jsonl``).

    Example::

        print(load("sweeps/spiral").table())
    """
    out = os.fspath(out)
    if not os.path.isdir(out):
        raise SweepError(f"no sweep folder {out}")
    definition = read_definition(out)
    return SweepResult(read_log(os.path.join(out, LOG_FILE)), definition)
