# Developer entry points. Every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench bench-full clean install

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/media-pub serve --demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check media_pub tests scripts benchmarks
	$(BIN)/ruff format --check media_pub tests scripts benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/processing.py --audio-minutes 30 --video-minutes 10 --keep data/bench

bench-full: $(STAMP)
	$(BIN)/python benchmarks/processing.py --keep data/bench

clean:
	rm -rf $(VENV) data .pytest_cache
