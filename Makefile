# Two set-up commands that work on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 first: that pin resolves to the CPU build this machine family keeps on disk, and the
# project's own range admits it, so nothing pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/synthloop run

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/student_family.py
	$(BIN)/python bench/targeting.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
