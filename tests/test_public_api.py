"""backprop.__all__ is the public API: it lists every public name the package binds, and nothing else."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import backprop

INIT = Path(backprop.__file__)


def _bound_public_names(source: str) -> set[str]:
    """Public names that module-level imports and assignments in ``source`` bind."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return {n for n in names if not n.startswith("_")}


def test_all_has_no_duplicates():
    assert len(backprop.__all__) == len(set(backprop.__all__))


def test_all_is_exactly_the_public_names_the_init_binds():
    bound = _bound_public_names(INIT.read_text())
    listed = set(backprop.__all__)
    assert bound - listed == set(), "bound in backprop/__init__.py but missing from __all__"
    assert listed - bound == set(), "in __all__ but not bound in backprop/__init__.py"


def test_all_names_resolve_and_no_public_attribute_is_left_out():
    # A fresh interpreter: this process has imported more submodules (diagnostics, lab, ...) that
    # Python binds on the package as a side effect. Right after `import backprop`, every public
    # attribute (a submodule loaded on the way included) must be listed, and every listed name set.
    code = ("import json, backprop; print(json.dumps(["
            "sorted(n for n in vars(backprop) if not n.startswith('_')), backprop.__all__]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    public, listed = json.loads(out.stdout)
    assert sorted(set(public) - set(listed)) == [], "public attributes missing from __all__"
    assert sorted(set(listed) - set(public)) == [], "__all__ names that backprop does not define"


def test_star_import_gives_all_and_the_tensor_function():
    ns: dict = {}
    exec("from backprop import *", ns)
    ns.pop("__builtins__")
    assert set(ns) == set(backprop.__all__)
    # `tensor` is the factory, not the backprop.tensor module its name shadows.
    assert ns["tensor"] is backprop.creation.tensor and ns["Tensor"] is backprop.Tensor
