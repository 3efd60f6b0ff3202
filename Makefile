# Two set-up commands that work on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 first: that pin resolves to the CPU build this machine family keeps on disk, and the
# project's own range admits it, so nothing pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test lint bench clean sandbox-tools browser-tools

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

# Code verification runs in bubblewrap; the review page is tested in Debian's chromium with chromium-driver.
# As root (CI), install what is missing; elsewhere, or when apt cannot, the tests that need them say so and
# skip, and the rest run.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
define apt_tool
	@command -v $(1) >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		$(APT_INSTALL) $(2) >/dev/null 2>&1 || \
		(apt-get update -qq >/dev/null 2>&1 && $(APT_INSTALL) $(2) >/dev/null 2>&1) || \
		echo "note: could not install $(2); the tests that need it will skip"
endef

sandbox-tools:
	$(call apt_tool,bwrap,bubblewrap)

browser-tools:
	$(call apt_tool,chromedriver,chromium chromium-driver)

test: $(VENV)/.installed-dev sandbox-tools browser-tools
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/student_family.py
	$(BIN)/python bench/targeting.py
	$(BIN)/python bench/review.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/ray_scale.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
