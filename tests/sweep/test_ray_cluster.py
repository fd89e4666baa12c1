"""``backprop sweep`` on a real two-node Ray cluster: across nodes, driver killed, node killed.

The cluster (conftest.py) is started once for the module: a head and a worker node, one
CPU each. The tests run in file order; the last one kills the worker node.
Everything waits on events (lines in sweep.jsonl, a process exiting) with generous
bounds, never on fixed sleeps.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("ray")

from backprop.cli import main  # noqa: E402
from backprop.sweep import load, run  # noqa: E402

from .conftest import ray_env, wait_for  # noqa: E402

BASE = {"dataset": "spiral", "layers": "2-8-3", "epochs": 5, "n_samples": 120}
SPACE = {"lr": [0.003, 0.03], "batch_size": [8, 32], "activation": ["relu", "tanh"]}
# The same sweep on the command line (for the driver that gets killed).
CLI = ["--dataset", "spiral", "--layers", "2-8-3", "--epochs", "5", "--n-samples", "120",
       "--grid", "lr=0.003,0.03", "--grid", "batch-size=8,32", "--grid", "activation=relu,tanh",
       "--no-progress"]
SWEEP_TIMEOUT_S = 300


def lines(out) -> list:
    """The records in OUT/sweep.jsonl (none when it does not exist yet)."""
    path = os.path.join(out, "sweep.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    # Only whole lines: read while the driver writes (or after it was killed), the last
    # line may not be complete yet; sweep.jsonl's own reader ignores such a line too.
    whole = text[:text.rfind("\n") + 1]
    return [json.loads(line) for line in whole.splitlines() if line.strip()]


def trainable_nodes(cluster) -> dict:
    """{node id: [actor states]} of the trial actors the GCS knows (Tune's trainables)."""
    nodes = {}
    for actor in cluster.actors():
        # Tune runs a function trainable in an actor of class ImplicitFunc (reused by trials).
        if "ImplicitFunc" in (actor["class"] or ""):
            nodes.setdefault(actor["node"], []).append(actor["state"])
    return nodes


def comparable(record: dict) -> dict:
    """What must be equal between two runs of the same trial (not times nor folders)."""
    return {k: record.get(k) for k in ("trial_id", "config", "final", "best", "diverged",
                                         "reason", "epochs", "findings")}


@pytest.fixture(scope="module")
def reference(ray_cluster, tmp_path_factory):
    """The 8-trial sweep run once, uninterrupted, across both nodes."""
    out = str(tmp_path_factory.mktemp("reference"))
    result = run(BASE, SPACE, out=out, address=ray_cluster.address, progress=False)
    return out, result


def test_sweep_runs_every_trial_once_across_both_nodes(ray_cluster, reference):
    out, result = reference
    records = lines(out)
    assert len(records) == 8
    ids = [r["trial_id"] for r in records]
    assert len(set(ids)) == 8
    swept = {tuple(sorted(r["config"].items())) for r in records}
    expected = {tuple(sorted(zip(SPACE, values))) for values in itertools.product(*SPACE.values())}
    assert swept == expected
    assert sorted(ids) == sorted(r["trial_id"] for r in result.trials)
    assert sorted(ids) == sorted(r["trial_id"] for r in load(out).trials)
    for r in records:
        assert not r["diverged"], r
        assert r["epochs"] == BASE["epochs"]
        assert r["final"]["test_loss"] is not None
        for name in ("config.json", "metrics.jsonl", "diagnostics.jsonl", "last.safetensors"):
            assert os.path.exists(os.path.join(r["run_dir"], name)), (r["run_dir"], name)
        assert os.path.realpath(r["run_dir"]) == os.path.realpath(
            os.path.join(out, "trials", r["trial_id"]))
    # Any trial folder is a normal run folder: the doctor reads it.
    assert main(["doctor", records[0]["run_dir"], "--no-plots"]) == 0
    # Both nodes ran trials (Ray's own record of where each trial's actor lived).
    nodes = trainable_nodes(ray_cluster)
    assert len(nodes) == 2, f"trial actors ran on {len(nodes)} node(s): {nodes}"


def test_killed_driver_then_resume_skips_finished_trials_and_equals_uninterrupted(
        ray_cluster, reference, tmp_path):
    out = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "backprop.cli", "sweep", *CLI, "--address", ray_cluster.address,
           "--out", out]
    driver = subprocess.Popen(cmd, env=ray_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(lines(out)) >= 2 or driver.poll() is not None, SWEEP_TIMEOUT_S,
                 "two trials recorded by the driver", interval=0.05)
        driver.send_signal(signal.SIGKILL)
    finally:
        if driver.poll() is None:
            driver.kill()
        output = driver.communicate(timeout=60)[0]
    assert driver.returncode == -signal.SIGKILL, output[-3000:]
    before = lines(out)
    assert 2 <= len(before) < 8, f"the driver finished {len(before)} trials before the kill"
    assert os.path.exists(os.path.join(out, "sweep.json"))
    stamps = {r["trial_id"]: {name: os.stat(os.path.join(r["run_dir"], name)).st_mtime_ns
                              for name in ("config.json", "metrics.jsonl", "last.safetensors")}
              for r in before}

    # --resume needs only the folder: the definition is in OUT/sweep.json.
    status = main(["sweep", "--resume", "--out", out, "--address", ray_cluster.address,
                   "--no-progress"])
    assert status == 0

    after = lines(out)
    assert len(after) == 8
    assert len({r["trial_id"] for r in after}) == 8
    assert after[:len(before)] == before          # the finished trials' lines are untouched
    for trial_id, files in stamps.items():        # ... and they were not run again
        run_dir = os.path.join(out, "trials", trial_id)
        for name, stamp in files.items():
            assert os.stat(os.path.join(run_dir, name)).st_mtime_ns == stamp, (trial_id, name)
    # Same seeds, same numbers as the sweep that was never interrupted.
    expected = {r["trial_id"]: comparable(r) for r in lines(reference[0])}
    assert {r["trial_id"]: comparable(r) for r in after} == expected


def started_unfinished(out) -> list:
    """Trials whose run folder has training records but that are not in sweep.jsonl yet."""
    done = {r["trial_id"] for r in lines(out)}
    trials = os.path.join(out, "trials")
    names = os.listdir(trials) if os.path.isdir(trials) else []
    return [t for t in names if t not in done
            and os.path.exists(os.path.join(trials, t, "metrics.jsonl"))
            and os.path.getsize(os.path.join(trials, t, "metrics.jsonl")) > 0]


def test_both_cluster_addresses_answer_the_probe(ray_cluster):
    from backprop.sweep._ray import check_address
    check_address(ray_cluster.address, timeout=30)
    check_address(ray_cluster.client_address, timeout=30)


def test_sweep_through_the_ray_client_address(ray_cluster, reference, tmp_path):
    """``--address ray://HOST:PORT``: Tune's driver loop runs on the head through Ray Client;
    sweep.jsonl is still written here, once per trial, with the uninterrupted numbers."""
    out = str(tmp_path / "client")
    space = {"lr": [0.003, 0.03], "batch_size": [8], "activation": ["relu"]}
    result = run(BASE, space, out=out, address=ray_cluster.client_address, progress=False)
    records = lines(out)
    assert sorted(r["trial_id"] for r in records) == sorted(r["trial_id"] for r in result.trials)
    assert len(records) == 2 and len({r["trial_id"] for r in records}) == 2
    def key(r):
        return tuple(sorted(r["config"].items()))

    def numbers(r):  # trial ids number the trials of each sweep: compare what they ran
        return {k: v for k, v in comparable(r).items() if k != "trial_id"}

    expected = {key(r): numbers(r) for r in lines(reference[0])}
    for r in records:
        assert numbers(r) == expected[key(r)]
        assert os.path.exists(os.path.join(r["run_dir"], "metrics.jsonl"))


def test_the_labs_map_through_the_ray_client_address(ray_cluster):
    """``backprop lab --ray ray://HOST:PORT``: the map's cells run as tasks through Ray
    Client and equal the local pool's."""
    from backprop.lab.pool import CellPool, RayCellPool
    from backprop.lab.session import LabSession
    from tests.lab.bounded import collect

    s = LabSession({"dataset": "sine", "optimizer": "sgd", "n_samples": 80}, diagnostics=False)
    grid = ([0.01, 10.0], [4, 16], 30)
    local = CellPool(1)
    try:
        on_pool = collect(s.stability_map(*grid, pool=local))
    finally:
        local.close()
    pool = RayCellPool(ray_cluster.client_address)
    try:
        assert pool.worker_count() == 2                  # both nodes' CPUs
        on_ray = collect(s.stability_map(*grid, pool=pool))
    finally:
        pool.close()
    by_cell = lambda cells: {(c["i"], c["j"]): c for c in cells}   # noqa: E731
    assert len(on_ray) == 4 and by_cell(on_ray) == by_cell(on_pool)


def test_killed_worker_node_every_trial_still_completes_once(ray_cluster, tmp_path):
    out = str(tmp_path / "node-killed")
    cmd = [sys.executable, "-m", "backprop.cli", "sweep", "--dataset", "spiral", "--layers",
           "2-8-3", "--n-samples", "300", "--batch-size", "4", "--epochs", "20",
           "--grid", "lr=0.001,0.002,0.003,0.004", "--no-progress",
           "--address", ray_cluster.address, "--out", out]
    worker_node = ray_cluster.worker_node_id()
    assert len(ray_cluster.alive_nodes()) == 2
    driver = subprocess.Popen(cmd, env=ray_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        # The event: two trials are training at once. Each node has one CPU and each trial
        # takes one, so one of the two is running on the worker node.
        wait_for(lambda: driver.poll() is not None or len(started_unfinished(out)) >= 2,
                 SWEEP_TIMEOUT_S, "two trials training at once", interval=0.05)
        assert driver.poll() is None, "the sweep finished before the node could be killed"
        running = started_unfinished(out)
        ray_cluster.kill_worker()
        wait_for(lambda: worker_node not in ray_cluster.alive_nodes(), 120,
                 "the head to see the worker node dead")
        output = driver.communicate(timeout=SWEEP_TIMEOUT_S)[0]
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, output[-3000:]
    records = lines(out)
    assert len(records) == 4, output[-3000:]
    assert len({r["trial_id"] for r in records}) == 4
    assert set(running) <= {r["trial_id"] for r in records}
    for r in records:
        assert not r["diverged"] and r["epochs"] == 20, r
    # The retried trial's numbers are those of a run never interrupted (same seed).
    from backprop.sweep.trial import run_trial
    with open(os.path.join(out, "sweep.json")) as f:
        base = json.load(f)["base"]
    by_id = {r["trial_id"]: r for r in records}
    for trial_id in running:
        again = run_trial(trial_id, by_id[trial_id]["config"], base, str(tmp_path / "again"))
        assert again["final"] == by_id[trial_id]["final"], trial_id
        assert again["epochs"] == by_id[trial_id]["epochs"]
