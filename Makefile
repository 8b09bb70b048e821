# Two commands from a fresh clone: `make demo` and `make test`; each creates .venv and installs
# what it needs (re-installing only when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Debian libraries that open3d (the points extra) loads; installed when missing and apt-get is usable.
DEBIAN_PACKAGES := libgl1 libegl1 libx11-6 libusb-1.0-0 libgomp1

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
		|| echo "warning: could not install $$missing (open3d needs them: install them, or skip the points extra)"; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[all,dev]'
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
	$(PY) benchmarks/video_step.py
	$(PY) benchmarks/video_decode.py
	$(PY) benchmarks/audio_frontend.py
	$(PY) benchmarks/points_grouping.py
	$(PY) benchmarks/graph_epoch.py
	$(PY) benchmarks/multichannel_step.py
	$(PY) benchmarks/end_to_end.py
	$(PY) benchmarks/shards.py
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(PY) benchmarks/image_step.py --precision all --compile inductor --no-memory; \
		$(PY) benchmarks/video_step.py --precision all --compile inductor; \
	fi

clean:
	rm -rf $(VENV) runs/demo
