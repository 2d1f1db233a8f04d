# Set-up and the two jobs. Everything lands in .venv; nothing outside the repo except the
# system packages `make system-deps` installs as root (Chromium for the browser test, Java for
# METEOR); without root it names them and the tests that need them skip.
VENV   ?= .venv
PY     := $(VENV)/bin/python
DIR    ?= demo/examples
OUT    ?= labels/examples.jsonl
PYTEST_ARGS ?=
SYSTEM_PACKAGES := chromium default-jre-headless
# caches of `make label` (the ONNX export of the encoder, onnxruntime's files): inside .venv
CACHE  ?= $(CURDIR)/$(VENV)/cache

.PHONY: setup label test test-all system-deps lint clean screenshot

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# setuptools' editable finder always adds an information-only banner; nothing to act on
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# The main job: label a folder of images with the bundled default models.
label: $(VENV)/.installed
	CAPTIONER_CACHE="$(CACHE)" XDG_CACHE_HOME="$(CACHE)/xdg" \
		$(VENV)/bin/captioner label "$(DIR)" --out "$(OUT)"
	@echo
	@echo "captioner is installed in $(abspath $(VENV)); to use it from a new shell:"
	@echo "  source $(abspath $(VENV))/bin/activate   # then: captioner --help"
	@echo "  $(abspath $(VENV))/bin/captioner --help  # or by its path, without activating"

# Chromium (browser test of the demo) and Java (METEOR and the COCO reference metrics).
system-deps:
	@if command -v chromium >/dev/null && command -v java >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else \
		echo "make: not root (or no apt-get): the browser and Java tests will skip."; \
		echo "      To run them, install: sudo apt-get install $(SYSTEM_PACKAGES)"; \
	fi

# `make test`: the fast tier (tests not marked slow); `make test-all`: the whole suite, as CI runs
# it (.ci/run). A test over 5 s (setup + call) is marked @pytest.mark.slow (docs/development.md).
test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.installed system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

# docs/demo.png: the demo in headless Chromium with the bundled models and example photo.
screenshot: $(VENV)/.installed system-deps
	$(PY) -m captioner.demo.screenshot --out docs/demo.png

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check captioner pipelines demo tests bench
	$(VENV)/bin/ruff format --check captioner pipelines demo tests bench

clean:
	rm -rf $(VENV) labels build *.egg-info .pytest_cache .ruff_cache
