# Two commands set up everything on a fresh machine with only Python 3.11+ and pip (a third builds the docs):
#   make repro   run the whole pipeline (`dvc repro`) on the embedded sample
#   make test    run the test suite
#   make docs    build the documentation site (docs/) into site/, failing on any warning
# Each installs uv (with pip, into .tools/) when it is not on PATH, then creates .venv from uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: repro test sync docs

repro: sync
	$(UV) run --locked pipeline warm dvc repro

test: sync
	$(UV) run --locked pytest

# Python writes each module's bytecode (.venv's and ours) the first time it is imported, rather than all 17,500
# files of the environment up front (`uv sync --compile-bytecode`: about 30 s). A shell that sets
# PYTHONDONTWRITEBYTECODE would make every stage process compile torch again, so make lifts it for its commands.
unexport PYTHONDONTWRITEBYTECODE

sync: $(UV)
	$(UV) sync --locked

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet uv

# The documentation site (docs/, mkdocs.yml) built into site/; any warning is an error.
docs: sync
	NO_MKDOCS_2_WARNING=1 $(UV) run --locked mkdocs build --strict
