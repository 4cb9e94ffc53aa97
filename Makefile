# Two commands matter: `make demo` and `make test`. Everything installs into .venv with the exact
# versions in constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

profiles.yml:
	cp profiles.yml.example profiles.yml

demo: $(STAMP) profiles.yml
	$(BIN)/activity-export demo

test: $(STAMP) profiles.yml
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) profiles.yml
	$(BIN)/sqlfluff lint models macros

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

# Minutes, not seconds: 10 million rows through PostgreSQL and sshd. Not part of `make test`.
bench: $(BENCH_STAMP) profiles.yml
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf target logs exports warehouse.duckdb warehouse.duckdb.wal
