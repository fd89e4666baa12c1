"""Build the optional C accelerator; everything else about the package is in pyproject.toml.

The extension is optional: where no C compiler is present the build goes on without it,
and backprop runs its pure-Python engine (the reference implementation).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("backprop.autograd._cengine",
                             ["src/backprop/autograd/_cengine.c"], optional=True)])
