# Every target creates .venv and installs the project when it is missing or stale.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test bench lint sysdeps reliability clean gpu-check

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# System packages the browser and PostgreSQL tests use (Debian; installed only when missing).
sysdeps:
	bash scripts/sysdeps.sh

test: $(STAMP) sysdeps
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check encoders indexer retrieval ui tests bench
	$(VENV)/bin/ruff format --check encoders indexer retrieval ui tests bench

bench: $(STAMP)
	$(PY) bench/encode.py
	$(PY) bench/vectors.py
	$(PY) bench/index.py
	$(PY) bench/search.py
	$(PY) bench/train.py
	if $(PY) -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then $(PY) bench/gpu.py; fi

# On a CUDA machine: vitrieve installed on top of the torch already there (no venv, no torch
# download), the gpu-marked tests, then bench/gpu.py. PYTHON=... picks the interpreter.
gpu-check:
	bash scripts/gpu_check.sh

# The reliability suite at full size (crash-kill harness, faults, fuzzing, load, the API's
# schema fuzz); it writes docs/reliability-figures.json, which docs/reliability.md quotes.
# `make test` runs it reduced.
reliability: $(STAMP) sysdeps
	$(PY) -m pytest -q tests/reliability tests/api/test_schema_fuzz.py --full $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/vitrieve demo

clean:
	rm -rf $(VENV) .pytest_cache
