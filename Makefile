# The two commands a new user needs: `make demo` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean lfh-venv lock

# Dependencies come from the hashed lock file (exact versions, verified downloads); the project itself
# is installed on top without resolving anything again. `make lock` regenerates the lock (README).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --extra dev --output-file requirements.lock pyproject.toml

demo: $(STAMP)
	$(BIN)/x12gw demo

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) lfh-venv
	$(BIN)/pytest -q

# LinuxForHealth x12 in its own venv (it needs pydantic<2) for tests/test_differential_lfh.py;
# the test creates it too when it is missing.
lfh-venv: .cache/lfh-venv/bin/python
.cache/lfh-venv/bin/python:
	-$(PYTHON) -m venv .cache/lfh-venv
	-.cache/lfh-venv/bin/python -m pip install --quiet linuxforhealth-x12 'pydantic<2'

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
