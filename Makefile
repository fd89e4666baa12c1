# Every target bootstraps .venv from nothing, then acts.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo lab test bench oracle clean

$(VENV)/.core: pyproject.toml setup.py src/backprop/autograd/_cengine.c src/backprop/ops/_ckernels.c
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.lab: $(VENV)/.core
	$(PIP) install -q -e ".[lab]"
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.core
	$(PY) examples/demo.py

# The lab: a local web page where the real engine trains while you drag the sliders.
lab: $(VENV)/.lab
	$(VENV)/bin/backprop lab

# The engine's tests run twice: with the C accelerator (when it was built) and with
# the pure-Python engine it mirrors, which is the reference.
ENGINE_TESTS := tests/autograd tests/ops tests/test_tensor.py tests/test_errors.py \
	tests/test_tutorial.py tests/test_pytorch_compat.py tests/diagnostics/test_selfcheck.py

test: $(VENV)/.dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src
	$(VENV)/bin/mypy src/backprop
	$(VENV)/bin/mypy src/backprop/tensor.py  # the first run reads tensor.pyi in its place
	$(PY) -m pytest -n 2 tests || [ $$? -eq 5 ]
	BACKPROP_PURE_PYTHON=1 $(PY) -m pytest -n 2 $(ENGINE_TESTS) || [ $$? -eq 5 ]

# PyTorch CPU, the oracle for tests and benchmarks. torch==2.13.0 is the CPU wheel
# this machine keeps on disk; on other machines pip may fetch a (large) CUDA build.
oracle: $(VENV)/.dev
	$(PIP) install -q "torch==2.13.0" "safetensors>=0.4" "ray[tune,client]>=2.40,<3"

# Issue 15's table: every benchmark at one thread pinned to one core (the reference, where
# taskset exists) and at two, printed in markdown and written to benchmarks/out/latest.json.
# Then the language-model steps (reported, no goal yet), one thread pinned.
PIN := $(shell command -v taskset >/dev/null 2>&1 && echo taskset -c 0)

bench: $(VENV)/.core
	$(PY) benchmarks/table.py
	$(PIN) $(PY) benchmarks/lm_steps.py --threads 1

clean:
	rm -rf $(VENV) build src/backprop/autograd/_cengine*.so src/backprop/ops/_ckernels*.so
