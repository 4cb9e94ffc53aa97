# Two commands matter: `make demo` and `make test`. Everything installs into .venv with the exact
# versions in constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-airflow lint lint-python bench timezones clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

profiles.yml:
	cp profiles.yml.example profiles.yml

demo: $(STAMP) profiles.yml
	$(BIN)/activity-export demo

# Two workers, a test file each at a time (so a module's fixtures are built once): the suite waits
# on dbt, PostgreSQL and sshd in child processes as much as it computes. PYTEST_WORKERS=0 runs it
# in one process.
PYTEST_WORKERS ?= 2

test: lint-python
	$(BIN)/python -m pytest -m "not airflow" -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Airflow gets a virtualenv of its own: its pins and dbt's cannot share one. About two minutes to
# create once; the test then runs the example DAG with `airflow dags test` (a few minutes).
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-stamp
AIRFLOW_REQS  := orchestration/airflow/requirements.txt orchestration/airflow/constraints.txt

$(AIRFLOW_STAMP): $(AIRFLOW_REQS)
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -c orchestration/airflow/constraints.txt \
		-r orchestration/airflow/requirements.txt
	touch $@

test-airflow: $(STAMP) $(AIRFLOW_STAMP)
	$(BIN)/python -m pytest -m airflow tests/airflow/test_airflow_dag.py $(PYTEST_ARGS)

# ruff (lint and format) and mypy --strict on the package; `make test` runs these first, and
# sqlfluff inside the suite (tests/warehouse/test_models.py).
lint-python: $(STAMP)
	$(BIN)/ruff check loader tests bench orchestration
	$(BIN)/ruff format --check loader tests bench orchestration
	$(BIN)/mypy

lint: lint-python profiles.yml
	$(BIN)/sqlfluff lint models macros tests/dbt

# The timezone names DuckDB's ICU knows, shipped so that reading tenants.yml need not open DuckDB.
# Run after upgrading DuckDB in constraints.txt; tests/unit/test_config_timezones.py fails until then.
TIMEZONES := loader/activity_export/data/duckdb_timezones.txt

timezones: $(STAMP)
	$(BIN)/python -m activity_export.duckdb_timezones > $(TIMEZONES).tmp
	mv $(TIMEZONES).tmp $(TIMEZONES)

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

# Minutes, not seconds: 10 million rows through PostgreSQL and sshd. Not part of `make test`.
bench: $(BENCH_STAMP) profiles.yml
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf target logs exports warehouse.duckdb warehouse.duckdb.wal
