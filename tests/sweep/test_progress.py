"""The sweep's progress over trials: a bar on a terminal, one line per trial everywhere."""
from __future__ import annotations

import io
from backprop.sweep.progress import TrialProgress


def record(trial_id, loss=None, diverged=False, stopped=False, findings=()):
    return {"trial_id": trial_id, "final": {"test_loss": loss, "train_loss": loss},
            "diverged": diverged, "stopped_early": stopped, "findings": list(findings),
            "seconds": 1.5}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_only_the_per_trial_lines_are_written():
    stream = io.StringIO()
    progress = TrialProgress(3, metric="test_loss", file=stream)
    progress.update(record("t000", 0.5))
    progress.update(record("t001", diverged=True))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("[1/3] t000: test_loss 0.5 ")
    assert lines[1].startswith("[2/3] t001: diverged ")


def test_bar_counts_trials_best_and_diverged_and_keeps_lines_above_it():
    stream = Terminal()
    progress = TrialProgress(4, done=1, file=stream)
    assert stream.getvalue().startswith("\rtrials:") and " 1/4 " in stream.getvalue()  # resumed
    progress.update(record("t001", 0.30))
    progress.update(record("t002", 0.10, stopped=True))  # stopped early: not the best
    progress.update(record("t003", 9.0, findings=["divergence"]))
    progress.close()
    text = stream.getvalue()
    last = text.rstrip("\n").split("\r")[-1].rstrip()  # tqdm pads over a longer frame
    assert last.startswith("trials: 100%") and " 4/4 " in last and "trial/s" in last
    assert last.endswith("best test_loss 0.3, 1 diverged]")
    # each trial's line was printed on its own line, above the bar
    lines = [line.split("\r")[-1] for line in text.rstrip("\n").split("\n")]
    assert [line.split(":")[0] for line in lines[:3]] == ["[2/4] t001", "[3/4] t002", "[4/4] t003"]
    assert lines[0].startswith("[2/4] t001: test_loss 0.3 ") and "diverged" in lines[2]
    assert text.endswith("\n") and len(lines) == 4


def test_bar_false_on_a_terminal_writes_only_lines():
    stream = Terminal()
    progress = TrialProgress(2, file=stream, bar=False)
    progress.update(record("t000", 0.2))
    progress.close()
    assert "\r" not in stream.getvalue() and stream.getvalue().count("\n") == 1

