# Everything starts from a bare `python3`: the first target run creates .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench docs docs-serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## demo: a pipeline killed with SIGKILL mid-way, then resumed from SQLite
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## test: the whole test suite (Postgres/Redis tests skip when no server runs)
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff and mypy (strict on src/, plus the typing checks in tests/typing)
lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

## docs: build the documentation site into site/ (warnings, broken links included, fail)
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict

## docs-serve: serve the documentation site with live reload on http://127.0.0.1:8000
docs-serve: $(DOCS_STAMP)
	$(BIN)/mkdocs serve

## bench: speed against the raw database limits, printed as a table
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
