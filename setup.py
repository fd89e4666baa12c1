"""Build the optional C accelerator; everything else about the package is in pyproject.toml.

The extension is optional: where no C compiler (or no Python headers) is present the
build goes on without it, and backprop runs its pure-Python engine, the reference.
The source's SHA-256 is compiled in, so that backprop never runs a stale build.
"""
import hashlib

from setuptools import Extension, setup

SOURCE = "src/backprop/autograd/_cengine.c"
with open(SOURCE, "rb") as f:
    DIGEST = hashlib.sha256(f.read()).hexdigest()

setup(ext_modules=[Extension("backprop.autograd._cengine", [SOURCE], optional=True,
                             define_macros=[("CENGINE_SOURCE_SHA256", f'"{DIGEST}"')])])
