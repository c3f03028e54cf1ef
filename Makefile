# ONEX — the two commands a newcomer needs are `make demo` and `make test`.
# Both create .venv and install the project (with every extra and the dev tools) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test lint fmt typecheck bench clean

help:
	@echo "make demo       run the node-registration workflow on the embedded default"
	@echo "make test       run the test suite"
	@echo "make lint       ruff (lint + format check) and mypy --strict"
	@echo "make fmt        format the code with ruff"
	@echo "make bench      run the benchmarks (rates and ratios against floors measured in the same run)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e ".[all]" --group dev
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/onex demo registration

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
