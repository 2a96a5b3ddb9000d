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
# wait on the control plane, so 3 workers fit a 2-core CI machine (measured warm beside the
# kind stage: the kwok suite took 16:17 on 2 workers, 12:12 on 3); 0 runs in one process.
TEST_WORKERS ?= 3
N ?= 100,500,1000,2000

# The kind stage (tests/kind: the operator image, the chart, real pods on a kind cluster) runs
# beside the kwok suite in `make test`, in its own pytest process (one cluster per session),
# niced so that the kwok suite's deadlines keep their CPU. KIND=0 leaves it out.
KIND ?= 1
KIND_NICE ?= 5

.PHONY: check-clean help venv tools tools-local test test-unit test-kind lint crds demo demo-sim demo-down bench cluster-up cluster-down clean

help: ## this list, generated from the `## ` comments of the targets below
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:[^#]*## / {printf "make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## the virtualenv in .venv (once)

tools: tools-local ## build the local control plane and the kind tier into ~/.cache/rollwise [KIND=0: no kind]
	$(if $(filter 1,$(KIND)),bash deploy/kind/build.sh,)

# The kwok tier's tools only: what needs no Docker daemon. `make demo-sim` runs inside the test
# suite while the kind stage owns the daemon, so it must not build (or start) anything of kind.
tools-local: ## build the local control plane (kwok tier) into ~/.cache/rollwise
	bash deploy/local/build-tools.sh
	bash deploy/local/build-promql-shape.sh

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
# The kind stage's output goes to $(RUN_DIR)/kind-stage.log and is printed after the suite's.
test: venv tools lint ## lint + the whole suite, the kind stage beside it (builds what is missing first) [KIND=0]
	@mkdir -p $(RUN_DIR)
	@if [ "$(KIND)" = 1 ]; then \
	  nice -n $(KIND_NICE) $(PY) -m pytest tests/kind --durations=10 -p no:cacheprovider $(PYTEST_ARGS) \
	    >$(RUN_DIR)/kind-stage.log 2>&1 & echo $$! >$(RUN_DIR)/kind-stage.pid; fi; \
	$(PY) -m pytest tests --ignore=tests/kind --durations=25 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS); rc=$$?; \
	krc=0; if [ "$(KIND)" = 1 ]; then \
	  echo "== waiting for the kind stage (log: $(RUN_DIR)/kind-stage.log)"; \
	  wait $$(cat $(RUN_DIR)/kind-stage.pid); krc=$$?; rm -f $(RUN_DIR)/kind-stage.pid; \
	  echo "== the kind stage (tests/kind), exit $$krc"; cat $(RUN_DIR)/kind-stage.log; fi; \
	[ $$rc -ne 0 ] || rc=$$krc; echo $$rc > $(RUN_DIR)/pytest.rc; exit $$rc

test-kind: venv tools ## the kind stage only: the image, the chart, real pods (tests/kind)
	$(PY) -m pytest tests/kind --durations=10 $(PYTEST_ARGS)

cluster-up: venv tools-local ## a local control plane to poke at by hand
	$(PY) -m tests.harness.cli up

cluster-down: venv ## stop it
	$(PY) -m tests.harness.cli down

# Lists (exit 1) any process of the harness still running: CI runs it after the tests.
check-clean: venv ## list (exit 1) any harness process still running
	$(PY) -m tests.harness.cli check-clean

demo: venv tools ## a real canary and a real rollback, as real pods on a kind cluster
	$(PY) -m tests.harness.kind_demo

demo-sim: venv tools-local ## the same story on the kwok proving ground (no Docker, no images) [KEEP=1]
	$(PY) -m tests.harness.demo $(if $(KEEP),--keep,)

demo-down: venv ## stop what make demo-sim KEEP=1 left running
	$(PY) -m tests.harness.cli down

bench: venv tools-local ## benchmarks [N=100,500,...], JSON under tests/bench/results/
	$(PY) -m tests.bench.run $(if $(N),--n $(N),)

clean: ## remove .venv, .run and the caches
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .mypy_cache .ruff_cache

.PHONY: release
# Everything a user installs, into dist/ (deploy/release/build.py says what); IMAGE=repo
# overrides the image repository, NO_IMAGE=1 skips the image.
release: venv ## wheel, sdist, chart, install manifests, checksums, image into dist/ (VERSION=x.y.z)
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z" >&2; exit 2; }
	$(PY) deploy/release/build.py --version $(VERSION) $(if $(IMAGE),--image $(IMAGE),) $(if $(NO_IMAGE),--no-image,)
