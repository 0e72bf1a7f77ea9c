# Two entry points: `make demo` and `make test`. Both set up a fresh machine on their own.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test benchmark

$(BIN)/digital-mask: pyproject.toml
	@bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[audit,test]'
	@touch $@

setup: $(BIN)/digital-mask

demo: setup
	$(BIN)/digital-mask demo --out-dir digital-mask-demo

test: setup
	$(BIN)/pytest

benchmark: setup
	$(BIN)/python benchmarks/accuracy.py
