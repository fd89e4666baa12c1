"""Issue 15's benchmark table, at 1 thread (pinned) and at 2: printed in markdown, saved as JSON.

    make bench          # or: python benchmarks/table.py [--quick] [--threads 1,2] [--skip lab]

Runs run.py (per-op overhead, the raw-op MLP), mlp_idiomatic.py, cnn.py and lab_latency.py
(the lab at its top speed) one after the other, each in its own process with ``--json`` into
a temporary folder: at 1 thread pinned to core 0 with ``taskset -c 0`` (where that command
exists) and at 2 threads, so no two benchmarks share the machine. Their output streams
through as they run. Then it prints one table, measure | backprop | PyTorch | hand NumPy |
ratio | goal, a block of rows per thread count, each ratio beside its goal and whether it is
met, and writes every figure (with the date, the CPU, the versions and the engine that ran)
to benchmarks/out/latest.json. A benchmark that fails is named in its rows and makes the exit
status non-zero, after the table and the JSON are written. Nothing here is a timed test:
the goals are reported, never asserted.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "latest.json")
PIN = ["taskset", "-c", "0"]
LAB_TOP_SPEED = 1000  # backprop.lab.settings.MAX_SPEED: "as fast as the machine goes"

# key -> (script, its extra arguments); the order is the table's.
SCRIPTS = {
    "run": ("run.py", []),
    "idiomatic": ("mlp_idiomatic.py", []),
    "cnn": ("cnn.py", []),
    "lab": ("lab_latency.py", ["--speed", str(LAB_TOP_SPEED)]),
}
LAB_NEEDS = ("fastapi", "uvicorn", "websockets")  # the lab extra and its WebSocket client


# -- the table (pure functions of the scripts' JSON: tests/test_bench_table.py) ----------------
def _num(x: float, digits: int = 2) -> str:
    return f"{x:,.0f}" if digits == 0 else f"{x:.{digits}f}"


def _goal(text: str, value: float | None, op: str, bound: float) -> tuple[str, bool | None]:
    """The goal cell and whether it is met (None: not measured)."""
    if value is None:
        return f"{text}: not measured", None
    met = {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[op]
    return f"{text}: {'met' if met else 'MISSED'}", met


def _ratio(r: dict, against: str) -> str:
    return f"{r['median']:.2f}x {against} ({r['min']:.2f}-{r['max']:.2f})"


def _per_op(data: dict) -> dict:
    fig = data["per_op"]
    us, ratio = fig["us_per_op"], fig.get("ratio_to_pytorch")
    goal, met = _goal("<= 0.3x PyTorch", ratio and ratio["median"], "<=", 0.3)
    return {"backprop": f"{_num(us['backprop'])} us", "numpy": "-",
            "pytorch": f"{_num(us['pytorch'])} us" if "pytorch" in us else "-",
            "ratio": _ratio(ratio, "PyTorch") if ratio else "-", "goal": goal, "met": met}


def _mlp(section: str, batch: str):
    def cells(data: dict) -> dict:
        fig = data[section][batch]
        sps, ratios = fig["samples_per_s"], fig["ratios"]
        vs_numpy = ratios.get("numpy by hand")
        goal, met = _goal(">= 1.1x hand NumPy", vs_numpy and vs_numpy["median"], ">=", 1.1)
        shown = [_ratio(vs_numpy, "NumPy")] if vs_numpy else []
        if "pytorch" in ratios:
            shown.append(_ratio(ratios["pytorch"], "PyTorch"))
        return {"backprop": _num(sps["backprop"], 0),
                "pytorch": _num(sps["pytorch"], 0) if "pytorch" in sps else "-",
                "numpy": _num(sps["numpy by hand"], 0) if "numpy by hand" in sps else "-",
                "ratio": "; ".join(shown) or "-", "goal": goal, "met": met}
    return cells


def _cnn(data: dict) -> dict:
    ms, ratio = data["ms_per_step"], data.get("ratio_to_pytorch")
    goal, met = _goal("<= 1.0x PyTorch", ratio and ratio["median"], "<=", 1.0)
    return {"backprop": f"{_num(ms['backprop'])} ms",
            "pytorch": f"{_num(ms['pytorch'])} ms" if "pytorch" in ms else "-", "numpy": "-",
            "ratio": _ratio(ratio, "PyTorch") if ratio else "-", "goal": goal, "met": met}


def _lab(data: dict) -> dict:
    lat = data["latency_ms"]
    goal, met = _goal("median < 100 ms", lat["median"], "<", 100.0)
    return {"backprop": f"{lat['median']:.1f} ms (p90 {lat['p90']:.1f})", "pytorch": "-",
            "numpy": "-", "ratio": "-", "goal": goal, "met": met}


# (script key, measure, the cells from that script's JSON, the goal shown when not measured)
ROWS = [
    ("run", "per-op overhead, 16x16 chain fwd+bwd (us/op)", _per_op, "<= 0.3x PyTorch"),
    ("run", "MLP 784-256-128-10 raw ops, batch 32 (samples/s)", _mlp("mlp_raw", "32"),
     ">= 1.1x hand NumPy"),
    ("run", "MLP 784-256-128-10 raw ops, batch 256 (samples/s)", _mlp("mlp_raw", "256"),
     ">= 1.1x hand NumPy"),
    ("idiomatic", "MLP idiomatic (nn + SGD momentum), batch 32 (samples/s)",
     _mlp("mlp_idiomatic", "32"), ">= 1.1x hand NumPy"),
    ("idiomatic", "MLP idiomatic (nn + SGD momentum), batch 256 (samples/s)",
     _mlp("mlp_idiomatic", "256"), ">= 1.1x hand NumPy"),
    ("cnn", "CNN training step, batch 64 (ms/step)", _cnn, "<= 1.0x PyTorch"),
    ("lab", f"lab at top speed ({LAB_TOP_SPEED} steps/s): lr change to first frame (ms)",
     _lab, "median < 100 ms"),
]


def thread_label(threads: int, pinned: bool) -> str:
    """How a block of rows ran: ``1 (taskset -c 0)``, ``1 (not pinned)``, ``2``."""
    if threads != 1:
        return str(threads)
    return f"1 ({' '.join(PIN)})" if pinned else "1 (not pinned)"


def table_rows(results: dict, pinned: bool = True) -> list[dict]:
    """Every row of the table, as dicts: ``results`` maps a thread count to {script key:
    result}, where a result is ``{"status": "ok" | "failed" | "not run", "note": str,
    "data": the script's JSON}``; a script absent from it (skipped) gives no rows. A failed
    or unrun script's rows say so in the backprop column."""
    rows = []
    for threads in sorted(results, key=int):
        for key, measure, cells, goal in ROWS:
            if key not in results[threads]:
                continue
            result = results[threads][key]
            row = {"threads": int(threads), "label": thread_label(int(threads), pinned),
                   "script": SCRIPTS[key][0], "measure": measure, "status": result["status"]}
            if result["status"] == "ok":
                try:
                    row.update(cells(result["data"]))
                except (KeyError, TypeError) as e:  # a script's JSON without this figure
                    row["status"] = "failed"
                    result = {**result, "note": f"no figure {e} in its JSON"}
            if row["status"] != "ok":
                what = "FAILED" if row["status"] == "failed" else "not run"
                row.update({"backprop": f"{what}: {SCRIPTS[key][0]} {result.get('note', '')}"
                            .strip(), "pytorch": "-", "numpy": "-", "ratio": "-",
                            "goal": f"{goal}: not measured", "met": None})
            rows.append(row)
    return rows


def torch_header(results: dict) -> str:
    """``PyTorch 2.13`` from the version the scripts recorded, or ``PyTorch`` without one."""
    for by_script in results.values():
        for result in by_script.values():
            version = ((result.get("data") or {}).get("versions") or {}).get("torch")
            if version:
                return "PyTorch " + ".".join(version.split("+")[0].split(".")[:2])
    return "PyTorch"


def build_table(results: dict, pinned: bool = True) -> tuple[str, list[dict]]:
    """The markdown table of ``results`` (see table_rows) and its rows."""
    rows = table_rows(results, pinned)
    head = ["threads", "measure", "backprop", torch_header(results), "hand NumPy", "ratio",
            "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [row["label"], row["measure"], row["backprop"], row["pytorch"], row["numpy"],
                 row["ratio"], row["goal"]]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines), rows


def summary(rows: list[dict]) -> str:
    """One line: goals met out of those measured, and what failed."""
    measured = [r for r in rows if r["met"] is not None]
    met = sum(r["met"] for r in measured)
    failed = sorted({f"{r['script']} at {r['threads']} thread{'s' * (r['threads'] != 1)}"
                     for r in rows if r["status"] == "failed"})
    line = f"goals met: {met} of {len(measured)} measured"
    return line + (f"; FAILED: {', '.join(failed)}" if failed else "")


# -- running the scripts ---------------------------------------------------------------------
def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo, where it is readable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def lab_missing() -> list[str]:
    """The lab extra's modules this interpreter lacks (lab_latency.py needs them all)."""
    return [m for m in LAB_NEEDS if importlib.util.find_spec(m) is None]


def run_script(key: str, threads: int, pin: bool, quick: bool, folder: str) -> dict:
    """Run one benchmark as its own process, streaming its output, and read its JSON."""
    script, extra = SCRIPTS[key]
    path = os.path.join(folder, f"{key}-{threads}.json")
    cmd = (PIN if pin else []) + [sys.executable, os.path.join(HERE, script),
                                   "--threads", str(threads), "--json", path, *extra]
    if quick:
        cmd.append("--quick")
    print(f"\n== {script} at {threads} thread{'s' * (threads != 1)}"
          f"{' (pinned)' if pin else ''}: {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    tail: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, cwd=os.path.dirname(HERE)) as proc:
        for line in proc.stdout:
            print("   " + line, end="", flush=True)
            tail = (tail + [line.rstrip("\n")])[-20:]
    result = {"status": "ok", "command": cmd, "returncode": proc.returncode,
              "seconds": round(time.perf_counter() - start, 1), "data": None}
    if proc.returncode != 0:
        result.update(status="failed", note=f"(exit {proc.returncode})", output_tail=tail)
    else:
        try:
            with open(path) as f:
                result["data"] = json.load(f)
        except (OSError, ValueError) as e:
            result.update(status="failed", note=f"(no JSON: {e.__class__.__name__})",
                          output_tail=tail)
    return result


def write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON, all-or-nothing (as every benchmark here does)."""
    if HERE not in sys.path:  # imported from elsewhere (run as a script, it is there)
        sys.path.insert(0, HERE)
    from _timing import write_json as write

    write(path, data)


def _what_ran(results: dict) -> dict:
    """Versions and engine as the scripts recorded them (the first that recorded each)."""
    versions: dict = {}
    engines, kernels = set(), set()
    for by_script in results.values():
        for result in by_script.values():
            data = result.get("data") or {}
            for name, version in (data.get("versions") or {}).items():
                if version is not None:
                    versions.setdefault(name, version)
            if data.get("engine"):
                engines.add(data["engine"])
            if data.get("kernels"):
                kernels.add(data["kernels"])
    versions.setdefault("torch", None)
    return {"versions": versions, "engine": " / ".join(sorted(engines)) or None,
            "kernels": " / ".join(sorted(kernels)) or None}


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="pass --quick to every benchmark (a smoke run; figures not comparable)")
    p.add_argument("--threads", default="1,2",
                   help="thread counts, comma-separated (default 1,2; 1 is pinned to core 0)")
    p.add_argument("--skip", action="append", default=[], metavar="NAMES",
                   help=f"leave out these benchmarks' rows, comma-separated: "
                        f"{', '.join(SCRIPTS)} (run is per-op and the raw-op MLP)")
    p.add_argument("--out", default=OUT, help="the combined JSON (default benchmarks/out/"
                                              "latest.json)")
    args = p.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error(f"--threads: expected numbers like 1,2, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        p.error("--threads: give at least one thread count, each 1 or more")
    args.skip = {s.strip() for item in args.skip for s in item.split(",") if s.strip()}
    unknown = args.skip - set(SCRIPTS)
    if unknown:
        p.error(f"--skip: unknown {', '.join(sorted(unknown))} (choose from "
                f"{', '.join(SCRIPTS)})")
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    pinnable = shutil.which("taskset") is not None
    if 1 in args.threads and not pinnable:
        print("note: no taskset command here; the 1-thread runs are not pinned to a core")
    keys = [k for k in SCRIPTS if k not in args.skip]
    missing = lab_missing() if "lab" in keys else []
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        for threads in args.threads:
            results[threads] = {}
            for key in keys:
                if key == "lab" and missing:
                    results[threads][key] = {
                        "status": "not run", "data": None,
                        "note": f"(needs the lab extra: {', '.join(missing)}; make lab)"}
                    continue
                results[threads][key] = run_script(key, threads, pinnable and threads == 1,
                                                   args.quick, folder)
    table, rows = build_table(results, pinnable)
    print(f"\nIssue 15's table{' (--quick: a smoke run, few repeats)' if args.quick else ''}:\n")
    print(table)
    print("\n" + summary(rows))
    failed = any(r["status"] == "failed" for r in rows)
    write_json(args.out, {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), **_what_ran(results), "quick": args.quick,
        "threads": args.threads, "pinned": " ".join(PIN) if pinnable else None,
        "skipped": sorted(args.skip), "failed": failed,
        "results": {str(t): by for t, by in results.items()}, "rows": rows,
        "markdown": table})
    shown = os.path.relpath(args.out)
    print(f"wrote {os.path.abspath(args.out) if shown.startswith('..') else shown}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
