# shopstream — the two commands of the README are `make run` and `make test`; the rest wrap the CLI.
# Every target does its own set-up (idempotent: seconds when already done).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SS     := $(BIN)/shopstream
PYTEST := infra/bin/pytest-strict $(BIN)/python

.PHONY: run setup setup-test up down status logs test test-unit test-integration test-e2e lint bench clean

## run: the platform's main job — install, start the local stack and the services, keep them
## healthy, register the event schemas, and start the storefront workload (simulator) and the IoT
## shelf sensors (devices)
run: setup
	$(SS) up
	$(SS) schemas register
	$(SS) up simulator devices

## test: the whole test suite (lint, unit, integration, e2e), starting the stack it needs
test: setup-test lint
	$(PYTEST) tests

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11+ is needed (PYTHON=$(PYTHON))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[stack,events,api,streams,olap,integrations,dev]'
	touch $@

setup: $(BIN)/.installed
	$(SS) setup

## setup-test: setup, plus what only the tests need: the PyFlink environment, Chromium
setup-test: $(BIN)/.installed
	$(SS) setup --flink --browser

up: setup
	$(SS) up

down: $(BIN)/.installed
	$(SS) down

status: $(BIN)/.installed
	$(SS) status

## logs NAME=kafka
logs: $(BIN)/.installed
	$(SS) logs $(NAME)

test-unit: $(BIN)/.installed
	$(PYTEST) tests/unit

test-integration: setup-test
	$(PYTEST) tests/integration

test-e2e: setup-test
	$(PYTEST) tests/e2e

lint: $(BIN)/.installed
	$(BIN)/python -m pip check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: every figure into bench/RESULTS.md (a throw-away stack for start-up and memory, then
## serde, registry, order, dataflow, serving and OLAP figures against the running stack)
bench: setup
	$(BIN)/python bench/stack_bench.py --report bench/RESULTS.md
	$(SS) up
	$(BIN)/python bench/serde_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/registry_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/orders_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/streams_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/replay_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/serving_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/olap_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/payment_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/webhooks_bench.py --report bench/RESULTS.md
	$(BIN)/python bench/iot_bench.py --report bench/RESULTS.md

## clean: stop the stack and delete everything it wrote (.local/) — data included
clean: $(BIN)/.installed
	$(SS) clean --yes
