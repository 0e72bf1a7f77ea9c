# Two entry points: `make demo` and `make test`. Both set up a fresh machine on their own.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test benchmark speed

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

# Speed benchmark (issue 6): deface lives in its own venv (it needs opencv-python, which clashes
# with mediapipe's opencv-contrib-python).
.venv-deface/bin/deface:
	$(PYTHON) -m venv .venv-deface
	.venv-deface/bin/pip install --quiet deface==1.5.0

speed: setup .venv-deface/bin/deface
	$(BIN)/digital-mask evaluate speed ../shared/data/videos/d14.mp4 --json benchmarks/results/0.1.0/speed.json
