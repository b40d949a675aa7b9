# The verbs people expect. `make demo` and `make test` create .venv on first use.
# A torch already installed for the system Python (say a CUDA build) is kept: the venv then
# sees system packages. Otherwise the CPU wheel torch==2.13.0 is installed first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-slow lint format bench clean

$(PY):
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) torch==2.13.0

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) -e '.[demo]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) -e '.[dev,demo]'
	@touch $@

demo: $(VENV)/.demo-installed  ## the built-in default: Chinese pretrain → fine-tune → table (about 14 min on 2 cores)
	$(VENV)/bin/plmkit demo

test: $(VENV)/.dev-installed  ## fast tests (a few minutes on 2 cores)
	$(PY) -m pytest -q

test-slow: $(VENV)/.dev-installed  ## the slow checks too
	$(PY) -m pytest -q -m "slow"

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check plmkit tests bench
	$(VENV)/bin/ruff format --check plmkit tests bench

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff format plmkit tests bench
	$(VENV)/bin/ruff check --fix plmkit tests bench

bench: $(VENV)/.dev-installed
	$(PY) bench/dataprep.py

clean:
	rm -rf $(VENV) runs demo-out .pytest_cache .ruff_cache
