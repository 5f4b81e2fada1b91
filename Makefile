# chainsentry: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
ANVIL := node_modules/.bin/anvil

.PHONY: install test demo lint bench clean

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==24.3.1"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: install
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/pytest $(PYTEST_ARGS)

demo: install
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/chainsentry demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check ingest detectors alerts chainsentry tests benchmarks
	$(BIN)/mypy ingest detectors alerts chainsentry

bench: install
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_replay_decode.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_ingest.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_follow_memory.py
	$(BIN)/python benchmarks/bench_detect.py
	$(BIN)/python benchmarks/bench_alerts.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_latency.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
