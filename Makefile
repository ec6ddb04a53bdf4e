# Two commands do all set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Two stamps: the demo needs medleak alone; the tests need the dev tools, Flower and Ray too.
CORE := $(VENV)/.medleak-core
STAMP := $(VENV)/.medleak-installed
# Extra pip options, e.g. a CPU wheel index for torch on a machine whose default is the CUDA
# build: make test PIP_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_INDEX ?=
PIP := $(PY) -m pip install --quiet $(PIP_INDEX) -c constraints.txt

.PHONY: demo test lint bench clean chromium screenshot readme-numbers

$(CORE): pyproject.toml constraints.txt
	@echo "make: installing into $(VENV): PyTorch (CPU build, pinned in constraints.txt) and medleak"
	$(PYTHON) -m venv $(VENV)
	# torch first, at the exact version in constraints.txt, so no other dependency pulls another.
	$(PIP) torch
	$(PIP) -e .
	touch $(CORE)

$(STAMP): $(CORE)
	@echo "make: installing the test tools into $(VENV): pytest, ruff, hypothesis, scikit-image,"
	@echo "      playwright, pypdf (the dev extra), Flower with its simulation (Ray) and Ray"
	$(PIP) -e '.[dev,flower,ray]'
	touch $(STAMP)

demo: $(CORE)
	$(VENV)/bin/medleak demo

# Headless Chromium for the report's browser tests and `medleak report --pdf` (Debian's package).
chromium:
	@echo "make: the browser and PDF tests need headless Chromium: Debian's package, installed with apt-get when missing"
	bash .ci/install-chromium

test: $(STAMP) chromium
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m pytest

# The README's screenshot, from the phantom demo only (synthetic images, never real X-rays).
screenshot: $(STAMP) chromium
	$(PY) docs/report_screenshot.py

# Runs the README's example commands and writes their numbers into README.md (docs/readme_numbers.py).
readme-numbers: $(STAMP)
	$(PY) docs/readme_numbers.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

# Removes the environment and caches only: runs/ holds users' results and is never deleted.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
