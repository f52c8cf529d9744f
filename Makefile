PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test demo lint format bench clean

help:            ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)   ## create .venv and install the project with its test extras

test: $(STAMP)   ## lint, format check, mypy --strict, then the whole test suite (what CI runs)
	$(BIN)/ruff check t360cli tests bench
	$(BIN)/ruff format --check t360cli tests bench
	$(BIN)/mypy t360cli
	$(BIN)/python -m pytest -q

demo: $(STAMP)   ## start a sandbox, upload every sample file, show what it received
	$(BIN)/t360 demo

lint: $(STAMP)   ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check t360cli tests bench
	$(BIN)/ruff format --check t360cli tests bench
	$(BIN)/mypy t360cli

format: $(STAMP) ## rewrite the code in the one house format
	$(BIN)/ruff format t360cli tests bench
	$(BIN)/ruff check --fix t360cli tests bench

bench: $(STAMP)  ## validate throughput and memory against the floor (1M rows)
	$(BIN)/python bench/validate.py

clean:           ## remove the venv and local state
	rm -rf $(VENV) .t360 bench/out
