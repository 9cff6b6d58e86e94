# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export CLV_HOME ?= $(CURDIR)/data

.PHONY: setup demo test lint dev bench clean

$(BIN)/clv: pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(PYTHON) -m uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	# --compile-bytecode: every `clv` process would otherwise compile dagster + GX from source
	# (~7 s per process where PYTHONDONTWRITEBYTECODE is set, as on CI)
	$(PYTHON) -m uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python -e ".[dev]"
	$(BIN)/python -m compileall -q clv_pipeline
	touch $(BIN)/clv

setup: $(BIN)/clv  ## create .venv with the package and dev tools

# the Spark reader test (tests/e2e/test_readers.py) needs pyspark and the Celery executor test
# (tests/integration/test_celery.py) dagster-celery + redis; only `make test` installs them
$(VENV)/.spark: $(BIN)/clv
	$(PYTHON) -m uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python -e ".[dev,spark,celery]"
	touch $(VENV)/.spark

demo: setup  ## synthetic 20k-customer history -> import -> run yesterday -> summary
	$(BIN)/clv demo

test: setup $(VENV)/.spark  ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check . && $(BIN)/mypy clv_pipeline

dev: setup  ## Dagster UI + daemon (dg dev, http://127.0.0.1:3000) on the data home's instance
	VIRTUAL_ENV=$(CURDIR)/$(VENV) DAGSTER_HOME="$$($(BIN)/clv instance)" $(BIN)/dg dev

clean:
	rm -rf $(VENV)
