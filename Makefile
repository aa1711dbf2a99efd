# Thin wrappers: each target is one command you could type yourself.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION ?= 0.13.9
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --locked
PYTEST_ARGS ?=

.PHONY: help setup demo test test-fast lint typecheck fmt bench infra-up infra-down check clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m pip install --user --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	@touch $@

setup: .venv/.synced ## create .venv and install the locked dependencies

demo: setup ## run the whole pipeline against the built-in Autotask simulator
	$(RUN) python -m tools.demo

test: setup ## run the whole test suite (real PostgreSQL, Kafka and simulator)
	@$(RUN) pytest $(PYTEST_ARGS) || { status=$$?; \
	  if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$status; }

test-fast: setup ## unit tests only (no infrastructure)
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

lint: setup ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup ## mypy --strict on services/ and shared/
	$(RUN) mypy

fmt: setup ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: setup ## benchmarks: JSON in bench/results/ plus a table
	$(RUN) python -m bench $(BENCH_ARGS)

infra-up: setup ## start local PostgreSQL and Kafka; prints the environment to use
	$(RUN) autotask-sync dev-infra up

infra-down: setup ## stop the local stack
	$(RUN) autotask-sync dev-infra down

check: lint typecheck test ## everything CI checks

clean: ## remove the virtualenv and caches
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache bench/results
