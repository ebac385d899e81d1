# Every target sets up what it needs; CI calls `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests and tools reach the broker that scripts/kafka-local starts on KMG_KAFKA_PORT, unless
# KMG_KAFKA_BOOTSTRAP names an existing broker (then none is started).
KMG_KAFKA_PORT ?= 9092
ifeq ($(origin KMG_KAFKA_BOOTSTRAP),undefined)
KMG_KAFKA_BOOTSTRAP := 127.0.0.1:$(KMG_KAFKA_PORT)
KAFKA_START := env -u KMG_KAFKA_BOOTSTRAP scripts/kafka-local start
else
KAFKA_START := scripts/kafka-local start
endif
export KMG_KAFKA_PORT KMG_KAFKA_BOOTSTRAP

.PHONY: setup test test-unit fuzz lint typecheck check-alerts run bench bench-replay bench-stream kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check alerts streams tests
	$(BIN)/ruff format --check alerts streams tests

typecheck: setup
	$(BIN)/mypy

test-unit: setup
	$(BIN)/pytest -m "not kafka" -q

# The property tests with FUZZ times their examples, drawn afresh each run (CI replays fixed ones).
FUZZ ?= 10
fuzz: setup
	KMG_FUZZ=$(FUZZ) $(BIN)/pytest -m "not kafka" -q

kafka-start:
	$(KAFKA_START)

kafka-stop:
	env -u KMG_KAFKA_BOOTSTRAP scripts/kafka-local stop

# The local broker keeps its data and pid file under .cache: stop it before they go.
clean:
	-env -u KMG_KAFKA_BOOTSTRAP scripts/kafka-local stop
	rm -rf $(VENV) .cache bench-data

test: setup lint typecheck
	$(KAFKA_START)
	scripts/promtool || echo "promtool could not be built: the tests that run it will skip"
	$(BIN)/pytest -q

# Prometheus's own check and unit tests of the alerting rules (promtool built once, with Go).
check-alerts:
	cd config/prometheus && ../../scripts/promtool check rules alerts.yml
	cd config/prometheus && ../../scripts/promtool test rules alerts_test.yml

bench-replay: setup
	$(BIN)/python scripts/bench_replay.py

bench: bench-replay bench-stream

# End to end on a local default: local Kafka, topics, a worker, a simulated feed, alerts.
run: setup
	$(KAFKA_START)
	scripts/demo

bench-stream: setup
	$(KAFKA_START)
	$(BIN)/python scripts/bench_stream.py
