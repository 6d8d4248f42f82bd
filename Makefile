# Gradient Lab: `make book` builds the website, `make test` runs every test.
# Both first make sure the environment in .venv exists and matches requirements.txt.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gradlab-installed
CHROMIUM := /usr/bin/chromium
IPYW7  := $(VENV)/ipywidgets7

.PHONY: book test env lab clean

## env: create .venv (Python 3.11) and install the pinned requirements and gradlab itself
env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	@touch $@

# Colab's widget stack (ipywidgets 7), kept apart from .venv's own: tests/test_ipywidgets7.py uses it.
$(IPYW7)/.installed: tests/ipywidgets7.txt $(STAMP)
	$(PY) -m pip install --no-deps --upgrade --target $(IPYW7) -r tests/ipywidgets7.txt
	@touch $@

## book: build the website in full mode (every notebook executed, every figure precomputed)
book: $(STAMP)
	env -u GRADLAB_FAST -u MPLBACKEND $(VENV)/bin/jupyter-book build --all .
	@echo ""
	@echo "The book is built. Open this file in a browser:"
	@echo "    $(CURDIR)/_build/html/index.html"

## test: the whole suite (tests/ and every notebook top to bottom) in fast mode, 2 workers
test: $(STAMP) $(IPYW7)/.installed $(CHROMIUM)
	GRADLAB_FAST=1 $(PY) -m pytest -n 2 --dist loadgroup --nbmake --nbmake-timeout=600 tests notebooks

# The browser tests drive Debian's Chromium (never a downloaded browser).
$(CHROMIUM):
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "The browser tests need Chromium at $(CHROMIUM)."; \
		echo "Install it as root, then run make test again:  sudo apt-get install -y chromium"; \
		exit 1; \
	fi

## lab: open the chapters in JupyterLab (installs jupyterlab into .venv the first time)
lab: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install jupyterlab
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build
