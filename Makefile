# Thin wrappers: each target is one command you could type yourself.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION ?= 0.13.9
CHECKOV_VERSION ?= 3.3.30
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --locked
PYTEST_ARGS ?=
# Test files run in parallel worker processes that share one PostgreSQL and one Kafka
# (docs/testing.md). Most of a test's time is spent waiting on servers and subprocesses, so
# more workers than cores pay off; PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 3
# UV: the uv to call from tests, which may live where PATH does not look (~/.local/bin).
# PYTHONDONTWRITEBYTECODE cleared: each worker and each service or command a test starts would
# otherwise compile the project's modules again (__pycache__ is ignored by git and Docker).
PYTEST := UV=$(UV) PYTHONDONTWRITEBYTECODE= $(RUN) pytest -n $(PYTEST_WORKERS) \
	--dist loadfile --no-loadscope-reorder
UNIT := not integration and not e2e and not deploy
# checkov in its own pinned tool environment: its dependencies never meet the project's lock.
CHECKOV := $(UV) tool run --from "checkov==$(CHECKOV_VERSION)" checkov --config-file deploy/checkov.yaml

.PHONY: help setup demo test test-unit test-fast test-integration test-e2e test-deploy lint \
	typecheck fmt bench soak infra-up infra-down check clean manifests jars

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m pip install --user --quiet "uv==$(UV_VERSION)" \
	  || python3 -m pip install --user --quiet --break-system-packages "uv==$(UV_VERSION)"

# Bytecode compiled once at install: where the environment turns off writing it
# (PYTHONDONTWRITEBYTECODE), each of the hundreds of Python processes a test run starts
# (services, CLI commands) would otherwise compile every library it imports again.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode
	@touch $@

setup: .venv/.synced ## create .venv and install the locked dependencies

DEMO_ARGS ?=

demo: setup ## run the whole pipeline against the built-in Autotask simulator (DEMO_ARGS="--duration 30")
	$(RUN) python -m tools.demo $(DEMO_ARGS)

# pytest's exit status 5 (no test collected) fails the target too, saying so.
define pytest
	@$(PYTEST) $(1) $(PYTEST_ARGS) || { status=$$?; \
	  if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$status; }
endef

test: setup ## the whole suite in parallel (real PostgreSQL, Kafka, simulator; PYTEST_ARGS=...)
	$(call pytest,)

test-unit: setup ## tests that need no PostgreSQL, Kafka or Go (pure units, simulator, client)
	$(call pytest,-m "$(UNIT)")

test-fast: test-unit ## the same as test-unit

test-integration: setup ## tests against real PostgreSQL and/or Kafka (marker integration)
	$(call pytest,-m integration)

test-e2e: setup ## the services as real processes end to end, fault suite included (marker e2e)
	$(call pytest,-m e2e)

test-deploy: setup ## the deploy/k8s and Dockerfile checks (marker deploy; kustomize built with Go)
	$(call pytest,-m deploy)

lint: setup ## ruff lint and format check; checkov over the rendered manifests and the Dockerfile
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) python -m tools kustomize render --out build/k8s
	$(CHECKOV) --framework kubernetes --directory build/k8s
	$(CHECKOV) --framework dockerfile --file Dockerfile

manifests: setup ## render every deploy/k8s variant into build/k8s/ (pinned kustomize, built on first use)
	$(RUN) python -m tools kustomize render --out build/k8s

jars: setup ## fetch the Kafka, Kafka Connect and Debezium JDBC sink jars into the cache (tests fetch them on first use)
	$(RUN) python -m tools.dev_infra.connect

typecheck: setup ## mypy --strict on services/ and shared/
	$(RUN) mypy

fmt: setup ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: setup ## benchmarks against same-run baselines: bench/results/latest.{json,md}, latency.png
	$(RUN) --group bench python -m bench $(BENCH_ARGS)

# The two fault suites side by side, each on servers of its own (docs/testing.md).
soak: setup ## both fault suites at length: SOAK (default 10) times the changes, 5-minute outages (~25 min)
	AUTOTASK_SYNC_SOAK=$(or $(SOAK),10) UV=$(UV) $(RUN) pytest tests/e2e/test_faults.py \
	  tests/e2e/test_outages.py -n 2 --dist loadfile -p no:cacheprovider

infra-up: setup ## start local PostgreSQL and Kafka; prints the environment to use
	$(RUN) python -m tools dev-infra up

infra-down: setup ## stop the local stack
	$(RUN) python -m tools dev-infra down

check: lint typecheck test ## everything CI checks

clean: ## remove the virtualenv and caches
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache bench/results
