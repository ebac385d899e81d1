# Every target sets up what it needs; CI calls `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-unit lint typecheck run bench bench-replay bench-stream kafka-start kafka-stop clean

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

kafka-start:
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

clean:
	rm -rf $(VENV) .cache bench-data

test: setup lint
	scripts/kafka-local start
	$(BIN)/pytest -q

bench-replay: setup
	$(BIN)/python scripts/bench_replay.py

bench: bench-replay

# End to end on a local default; replaced by the live-stream demo once the worker lands.
run: setup
	$(BIN)/python -m streams.synthetic_feed --patients 200 --days 7 --seed 7 --out .cache/demo-feed.ndjson
	$(BIN)/kmg replay .cache/demo-feed.ndjson --out .cache/demo-alerts.ndjson --dead-letter .cache/demo-dead-letters.ndjson
	@echo "first alerts (.cache/demo-alerts.ndjson):"
	@head -n 5 .cache/demo-alerts.ndjson
