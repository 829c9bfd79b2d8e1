# Thresher developer tasks. `make` alone lists them.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Directories that are not in the tree yet are left out rather than failing ruff.
CODE_DIRS := $(wildcard src tests bench examples)
BENCH_SCRIPTS := $(filter-out bench/_%,$(wildcard bench/*.py))
BENCH_RESULTS := bench/results.jsonl
DEMO_ARGS ?=

.PHONY: help venv deps check lint fmt test demo bench clean distclean

help: ## Show this list
	@awk 'BEGIN { FS = ":.*## " } /^[a-z]+:.*## / { printf "  make %-10s %s\n", $$1, $$2 }' \
		$(MAKEFILE_LIST)

venv: $(STAMP) ## Create .venv and install Thresher editable with the dev, postgres and openjd extras

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --disable-pip-version-check --quiet --upgrade pip
	$(PYTHON) -m pip install --disable-pip-version-check -e '.[dev,postgres,openjd]'
	touch $@

deps: ## Install missing system packages: renderers, PostgreSQL, chromium (root, or prints the sudo command)
	bash scripts/install-system-deps.sh --all

# The gate: `check` and `test` (which CI runs) lint first and never start pytest if linting fails.
lint: venv ## ruff format --check, ruff check, mypy (src strict, and tests), lint-imports
	$(VENV)/bin/ruff format --check $(CODE_DIRS)
	$(VENV)/bin/ruff check $(CODE_DIRS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

check: lint ## lint, then the whole pytest suite with PostgreSQL
	bash scripts/run-tests.sh

fmt: venv ## Reformat and apply ruff's automatic fixes
	$(VENV)/bin/ruff format $(CODE_DIRS)
	$(VENV)/bin/ruff check --fix $(CODE_DIRS)

test: deps lint ## Install what is missing, lint, then the whole pytest suite with PostgreSQL
	bash scripts/run-tests.sh

demo: venv ## Render the example farm (DEMO_ARGS are passed to examples/demo.py)
	bash scripts/install-system-deps.sh --renderers
	$(PYTHON) examples/demo.py $(DEMO_ARGS)

bench: venv ## Run bench/*.py, appending the JSON line each prints to bench/results.jsonl
	@for script in $(BENCH_SCRIPTS); do \
		echo "bench: $$script" >&2; \
		line=$$($(PYTHON) "$$script"); \
		printf '%s\n' "$$line" | $(PYTHON) -c 'import json, sys; lines = sys.stdin.read().splitlines(); assert len(lines) == 1, "expected one line"; json.loads(lines[0])' 2>/dev/null \
			|| { echo "bench: $$script did not print exactly one JSON line" >&2; exit 1; }; \
		printf '%s\n' "$$line" >> $(BENCH_RESULTS); \
	done

clean: ## Remove caches and build outputs (keeps .venv and .tools)
	rm -rf build dist demo-farm .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	find $(CODE_DIRS) -name __pycache__ -type d -prune -exec rm -rf {} +
	find src -maxdepth 1 -name '*.egg-info' -type d -exec rm -rf {} +

distclean: clean ## Also remove .venv and .tools
	rm -rf $(VENV) .tools
