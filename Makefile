# llmcourse: two commands for a newcomer — `make lab` opens the course, `make test` checks it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# auto: the CUDA build of torch when nvidia-smi sees a GPU, else the CPU build; cpu|cuda force one.
TORCH ?= auto
TORCH_STAMP := $(VENV)/.torch-installed
LAB_STAMP := $(VENV)/.llmcourse-lab-installed
STAMP := $(VENV)/.llmcourse-installed
PROFILE ?= ci
LAB_PORT ?= 8888
NOTEBOOKS := $(sort $(wildcard chapters/[0-9][0-9]_*.ipynb))
# No .pyc for the whole install (about 0.45 GB): Python writes them for what is imported.
PIP_INSTALL := $(PY) -m pip install -q --no-compile
export PYTHONHASHSEED := 0
# Bytecode is written for what the suite imports (an environment with PYTHONDONTWRITEBYTECODE=1
# otherwise recompiles torch._dynamo & co. in every notebook kernel: about 6 s each, measured).
test notebooks book: export PYTHONDONTWRITEBYTECODE :=

.PHONY: lab test notebooks book lint assets install install-lab clean

# A torch already importable by $(PYTHON) (Colab's, yours) is kept: the environment sees it.
$(PY):
	@if [ "$(TORCH)" = auto ] && $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "torch found in $(PYTHON): $(VENV) uses it (--system-site-packages; TORCH=cpu|cuda installs its own)"; \
	  $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PIP_INSTALL) --upgrade pip

$(TORCH_STAMP): | $(PY)
	LLMCOURSE_TORCH=$(TORCH) $(PY) tools/install_torch.py
	touch $@

# Each installs only when pyproject.toml changed since: a second run does nothing.
# The learner's environment (make lab) has no test tools; make test adds them.
$(LAB_STAMP): pyproject.toml | $(TORCH_STAMP)
	$(PIP_INSTALL) -e ".[offline]"
	touch $@

$(STAMP): pyproject.toml | $(TORCH_STAMP)
	$(PIP_INSTALL) -e ".[dev,offline]"
	touch $@ $(LAB_STAMP)

install-lab: $(LAB_STAMP)
install: $(STAMP)

# JupyterLab on chapters/, bound to 127.0.0.1, token authentication on (JUPYTER_TOKEN sets the
# token; otherwise Jupyter makes one and prints the URL with it). Root (containers, cloud
# notebooks) needs --allow-root.
lab: $(LAB_STAMP)
	@echo "Starting JupyterLab on http://127.0.0.1:$(LAB_PORT)/lab — open the URL with ?token= that Jupyter prints below."
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 \
	  --no-browser --notebook-dir=chapters $$([ "$$(id -u)" = 0 ] && echo --allow-root) \
	  --LabApp.news_url= --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

# Two test processes (pytest-xdist), a notebook's cells kept together in one (--dist loadfile):
# the suite takes about half the time on two cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
test: $(STAMP)
	LLMCOURSE_PROFILE=$(PROFILE) $(VENV)/bin/pytest $(XDIST)

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync chapters/[0-9][0-9]_*.py
	LLMCOURSE_PROFILE=$(PROFILE) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.store_widget_state=False --ExecutePreprocessor.timeout=900 $(NOTEBOOKS)

# The course as a static website (_build/book): the executed chapters with their stored outputs
# (nothing re-run), plotly.js and MathJax bundled (no CDN), the README chapter table as home page.
book: $(STAMP)
	$(PY) tools/build_book.py --out _build/book

# Figures in assets/ are made by the project: the real-browser test's screenshot of the widgets.
assets: $(STAMP)
	LLMCOURSE_UPDATE_ASSETS=1 $(VENV)/bin/pytest -q -p no:nbval -o addopts="" tests/test_browser.py

lint: $(STAMP)
	$(VENV)/bin/ruff check llmcourse tests chapters benchmarks tools conftest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
