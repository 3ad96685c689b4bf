# Two commands set up everything on a fresh machine with only Python 3.11+ and pip:
#   make repro   run the whole pipeline (`dvc repro`) on the embedded sample
#   make test    run the test suite
# Both install uv (with pip, into .tools/) when it is not on PATH, then create .venv from uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: repro test sync

repro: sync
	$(UV) run --locked dvc repro

test: sync
	$(UV) run --locked pytest

sync: $(UV)
	$(UV) sync --locked --compile-bytecode

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet uv
