# Two commands do everything (README): `make run` and `make test` (lint, format check, tests).
# Both create .venv on first use and reuse it afterwards (re-installing only when
# requirements.txt changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test setup system-deps demo clean-venv

run: setup
	$(PY) main.py app

test: setup system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed"' 
	@$(PYTHON) -c 'import tkinter' 2>/dev/null || { echo "This Python has no tkinter: install it (Debian/Ubuntu: apt-get install python3-tk)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $(STAMP)

# The GUI tests need a virtual X server and xdotool; the session report's test opens the report
# in headless Chromium (Debian packages).
system-deps:
	@if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null || ! command -v chromium >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq xvfb xdotool chromium >/dev/null; \
	fi

demo: setup
	$(PY) main.py demo-data --out demo-data

clean-venv:
	rm -rf $(VENV)
