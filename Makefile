# Heimdall developer commands. Everything installs into .venv at the repo root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080
# The Lambda runtime template.yaml names (python3.12): `make build` compiles the layer for it.
RUNTIME := $(shell sed -n 's/^ *Runtime: *\(python3\.[0-9]*\).*/\1/p' template.yaml | head -n 1)

.PHONY: run test lint fuzz bench fanout-bench install clean events build deploy

$(VENV)/.run-deps: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[local,multilingual,serve]'
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps
	$(PY) -m pip install --quiet -e '.[local,multilingual,serve,dev]'
	touch $@

install: $(VENV)/.dev-deps

## Serve the gateway on http://127.0.0.1:$(PORT) with the embedded engine (HEIMDALL_CONFIG honoured).
run: $(VENV)/.run-deps
	PORT=$(PORT) exec $(PY) -m heimdall

## Build for AWS Lambda (sam build) for the template's runtime: in a container when Docker answers,
## else with that Python from PATH, else a message saying what to install.
build:
	scripts/build.sh $(RUNTIME)

## Build, then deploy (guided the first time, until samconfig.toml holds the answers).
deploy: build
	sam deploy $(if $(wildcard samconfig.toml),,--guided)

## Lint, type-check, check the SAM template, and run the whole test suite.
test: $(VENV)/.dev-deps lint
	$(PY) -m pytest

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

## A long fuzz run: schemathesis with many examples and a random seed, plus the multipart corpus.
fuzz: $(VENV)/.dev-deps
	HEIMDALL_FUZZ_EXAMPLES=$${HEIMDALL_FUZZ_EXAMPLES:-400} HEIMDALL_FUZZ_SEED=random $(PY) -m pytest tests/fuzz -s -q

bench: $(VENV)/.dev-deps
	$(PY) -m benchmarks

## Long audio fanned out: 2 h of audio from upload to transcript at W = 100, 10 and 1 (docs/jobs.md).
fanout-bench: $(VENV)/.dev-deps
	$(PY) -m benchmarks fanout

events: $(VENV)/.dev-deps
	$(PY) scripts/make_events.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
