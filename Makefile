# Two commands from a fresh clone: `make demo` and `make test`; each creates .venv and installs
# what it needs (re-installing only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.stamp-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m anymae demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/image_step.py
	$(PY) benchmarks/data_loading.py

clean:
	rm -rf $(VENV) runs/demo
