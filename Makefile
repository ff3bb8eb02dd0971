# Novamind: `make dev` runs the whole fleet locally, `make test` runs every test.
# Both set up what is missing first (the virtual environment in .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROJECT_FILES := requirements/dev.txt requirements/constraints.txt $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)

.PHONY: dev test lint proto lock clean help

help:
	@echo "make dev    - set up if needed, then run broker + all services + gateway locally"
	@echo "make test   - set up if needed, then run every test (lint, types, unit, fleet)"
	@echo "make proto  - regenerate the gRPC stubs in libs/api from proto/"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make lock   - re-pin requirements/constraints.txt from the current environment"

$(STAMP): $(PROJECT_FILES)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/novamind-dev

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check libs services tests bench
	$(BIN)/ruff format --check libs services tests bench
	$(BIN)/mypy libs/core/src libs/devtools/src $(wildcard services/*/src/novamind/*/domain)

proto: $(STAMP)
	$(BIN)/python -m novamind.devtools.protogen

lock: $(STAMP)
	{ echo "# Exact versions of every package in .venv; regenerate with 'make lock'."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements/constraints.txt

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
