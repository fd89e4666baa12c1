"""A PyTorch-style script that calls every creation function with ``device=`` (and dtype,
requires_grad) runs unchanged on backprop and agrees with PyTorch.

Shapes, dtypes, ``requires_grad`` and devices are compared for every tensor; values where
they are deterministic (random streams differ between the libraries).
"""
from tests.programs.test_pytorch_programs import run


def test_creation_script_runs_on_backprop():
    ours = run("creation.py", "backprop")
    assert ours["device"] == "cpu"
    assert ours["perm"] == list(range(6)) and ours["in_range"] and ours["int_like"]
    assert ours["w_grad"] == [3, 5] and ours["gx_repeats"]


def test_creation_script_matches_pytorch(oracle):
    ours, theirs = run("creation.py", "backprop"), run("creation.py", "torch")
    assert ours["meta"].keys() == theirs["meta"].keys()
    for name in theirs["meta"]:
        assert ours["meta"][name] == theirs["meta"][name], name
    assert ours["values"] == theirs["values"]
    for key in ("device", "perm", "in_range", "int_like", "w_grad", "gx_repeats"):
        assert ours[key] == theirs[key], key
