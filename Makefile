PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/pos_ewt
KERASRNN_DATA_DIR ?= ../shared/data
export KERASRNN_DATA_DIR
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test lint clean

NODE_CLIENT := clients/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The Node client of the conformance tests (onnxruntime-node from npm, pinned in package-lock.json; its install
# script, which fetches optional GPU binaries, is not run). Skipped with a note where there is no npm.
$(NODE_STAMP): $(NODE_CLIENT)/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd $(NODE_CLIENT) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the Node client tests will be skipped"; fi

demo: setup
	$(PY) -m training.train --config training/configs/pos_ewt.toml --output-dir $(DEMO_DIR)
	$(PY) -m training.evaluate --run-dir $(DEMO_DIR) --file $(KERASRNN_DATA_DIR)/ud_english_ewt/en_ewt-ud-test.conllu
	$(PY) -m deploy.export --run-dir $(DEMO_DIR)
	$(PY) -m deploy.predict --model $(DEMO_DIR)/export/model_int8.tflite --text "I can't believe the bank closed!"

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check kerasrnn benchmarks training deploy tests

clean:
	rm -rf runs .pytest_cache
