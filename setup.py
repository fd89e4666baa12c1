"""Build the optional C accelerator; everything else about the package is in pyproject.toml.

Two extensions, both optional: the engine's loops (``autograd/_cengine.c``) and a few
ops' array kernels (``ops/_ckernels.c``). Where no C compiler (or no Python headers) is
present the build goes on without them, and backprop runs its pure-Python engine and
NumPy code, the reference. Each source's SHA-256 is compiled in, so that backprop never
runs a stale build.
"""
import hashlib

from setuptools import Extension, setup


def extension(name: str, source: str, macro: str, flags: tuple = ()) -> Extension:
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return Extension(name, [source], optional=True, define_macros=[(macro, f'"{digest}"')],
                     extra_compile_args=list(flags))


setup(ext_modules=[
    extension("backprop.autograd._cengine", "src/backprop/autograd/_cengine.c",
              "CENGINE_SOURCE_SHA256"),
    # -fno-trapping-math lets the compiler turn the kernels' float compares into selects
    # and vector code; it never changes a result (only whether an FP flag can be raised).
    # -ffp-contract=off: no fused multiply-add, so every CPU's build rounds alike.
    # -fno-math-errno: sqrt need not set errno (so it vectorizes); its value is the same.
    extension("backprop.ops._ckernels", "src/backprop/ops/_ckernels.c", "CKERNELS_SOURCE_SHA256",
              ("-fno-trapping-math", "-ffp-contract=off", "-fno-math-errno")),
])
