# Two commands do everything: `make demo` and `make test`. Both create .venv on first use,
# installing every dependency pinned by constraints.txt (torch==2.13.0, the CPU wheel here).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false
export GX_ANALYTICS_ENABLED = False
export GIT_PYTHON_REFRESH = quiet

.PHONY: install demo test test-fast bench bench-drift bench-gate bench-finetune airflow-ui mlflow-ui lint docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[test,production]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv with the pinned dependencies

demo: $(STAMP)  ## replay a simulated year through Airflow + MLflow (DEMO_SIZE=small for ~3 min)
	$(BIN)/python -m pipeline.demo

test: $(STAMP)  ## the whole test suite (what .ci/run calls)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## everything but the end-to-end Airflow runs
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)  ## benchmarks/cycle.py: one retrain cycle vs an empty DAG of the same shape
	$(BIN)/python benchmarks/cycle.py

bench-drift: $(STAMP)  ## benchmarks/drift.py (~6 min) and drift_replay.py (real data through the real loop, ~1 h)
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/drift_replay.py

bench-gate: $(STAMP)  ## benchmarks/gate.py: false promotions, power, windows to a decision (simulation)
	$(BIN)/python benchmarks/gate.py

bench-finetune: $(STAMP)  ## benchmarks/finetune.py: the training loop against Trainer, naive and tuned (~40 min)
	$(BIN)/python benchmarks/finetune.py

airflow-ui: $(STAMP)  ## the Airflow UI on the demo's metadata DB: http://127.0.0.1:8080
	$(BIN)/python -m pipeline.demo --serve airflow

mlflow-ui: $(STAMP)  ## the MLflow UI on the demo's store: http://127.0.0.1:5000
	$(BIN)/python -m pipeline.demo --serve mlflow

lint: $(STAMP)  ## ruff (lint + format check) and mypy on pipeline/ and dags/ (what .ci/run adds)
	$(BIN)/ruff check pipeline dags tests benchmarks
	$(BIN)/ruff format --check pipeline dags tests benchmarks
	$(BIN)/mypy

docs: $(STAMP)  ## regenerate the README's config table from the typed config
	$(BIN)/python -m pipeline.config_doc --write README.md

clean:  ## remove everything the demo and tests created (keeps .venv)
	rm -rf .retrain .pytest_cache
