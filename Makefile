# Quick start: `make demo` (index and search a collection) and `make test` (the test suite).
# Both create the virtualenv at .venv when it is missing and install what they need into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STORE ?= .modelverse/demo-store

.PHONY: demo test test-fast setup protos clean-venv

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

# The Node.js client of tests/test_node_client.py (pinned by its package-lock.json).
NODE_CLIENT := tests/node_client/node_modules/.package-lock.json

$(NODE_CLIENT): tests/node_client/package-lock.json
	if command -v npm >/dev/null; then npm ci --prefix tests/node_client --no-audit --no-fund; \
	else echo "npm not found: tests/test_node_client.py will be skipped"; fi

test: $(STAMP) $(NODE_CLIENT)
	$(BIN)/python -m pytest

# The edit loop: unit and congruence tests in the pytest process, without the tests marked slow
# (processes of their own, the open_clip encoder, the zoo; tests/README.md). 479 tests,
# 34 s here (2026-12-02). CI runs `make test`, everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

protos: $(STAMP)
	$(BIN)/python tools/gen_protos.py

clean-venv:
	rm -rf $(VENV)
