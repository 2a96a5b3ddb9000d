# rollwise — every entry point a developer, CI or a newcomer uses.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
CACHE   ?= $(HOME)/.cache/rollwise
RUN_DIR ?= .run
PYTEST_ARGS ?=
# make test runs test files on this many pytest-xdist workers, each with its own session
# control plane (loopback address slots keep their pods and Services apart). The tests mostly
# wait on the control plane, so 2 workers fit a 2-core CI machine; 0 runs in one process.
TEST_WORKERS ?= 2
N ?= 100,500,1000,2000

.PHONY: check-clean help venv tools test test-unit lint crds demo demo-down bench cluster-up cluster-down clean

help: ## this list, generated from the `## ` comments of the targets below
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:[^#]*## / {printf "make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## the virtualenv in .venv (once)

tools: ## build the local control plane binaries into ~/.cache/rollwise
	bash deploy/local/build-tools.sh

lint: venv ## ruff, mypy --strict, import-linter, stale-CRD check
	$(VENV)/bin/ruff format --check operator tests
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests/harness tests/conftest.py
	$(VENV)/bin/lint-imports
	$(VENV)/bin/rollwise crds --check

crds: venv ## regenerate the CRD YAML from the API models
	$(VENV)/bin/rollwise crds

test-unit: venv ## the pure core, adapters, controller parts and the harness self-tests (no cluster)
	$(PY) -m pytest tests/unit tests/harness/tests $(PYTEST_ARGS)

# The 25 slowest tests are listed at the end: the warm-CI budget (15 min) is spent there.
# pytest's own exit code is kept in $(RUN_DIR)/pytest.rc so .ci/run can tell "no tests" (5) apart.
test: venv tools lint ## lint + the whole suite (builds what is missing first)
	@mkdir -p $(RUN_DIR)
	$(PY) -m pytest tests --durations=25 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS); rc=$$?; echo $$rc > $(RUN_DIR)/pytest.rc; exit $$rc

cluster-up: venv tools ## a local control plane to poke at by hand
	$(PY) -m tests.harness.cli up

cluster-down: venv ## stop it
	$(PY) -m tests.harness.cli down

# Lists (exit 1) any process of the harness still running: CI runs it after the tests.
check-clean: venv ## list (exit 1) any harness process still running
	$(PY) -m tests.harness.cli check-clean

demo: venv tools ## a real canary and a real rollback on the local control plane [KEEP=1]
	$(PY) -m tests.harness.demo $(if $(KEEP),--keep,)

demo-down: venv ## stop what make demo KEEP=1 left running
	$(PY) -m tests.harness.cli down

bench: venv tools ## benchmarks [N=100,500,...], JSON under tests/bench/results/
	$(PY) -m tests.bench.run $(if $(N),--n $(N),)

clean: ## remove .venv, .run and the caches
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .mypy_cache .ruff_cache
