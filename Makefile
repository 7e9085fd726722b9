PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/pos_ewt
KERASRNN_DATA_DIR ?= ../shared/data
export KERASRNN_DATA_DIR
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

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
