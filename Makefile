# Set-up and the two jobs. Everything lands in .venv; nothing outside the repo except the
# system packages `make system-deps` installs (Chromium for the browser test).
VENV   ?= .venv
PY     := $(VENV)/bin/python
DIR    ?= demo/examples
OUT    ?= labels/examples.jsonl
PYTEST_ARGS ?=

.PHONY: setup label test system-deps lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# The main job: label a folder of images with the bundled default models.
label: $(VENV)/.installed
	$(VENV)/bin/captioner label "$(DIR)" --out "$(OUT)"

# Chromium (browser test of the demo) and Java (METEOR and the COCO reference metrics).
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v java >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq chromium default-jre-headless >/dev/null; fi

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check captioner pipelines demo tests bench
	$(VENV)/bin/ruff format --check captioner pipelines demo tests bench

clean:
	rm -rf $(VENV) labels build *.egg-info .pytest_cache .ruff_cache
