# chainsentry: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXT_STAMP := $(VENV)/.compiled-stamp$(if $(CHAINSENTRY_NO_EXTENSIONS),-none,)
NODE_STAMP := node_modules/.installed-stamp
ANVIL := node_modules/.bin/anvil

.PHONY: install test demo lint bench clean kafka-local prometheus contracts compiled docs

KAFKA_STAMP := deploy/kafka/libs/.installed-stamp

install: $(STAMP) $(EXT_STAMP) $(NODE_STAMP)

# Prometheus and promtool from Debian's package (the dashboard and alerting-rule tests use them)
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -E" ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends prometheus; }; }

# Apache Kafka (KRaft) from Maven Central, for the tests and `make kafka-local`
$(KAFKA_STAMP): deploy/kafka/pom.xml
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime
	touch $@

$(STAMP): pyproject.toml constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==24.3.1" "setuptools==80.9.0"
	CHAINSENTRY_NO_EXTENSIONS=1 $(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# The hot modules listed in chainsentry/compiled.py, compiled with Cython next to their sources, and again
# whenever one of them (or the .pxd declaring its C types) changes: an extension module is
# imported before its .py. CHAINSENTRY_NO_EXTENSIONS=1 removes them: everything runs from the .py files.
COMPILED := $(addsuffix .py,$(subst .,/,$(shell sed -n 's/^ *"\([a-z_.]*\)",$$/\1/p' chainsentry/compiled.py)))
ifndef CHAINSENTRY_NO_EXTENSIONS
ifneq ($(words $(wildcard $(COMPILED:.py=.cpython-*.so))),$(words $(COMPILED)))
.PHONY: $(EXT_STAMP)  # a compiled module is missing (deleted, or a clean): build again
endif
endif
$(EXT_STAMP): $(STAMP) setup.py chainsentry/compiled.py $(COMPILED) $(wildcard */*.pxd)
	rm -f $(VENV)/.compiled-stamp*
ifdef CHAINSENTRY_NO_EXTENSIONS
	rm -f $(COMPILED:.py=.c) $(COMPILED:.py=.cpython-*.so)
else
	@# a changed .pxd can change any module that cimports it, which Cython's own check may miss
	$(if $(filter %.pxd,$?),rm -f $(COMPILED:.py=.c))
	$(BIN)/python setup.py --quiet build_ext --inplace --parallel 2
endif
	touch $@

compiled: $(EXT_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: install $(KAFKA_STAMP) prometheus
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/pytest $(PYTEST_ARGS)

demo: install
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/chainsentry demo $(DEMO_ARGS)

docs: install  # the generated references in docs/reference/ (tests/test_reference.py checks them)
	$(BIN)/python -m chainsentry.reference

lint: install
	$(BIN)/ruff check ingest detectors alerts chainsentry tests benchmarks conftest.py setup.py
	$(BIN)/mypy ingest detectors alerts chainsentry

bench: install
	$(BIN)/python benchmarks/bench_cli.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_replay_decode.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_ingest.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_follow_memory.py
	$(BIN)/python benchmarks/bench_detect.py
	$(BIN)/python benchmarks/bench_alerts.py
	$(BIN)/python benchmarks/bench_kafka.py
	CHAINSENTRY_ANVIL=$(CURDIR)/$(ANVIL) $(BIN)/python benchmarks/bench_latency.py
	@if command -v valgrind >/dev/null; then $(BIN)/python benchmarks/bench_instructions.py --parts; \
	 else echo "bench_instructions.py: valgrind is not installed (apt-get install valgrind): skipped"; fi

# recompile the devnet's Solidity contracts (solc from npm) into the committed artifacts
contracts: $(NODE_STAMP)
	$(BIN)/python -m chainsentry.devnet.solc

kafka-local: install $(KAFKA_STAMP)
	$(BIN)/python -m chainsentry.devnet.kafka --port $(or $(KAFKA_PORT),9092) --dir $(or $(KAFKA_DIR),.kafka-data)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache deploy/kafka/libs build
	rm -f $(COMPILED:.py=.c) $(COMPILED:.py=.cpython-*.so)
