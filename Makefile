# physim: every target sets itself up on a fresh Debian 12 machine.
#   make test      fast suite (what CI runs)
#   make test-all  fast suite plus tests marked `slow`
#   make demo      the demo job; writes out/demo/
SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.physim-installed
PYTEST_ARGS ?=
# Two workers on CI's two cores; Warp runs one thread per process on a CPU.
PYTEST_WORKERS ?= 2

.PHONY: test test-all demo setup system-deps lint docs clean

setup: $(STAMP)

# dolfinx comes only from Debian (python3-dolfinx 0.5.2); the venv sees it through
# --system-site-packages.
system-deps:
	@if ! /usr/bin/python3 -c "import dolfinx" >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "physim: installing python3-dolfinx from Debian"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-dolfinx || exit 1; \
	  else \
	    echo "physim: python3-dolfinx is missing; run: sudo apt-get update && sudo apt-get install -y python3-dolfinx"; \
	    exit 1; \
	  fi; \
	fi

# Reinstall only when the package metadata changed (the stamp is newer otherwise).
$(STAMP): pyproject.toml setup.py
	@$(MAKE) --no-print-directory system-deps
	@if [ ! -x $(PY) ]; then /usr/bin/python3 -m venv --system-site-packages $(VENV); fi
	$(PY) -m pip install -q --upgrade "pip>=23.2"
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/physim demo --out out/demo

lint: $(STAMP)
	$(PY) -m ruff check physim operators envs tests scripts

docs: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,docs]'
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist *.egg-info out
