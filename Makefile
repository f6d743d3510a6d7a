# carbon-pipeline — everyday commands. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/carbon_pipeline
PORT ?= 8000

.PHONY: help install run test test-slow test-all test-pg lint format migrate clean bench

help:
	@echo "make run       set up (venv, dependencies, database) and run the app on SQLite at http://127.0.0.1:8000/admin/"
	@echo "make test      the test suite but its slow suites (SQLite, or the database in DATABASE_URL)"
	@echo "make test-slow the slow suites: crash, concurrency, database faults, browser, fuzzing, real services"
	@echo "make test-all  both (what CI runs, on SQLite and on PostgreSQL)"
	@echo "make test-pg   make test-all on PostgreSQL ($(PG_URL))"
	@echo "make lint      ruff (lint + format check), mypy, migrations check"
	@echo "make format    ruff format + autofix"
	@echo "make bench     benchmarks of SPEC §9 on PostgreSQL (own database; BENCH_ARGS=--quick for the 2-minute run)"

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py serve --port $(PORT) --seed-demo

test: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-pg: install
	DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Creates and drops its own database on BENCH_SERVER_URL; prints the table, writes bench/results/latest.json.
BENCH_SERVER_URL ?= postgres://postgres@127.0.0.1:5432
bench: install
	BENCH_SERVER_URL=$(BENCH_SERVER_URL) $(PY) -m bench $(BENCH_ARGS)

migrate: install
	$(PY) manage.py migrate

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm var .pytest_cache .mypy_cache .ruff_cache
