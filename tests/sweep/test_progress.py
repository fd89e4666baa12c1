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


def test_text_bar_counts_trials_best_and_diverged_and_keeps_lines_above_it():
    stream = Terminal()
    progress = TrialProgress(4, done=1, file=stream, use_tqdm=False)
    assert stream.getvalue().endswith("1/4")          # a resumed sweep starts at its done
    progress.update(record("t001", 0.30))
    progress.update(record("t002", 0.10, stopped=True))  # stopped early: not the best
    progress.update(record("t003", 9.0, findings=["divergence"]))
    progress.close()
    text = stream.getvalue()
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("trials [" + "#" * 20 + "] 4/4")
    assert "best test_loss 0.3" in last and "1 diverged" in last
    # each trial's line was printed on its own line, after clearing the bar
    assert "[2/4] t001: test_loss 0.3 " in text and "[4/4] t003: diverged " in text
    assert text.endswith("\n")


def test_bar_false_on_a_terminal_writes_only_lines():
    stream = Terminal()
    progress = TrialProgress(2, file=stream, bar=False)
    progress.update(record("t000", 0.2))
    progress.close()
    assert "\r" not in stream.getvalue() and stream.getvalue().count("\n") == 1


def test_tqdm_draws_the_bar_when_installed(fake_tqdm):
    made = fake_tqdm
    progress = TrialProgress(5, done=2, file=Terminal())
    progress.update(record("t002", 0.25))
    progress.update(record("t003", None, diverged=True))
    progress.close()
    bar, = made
    assert (bar.total, bar.n, bar.kwargs["unit"]) == (5, 4, "trial")
    assert bar.written[0].startswith("[3/5] t002: test_loss 0.25 ")
    assert bar.postfix == "best test_loss 0.25, 1 diverged" and bar.closed
