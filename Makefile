# Two commands do all set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medleak-installed

.PHONY: demo test lint bench clean chromium screenshot

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU build 2.13.0, so no other dependency pulls a different one.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,flower,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medleak demo

# Headless Chromium for the report's browser tests and `medleak report --pdf` (Debian's package).
chromium:
	bash .ci/install-chromium

test: $(STAMP) chromium
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest

# The README's screenshot, from the phantom demo only (synthetic images, never real X-rays).
screenshot: $(STAMP) chromium
	$(PY) docs/report_screenshot.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
