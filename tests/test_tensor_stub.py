"""tensor.pyi, the Tensor that editors and type checkers see, is current and complete (issue 17)."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
import types

import backprop
from backprop.tensor import Tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "gen_tensor_stub", os.path.join(ROOT, "tools", "gen_tensor_stub.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

with open(gen.STUB, encoding="utf-8") as _f:
    STUB = _f.read()


def _stub_class(name: str) -> ast.ClassDef:
    (cls,) = [n for n in ast.parse(STUB).body if isinstance(n, ast.ClassDef) and n.name == name]
    return cls


def _members(cls: ast.ClassDef) -> dict:
    """name -> the stub's first definition of it (a property's getter before its setter)."""
    out = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            out.setdefault(node.name, node)
        elif isinstance(node, ast.AnnAssign):
            out.setdefault(node.target.id, node)
    return out


def test_the_checked_in_stub_is_what_the_generator_writes_now():
    # A fresh interpreter: tests that ran before change the module (see gen.render).
    done = subprocess.run([sys.executable, gen.__file__, "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_tensor_method_and_operator_is_in_the_stub():
    members = _members(_stub_class("Tensor"))
    live = {name for name in vars(Tensor) if name not in gen._SKIP}
    assert live - set(members) == set()
    assert {"sum", "mean", "relu", "reshape", "matmul", "__add__", "__getitem__", "T",
            "backward", "grad"} <= set(members)


def test_each_method_carries_its_signature_and_docstring():
    members = _members(_stub_class("Tensor"))
    documented = 0
    for name, node in members.items():
        value = vars(Tensor)[name] if name in vars(Tensor) else None
        fn = value.fget if isinstance(value, property) else value
        if not isinstance(node, ast.FunctionDef) or not inspect.isfunction(fn):
            continue
        doc = inspect.cleandoc(fn.__doc__) if fn.__doc__ else None  # its own, not inherited
        assert ast.get_docstring(node, clean=True) == doc, name
        documented += doc is not None
        params = [p for p in inspect.signature(fn).parameters.values()]
        stub_params = node.args.posonlyargs + node.args.args
        if isinstance(value, property) or not params:
            continue
        # the op's first parameter (input, x, self) is self; the rest keep their names
        assert [a.arg for a in stub_params][1:] == [
            p.name for p in params[1:] if p.kind in (p.POSITIONAL_ONLY,
                                                     p.POSITIONAL_OR_KEYWORD)], name
        assert [a.arg for a in node.args.kwonlyargs] == [
            p.name for p in params if p.kind is p.KEYWORD_ONLY], name
    assert documented > 250


def test_the_names_other_modules_import_from_backprop_tensor_are_in_the_stub():
    tree = ast.parse(STUB)
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            defined.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name) for a in node.names)
    module = sys.modules["backprop.tensor"]  # backprop.tensor is the function
    public = {n for n in vars(module) if not (n.startswith("__") and n.endswith("__"))}
    # The modules tensor.py imports (numpy, weakref) are its own tools, not names it exports.
    tools = {n for n in public if isinstance(getattr(module, n), types.ModuleType)}
    assert public - tools - defined == {"annotations"}  # the __future__ import
    assert {"Tensor", "Size", "Device", "DeviceError", "_make"} <= defined


def test_the_stub_imports_what_it_uses_and_re_exports_the_rest_explicitly():
    # `import x` / `from m import x` in a stub binds x for the stub alone; a re-export must be
    # written `from m import x as x` (PEP 484), or type checkers refuse `from backprop.tensor
    # import DeviceError`.
    tree = ast.parse(STUB)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                assert name in used or alias.asname == alias.name, ast.unparse(node)
    assert "DeviceError" not in used  # so the check above saw a re-export


def test_the_package_ships_the_stub_and_the_typed_marker():
    package = os.path.dirname(backprop.__file__)
    assert os.path.isfile(os.path.join(package, "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        pyproject = f.read()
    assert '"backprop" = ["py.typed", "*.pyi"]' in pyproject
