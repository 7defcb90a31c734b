# llmcourse: two commands for a newcomer — `make lab` opens the course, `make test` checks it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmcourse-installed
PROFILE ?= ci
NOTEBOOKS := $(sort $(wildcard chapters/[0-9][0-9]_*.ipynb))
export PYTHONHASHSEED := 0

.PHONY: lab test notebooks lint assets install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Installs only when pyproject.toml changed since the last install: a second run does nothing.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev,offline]"
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser --notebook-dir=chapters

test: $(STAMP)
	LLMCOURSE_PROFILE=$(PROFILE) $(VENV)/bin/pytest

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync chapters/[0-9][0-9]_*.py
	LLMCOURSE_PROFILE=$(PROFILE) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.store_widget_state=False --ExecutePreprocessor.timeout=900 $(NOTEBOOKS)

# Figures in assets/ are made by the project: the real-browser test's screenshot of the widgets.
assets: $(STAMP)
	LLMCOURSE_UPDATE_ASSETS=1 $(VENV)/bin/pytest -q -p no:nbval -o addopts="" tests/test_browser.py

lint: $(STAMP)
	$(VENV)/bin/ruff check llmcourse tests chapters benchmarks conftest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
