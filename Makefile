# The two Quick-start commands (README.md) are `make serve` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HTMX_VERSION := 2.0.11
HTMX_SSE_VERSION := 2.2.4
VENDOR := app/static/vendor
VENDOR_FILES := $(VENDOR)/htmx-$(HTMX_VERSION).min.js $(VENDOR)/htmx-ext-sse-$(HTMX_SSE_VERSION).min.js

# llama.cpp is compiled with explicit CPU flags, never GGML_NATIVE: the build host is not the run host,
# and VMs that advertise AMX but trap it die with "Illegal instruction" on a native build.
# Portable baseline on x86-64: x86-64-v3 (AVX2, FMA, F16C, BMI2), no AVX-512, no AMX.
# On your own bare-metal machine, `make serve LLAMA_BUILD=native` opts into -march=native.
LLAMA_VERSION := 0.3.36
LLAMA_BUILD ?= portable
ifeq ($(LLAMA_BUILD),native)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON
else ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
# pip's wheel cache is keyed on the sdist, not on CMAKE_ARGS: our wheel lives in a folder keyed on both.
LLAMA_KEY := $(shell printf '%s' '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)
WHEELS ?= $(HOME)/.cache/arena/wheels
LLAMA_WHEELHOUSE := $(WHEELS)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_KEY)

# Packages installed without their dependencies: pyproject.toml's [tool.arena] no-deps (SmolLM2's GGUF).
NO_DEPS := $(shell sed -n 's/^no-deps = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')

.PHONY: serve test install install-dev install-train install-gpu static chromium lint fast bench llama-wheel trainer-tools demo-model

serve: install static demo-model
	@$(BIN)/arena serve; rc=$$?; if [ $$rc -gt 128 ]; then \
	  echo "arena: the server was killed by signal $$((rc - 128)) ($$(kill -l $$((rc - 128)))). An ILL means the llama.cpp build does not run on this CPU: run $(BIN)/arena doctor" >&2; fi; exit $$rc

test: install-dev static chromium trainer-tools demo-model lint
	$(BIN)/python -m pytest -q

fast: install-dev static trainer-tools
	$(BIN)/python -m pytest -q -m "not integration"

lint: install-dev
	$(BIN)/ruff check app tests bench trainer
	$(BIN)/ruff format --check app tests bench trainer
	$(BIN)/mypy app trainer

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: pip reuses its cached llama-cpp-python wheel; nothing forces a rebuild.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml $(VENV)/.llama-$(LLAMA_KEY)
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(NO_DEPS)
	touch $@

install-dev: $(VENV)/.installed-dev
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.llama-$(LLAMA_KEY)
	$(BIN)/pip install -q -e '.[dev,hf,train]'
	$(BIN)/pip install -q --no-deps $(NO_DEPS)
	touch $(VENV)/.installed $(VENV)/.installed-train $@

# What `arena train` needs (torch is pinned in pyproject.toml, so pip takes that build, not the newest).
install-train: $(VENV)/.installed-train
$(VENV)/.installed-train: pyproject.toml $(VENV)/.llama-$(LLAMA_KEY)
	$(BIN)/pip install -q -e '.[train]'
	touch $(VENV)/.installed $@

# Build the wheel once per (version, flags) into its own folder, without pip's cache (which would hand
# back a wheel built with other flags); install it before the project so pip never builds its own.
llama-wheel: $(LLAMA_WHEELHOUSE)/CMAKE_ARGS
$(LLAMA_WHEELHOUSE)/CMAKE_ARGS: | $(VENV)/bin/python
	rm -rf $(LLAMA_WHEELHOUSE).tmp && mkdir -p $(LLAMA_WHEELHOUSE).tmp
	start=$$(date +%s) && \
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel -q --no-cache-dir --no-deps \
		--no-binary llama-cpp-python -w $(LLAMA_WHEELHOUSE).tmp llama-cpp-python==$(LLAMA_VERSION) && \
	echo "$$(( $$(date +%s) - start )) s on $$(nproc) cores" > $(LLAMA_WHEELHOUSE).tmp/BUILD_TIME
	echo "$(LLAMA_CMAKE_ARGS)" > $(LLAMA_WHEELHOUSE).tmp/CMAKE_ARGS
	rm -rf $(LLAMA_WHEELHOUSE) && mv $(LLAMA_WHEELHOUSE).tmp $(LLAMA_WHEELHOUSE)

$(VENV)/.llama-$(LLAMA_KEY): $(LLAMA_WHEELHOUSE)/CMAKE_ARGS
	$(BIN)/pip install -q --no-deps --force-reinstall $(LLAMA_WHEELHOUSE)/llama_cpp_python-*.whl
	cp $(LLAMA_WHEELHOUSE)/CMAKE_ARGS $(VENV)/llama-cmake-args
	rm -f $(VENV)/.llama-* && touch $@

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

# `make print-LLAMA_CMAKE_ARGS`: a variable's value, for the tests and the Dockerfile check.
print-%:
	@echo '$($*)'

# Debian's Chromium for the browser tests (root, as in CI).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

bench: install-dev
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/serving.py

# The CUDA image's install: the gpu extra (vLLM) on top of the CPU install.
install-gpu: $(VENV)/.installed-gpu
$(VENV)/.installed-gpu: pyproject.toml $(VENV)/.llama-$(LLAMA_KEY)
	$(BIN)/pip install -q -e '.[gpu,hf]'
	$(BIN)/pip install -q --no-deps $(NO_DEPS)
	touch $(VENV)/.installed $@

# llama.cpp's converter (convert_hf_to_gguf.py, convert_lora_to_gguf.py, gguf-py), taken from the pinned
# llama-cpp-python sdist that pip downloads, extracted under ~/.cache/arena (never committed).
trainer-tools: install-dev
	$(BIN)/python -m trainer converter

# The chat-tuned bundled Gemma (gemma-3-270m-chat in the default models file): LoRA on the seed set,
# an adapter GGUF over the bundled file. `make serve` and `make test` build it once: it is cached in
# ~/.cache/arena/demo-model (or $ARENA_DEMO_MODEL) under a key of the seed data, the base weights and
# the trainer's version, so later runs only check the key (no torch import, under a second) and a
# change to any of them trains again. ARENA_SKIP_DEMO=1 skips the step.
demo-model: install
ifeq ($(ARENA_SKIP_DEMO),1)
	@echo "arena: ARENA_SKIP_DEMO=1: the demo chat model is not built"
else
	@$(BIN)/python -m trainer demo --check || { $(MAKE) --no-print-directory install-train && $(BIN)/arena train demo; } || \
	  { echo "arena: building the demo chat model failed; ARENA_SKIP_DEMO=1 make serve serves without it" >&2; exit 1; }
endif
