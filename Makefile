# Thin wrappers: each target is one command you could type yourself.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION ?= 0.13.9
CHECKOV_VERSION ?= 3.3.30
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --locked
PYTEST_ARGS ?=
# checkov in its own pinned tool environment: its dependencies never meet the project's lock.
CHECKOV := $(UV) tool run --from "checkov==$(CHECKOV_VERSION)" checkov --config-file deploy/checkov.yaml

.PHONY: help setup demo test test-fast lint typecheck fmt bench soak infra-up infra-down check clean manifests

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m pip install --user --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	@touch $@

setup: .venv/.synced ## create .venv and install the locked dependencies

DEMO_ARGS ?=

demo: setup ## run the whole pipeline against the built-in Autotask simulator (DEMO_ARGS="--duration 30")
	$(RUN) python -m tools.demo $(DEMO_ARGS)

test: setup ## run the whole test suite (real PostgreSQL, Kafka and simulator)
	@$(RUN) pytest $(PYTEST_ARGS) || { status=$$?; \
	  if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$status; }

test-fast: setup ## every test that needs no PostgreSQL or Kafka (pure units, simulator, client)
	$(RUN) pytest -m "not integration and not e2e" $(PYTEST_ARGS)

lint: setup ## ruff lint and format check; checkov over the rendered manifests and the Dockerfile
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) python -m tools kustomize render --out build/k8s
	$(CHECKOV) --framework kubernetes --directory build/k8s
	$(CHECKOV) --framework dockerfile --file Dockerfile

manifests: setup ## render every deploy/k8s variant into build/k8s/ (pinned kustomize, built on first use)
	$(RUN) python -m tools kustomize render --out build/k8s

typecheck: setup ## mypy --strict on services/ and shared/
	$(RUN) mypy

fmt: setup ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: setup ## benchmarks against same-run baselines: bench/results/latest.{json,md}, latency.png
	$(RUN) --group bench python -m bench $(BENCH_ARGS)

soak: setup ## the fault suite with SOAK (default 10) times the changes per scenario (~15 min at 10)
	AUTOTASK_SYNC_SOAK=$(or $(SOAK),10) $(RUN) pytest tests/e2e/test_faults.py -p no:cacheprovider

infra-up: setup ## start local PostgreSQL and Kafka; prints the environment to use
	$(RUN) python -m tools dev-infra up

infra-down: setup ## stop the local stack
	$(RUN) python -m tools dev-infra down

check: lint typecheck test ## everything CI checks

clean: ## remove the virtualenv and caches
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache bench/results
