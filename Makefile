# Two entry points: `make demo` and `make test`. Both create .venv if missing and install into it.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.irsam2-installed
# test workers (pytest-xdist); each runs torch on one thread (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q --no-cache-dir -c constraints.txt -e '.[dev,onnx,video]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/irsam2 demo --out runs/demo --overwrite

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

test: lint
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS)

clean:
	rm -rf runs build *.egg-info src/*.egg-info .pytest_cache
