# `make test` and `make demo` each build .venv themselves on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make demo` installs the runtime only (MindSpore, numpy<2, Pillow, ...: `pip install -e .`, no PyTorch);
# `make test` adds the test oracles (PyTorch, open_clip, HF transformers, onnxruntime, cn_clip: `.[test]`).
# Each has its own stamp, so `make demo` on a fresh machine never pulls the oracles in.
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test test test-all demo bench clean

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install -q -e ".[test]"
	# Chinese-CLIP's reference (test oracle); --no-deps because its lmdb==1.3.0 pin does not build (deps in [test]).
	$(BIN)/pip install -q --no-deps cn-clip==1.6.0
	touch $@

install: $(RUNTIME_STAMP)

install-test: $(TEST_STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -m "not slow" -q tests

test-all: $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(RUNTIME_STAMP)
	bash scripts/examples/demo.sh

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_clip.py

clean:
	rm -rf $(VENV)
