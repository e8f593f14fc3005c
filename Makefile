# The two Quick-start commands (README.md) are `make serve` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HTMX_VERSION := 2.0.11
HTMX_SSE_VERSION := 2.2.4
VENDOR := app/static/vendor
VENDOR_FILES := $(VENDOR)/htmx-$(HTMX_VERSION).min.js $(VENDOR)/htmx-ext-sse-$(HTMX_SSE_VERSION).min.js

.PHONY: serve test install install-dev install-gpu static chromium lint fast bench

serve: install static
	$(BIN)/arena serve

test: install-dev static chromium lint
	$(BIN)/python -m pytest -q

fast: install-dev static
	$(BIN)/python -m pytest -q -m "not integration"

lint: install-dev
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy app

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: pip reuses its cached llama-cpp-python wheel; nothing forces a rebuild.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

install-dev: $(VENV)/.installed-dev
$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev,hf]'
	touch $(VENV)/.installed $@

# htmx and its SSE extension from the npm registry, pinned, version in the file name, git-ignored.
static: $(VENDOR_FILES)
$(VENDOR)/htmx-$(HTMX_VERSION).min.js:
	mkdir -p $(VENDOR) && tmp=$$(mktemp -d) && \
	npm pack --silent --pack-destination $$tmp htmx.org@$(HTMX_VERSION) >/dev/null && \
	tar -xzf $$tmp/htmx.org-$(HTMX_VERSION).tgz -C $$tmp package/dist/htmx.min.js && \
	cp $$tmp/package/dist/htmx.min.js $@ && rm -rf $$tmp
$(VENDOR)/htmx-ext-sse-$(HTMX_SSE_VERSION).min.js:
	mkdir -p $(VENDOR) && tmp=$$(mktemp -d) && \
	npm pack --silent --pack-destination $$tmp htmx-ext-sse@$(HTMX_SSE_VERSION) >/dev/null && \
	tar -xzf $$tmp/htmx-ext-sse-$(HTMX_SSE_VERSION).tgz -C $$tmp package/dist/sse.min.js && \
	cp $$tmp/package/dist/sse.min.js $@ && rm -rf $$tmp

# Debian's Chromium for the browser tests (root, as in CI).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

bench: install-dev
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/serving.py

# The CUDA image's install: the gpu extra (vLLM) on top of the CPU install.
install-gpu: $(VENV)/.installed-gpu
$(VENV)/.installed-gpu: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[gpu,hf]'
	touch $(VENV)/.installed $@
