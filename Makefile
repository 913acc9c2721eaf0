# Quick start: `make demo` (index and search a collection) and `make test` (the test suite).
# Both create the virtualenv at .venv when it is missing and install what they need into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STORE ?= .modelverse/demo-store

.PHONY: demo test setup protos clean-venv

$(STAMP): pyproject.toml requirements-nodeps.txt
	bash tools/install_system_data.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/modelverse demo --store $(STORE)

test: $(STAMP)
	$(BIN)/python -m pytest

protos: $(STAMP)
	$(BIN)/python tools/gen_protos.py

clean-venv:
	rm -rf $(VENV)
