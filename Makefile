# Gradient Lab: `make book` builds the website, `make test` runs every test.
# Both first make sure the environment in .venv exists and matches requirements.txt.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gradlab-installed
NODE_STAMP := node_modules/.gradlab-installed
CHROMIUM := /usr/bin/chromium
COLAB  := .venv-colab
COLAB_STAMP := $(COLAB)/.gradlab-installed

.PHONY: book preview test env colab-env lab clean

## env: create .venv (Python 3.11) and install the pinned requirements and gradlab itself,
## and the pinned npm packages (KaTeX for the book's math, axe-core for its tests) into node_modules
env: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	@touch $@

## colab-env: Colab's versions (tests/colab.txt) in their own .venv-colab, for tests/test_colab.py;
## rebuilt from scratch when tests/colab.txt changes, then gradlab installed with --no-deps as Colab does
colab-env: $(COLAB_STAMP)

$(COLAB)/.requirements-installed: tests/colab.txt
	rm -rf $(COLAB)
	$(PYTHON) -m venv $(COLAB)
	$(COLAB)/bin/python -m pip install -r tests/colab.txt
	@touch $@

$(COLAB_STAMP): $(COLAB)/.requirements-installed pyproject.toml
	$(COLAB)/bin/python -m pip install --no-deps --no-build-isolation -e .
	@touch $@

# The book renders its math with KaTeX when it is built, under Node.js (20 or newer).
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "The book needs Node.js 20 or newer and npm (KaTeX renders its math when it is built)."; \
		echo "Install them (Debian: sudo apt-get install -y nodejs npm), then run make again."; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

## book: build the website from clean in full mode (every notebook executed, every figure precomputed)
book: $(STAMP) $(NODE_STAMP)
	rm -rf _build
	env -u GRADLAB_FAST -u MPLBACKEND $(VENV)/bin/jupyter-book build .
	@touch _build/.gradlab-sources  # the cache now matches the package: `make preview` may reuse it
	@echo ""
	@echo "The book is built. Open this file in a browser:"
	@echo "    $(CURDIR)/_build/html/index.html"

## preview: rebuild after an edit: re-executes only the chapters whose code changed (jupyter-cache),
## and every chapter when the gradlab package changed (the cache cannot see that)
preview: $(STAMP) $(NODE_STAMP) _build/.gradlab-sources
	env -u GRADLAB_FAST -u MPLBACKEND $(VENV)/bin/jupyter-book build .
	@echo "    $(CURDIR)/_build/html/index.html"

_build/.gradlab-sources: $(shell find gradlab -name '*.py' -o -name '*.js') book/_ext/gradlab_book.py
	rm -rf _build/.jupyter_cache
	@mkdir -p _build && touch $@

## test: the whole suite in fast mode, 2 workers (tests/, which runs every notebook top to bottom: in the
## website's build, under Colab's versions and in JupyterLab)
test: $(STAMP) $(NODE_STAMP) $(COLAB_STAMP) $(CHROMIUM)
	GRADLAB_FAST=1 $(PY) -m pytest -n 2 --dist loadgroup --durations=30 tests

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

## lab: open the chapters in JupyterLab (pinned in requirements.txt)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build
