# Every target creates .venv and installs the project when it is missing or stale.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test bench lint sysdeps reliability clean gpu-check gpu-bench-train gpu-wheels gpu-rehearsal

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

# The benches import vitrieve from the installed package and a few test helpers (generated
# text photos, the tests' model and library, the servers) from these folders.
BENCH_PATH := tests/ocr:tests/retrieval:tests/reliability:tests/api

bench: $(STAMP)
	$(PY) bench/encode.py
	$(PY) bench/vectors.py
	$(PY) bench/index.py
	$(PY) bench/search.py
	$(PY) bench/train.py
	$(PY) bench/understand.py
	PYTHONPATH=$(BENCH_PATH) $(PY) bench/ocr.py
	PYTHONPATH=$(BENCH_PATH) $(PY) bench/cutoff.py
	$(PY) bench/video.py
	if $(PY) -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then $(PY) bench/gpu.py; fi

# On a CUDA machine, two parts of under 8 minutes each on one H200 (docs/gpu.md, "Checking a GPU
# machine"); each installs what is missing on top of the machine's own torch first (no venv, no
# torch download; offline from .whl/), runs every step even after a failure, prints figures as
# it goes and lists the failures at the end. PYTHON=... picks the interpreter.
#   gpu-check:       the gpu-marked tests (all but the trainer's), then bench/gpu.py
#   gpu-bench-train: the trainer's gpu tests, then bench/train.py (ours vs open_clip_train)
gpu-check:
	bash scripts/gpu_check.sh check

gpu-bench-train:
	bash scripts/gpu_check.sh train

# The wheels a bare GPU machine (torch, torchvision, numpy, Pillow, transformers, safetensors)
# lacks for gpu-check, at this venv's versions, into .whl/ (under 64 MiB: it travels to an
# offline machine); PART=train: what gpu-bench-train needs beyond that, into .whl-train/.
# WHEEL_PYTHON=3.12 fetches them for another Python than this venv's.
PART ?= check
WHEEL_PYTHON ?=
gpu-wheels: $(STAMP)
	bash scripts/gpu_wheels.sh $(PART) $(WHEEL_PYTHON)

# make gpu-check's install part rehearsed on this CPU machine, in a fresh venv that looks like a
# bare GPU machine, offline from .whl/ (scripts/gpu_rehearsal.sh says how)
gpu-rehearsal: $(STAMP)
	bash scripts/gpu_rehearsal.sh

# The reliability suite at full size (crash-kill harness, faults, fuzzing, load, the API's
# schema fuzz); it writes docs/reliability-figures.json, which docs/reliability.md quotes.
# `make test` runs it reduced.
reliability: $(STAMP) sysdeps
	$(PY) -m pytest -q tests/reliability tests/api/test_schema_fuzz.py --full $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/vitrieve demo

clean:
	rm -rf $(VENV) .pytest_cache
