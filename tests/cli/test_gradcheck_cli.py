"""``backprop gradcheck``: a table, a summary line and the exit status."""
from __future__ import annotations

from backprop.cli import main


def test_gradcheck_passes(capsys):
    assert main(["gradcheck", "--ops", "-k", "conv2d"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["check", "kind", "result", "max", "error", "ms"]
    assert [line.split()[0] for line in out[1:-1]] == ["conv2d", "conv2d/stride-padding"]
    assert all(" ok " in line for line in out[1:-1])
    assert out[-1].startswith("2 passed, 0 failed in ")


def test_gradcheck_layers_only(capsys):
    assert main(["gradcheck", "--layers", "-k", "loss"]) == 0
    out = capsys.readouterr().out
    assert "CrossEntropyLoss" in out and "cross_entropy" not in out


def test_gradcheck_fails_with_status_1(capsys, monkeypatch):
    from backprop.ops.elementwise import Exp

    monkeypatch.setattr(Exp, "backward", staticmethod(lambda ctx, g: g))  # d exp = 1: wrong
    assert main(["gradcheck", "-k", "exp", "--failed-only"]) == 1
    out = capsys.readouterr().out
    assert "exp: gradcheck: gradient mismatch" in out
    assert "expm1" not in out.split("\n")[1]  # --failed-only: passing rows are left out
    assert "4 passed, 1 failed" in out and "(failed: exp)" in out  # expm1, expand, logaddexp pass


def test_gradcheck_unknown_pattern(capsys):
    assert main(["gradcheck", "-k", "zzz"]) == 2
    assert "no check matches -k 'zzz'" in capsys.readouterr().err
