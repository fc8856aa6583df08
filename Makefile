# tunelake: the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS_DIR  := $(HOME)/.cache/tunelake
UV_VENV    := $(TOOLS_DIR)/uv-venv
UV         := $(UV_VENV)/bin/uv
PYTHON     ?= python3.11
VENV       := .venv
TUNELAKE   := $(VENV)/bin/tunelake
PYTEST     := $(VENV)/bin/pytest
RUFF       := $(VENV)/bin/ruff

.PHONY: help install up down status demo test test-tools test-unit test-integration lint format bench-ingest bench-silver bench-ml bench-sql

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode is compiled at install: every Spark and Airflow task is a new interpreter, and
# where PYTHONDONTWRITEBYTECODE is set each one compiled its imports again (17 s for
# great_expectations alone, 7 s compiled).
install: $(UV)  ## Python env from uv.lock, then Maven jars, registry, PostgreSQL
	UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --all-extras --compile-bytecode --python $(PYTHON)
	$(TUNELAKE) install

up: install  ## start the local stack (a second run starts nothing)
	$(TUNELAKE) up

down:  ## stop every process `up` started
	@if [ -x $(TUNELAKE) ]; then $(TUNELAKE) down; else echo "nothing installed"; fi

status:  ## service, pid, port, health
	$(TUNELAKE) status

# The demo gives the model search two minutes of retraining's ten (TUNELAKE_MODEL_SEARCH_SECONDS,
# 600 by default): a newcomer's first run shows the climb without waiting on it.
demo: up  ## install, start the stack, run the main job, print its summary
	TUNELAKE_MODEL_SEARCH_SECONDS=$${TUNELAKE_MODEL_SEARCH_SECONDS:-120} $(TUNELAKE) demo

lint: install  ## ruff lint and format check
	$(RUFF) check .
	$(RUFF) format --check .

# What tests run besides the stack is installed before pytest starts, so the suite's time
# is its tests': Chromium for the Airflow UI test, and the pinned tools of tests/deploy
# (helm and actionlint are built with Go, minutes on a fresh machine).
test-tools: install  ## Chromium and the offline deploy-check tools the tests use
	$(TUNELAKE) install --browser
	PYTHON=$(VENV)/bin/python scripts/install-deploy-tools.sh

test: up lint test-tools  ## install, start what tests need, run every test (unit + integration)
	$(PYTEST)

test-unit: install  ## unit tests only (no services)
	$(PYTEST) -m unit

test-integration: up test-tools  ## integration tests against the live stack
	$(PYTEST) -m integration

format: install  ## apply ruff's fixes and formatting
	$(RUFF) check --fix .
	$(RUFF) format .

bench-ingest: up  ## Kafka->Bronze events/s vs the raw consumer (1M events); API->Bronze freshness
	$(VENV)/bin/python -m benchmarks.bench_ingest

bench-silver: up  ## Silver from 10M Bronze events: Spark vs DuckDB; daily run on 1 vs 30 days
	TUNELAKE_SPARK_DRIVER_MEMORY=$${TUNELAKE_SPARK_DRIVER_MEMORY:-8g} $(VENV)/bin/python -m benchmarks.bench_silver

bench-ml: up  ## Spark ALS vs implicit (time; NDCG@10 searched vs tuned, generated and MovieLens 100k); serving a 100k x 50k model: p99 at 300 req/s, req/s saturated
	UV=$(UV) TUNELAKE_SPARK_DRIVER_MEMORY=$${TUNELAKE_SPARK_DRIVER_MEMORY:-4g} $(VENV)/bin/python -m benchmarks.bench_ml $(BENCH_ARGS)

bench-sql: up  ## the dashboards' panel queries on Trino vs DuckDB over the same Delta tables (10M listens)
	TUNELAKE_SPARK_DRIVER_MEMORY=$${TUNELAKE_SPARK_DRIVER_MEMORY:-8g} $(VENV)/bin/python -m benchmarks.bench_sql
