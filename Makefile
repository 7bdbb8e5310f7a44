# `make test` and `make demo` each build .venv themselves on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,convert]"
	# Chinese-CLIP's reference (test oracle); --no-deps because its lmdb==1.3.0 pin does not build (deps in [test]).
	$(BIN)/pip install -q --no-deps cn-clip==1.6.0
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q tests

test-all: $(STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	bash scripts/examples/demo.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_clip.py

clean:
	rm -rf $(VENV)
