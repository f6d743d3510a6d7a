# carbon-pipeline — everyday commands. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/carbon_pipeline
PORT ?= 8000

.PHONY: help install run test test-pg test-fast lint format migrate clean

help:
	@echo "make run       set up (venv, dependencies, database) and run the app on SQLite at http://127.0.0.1:8000/admin/"
	@echo "make test      run the test suite (SQLite, or the database in DATABASE_URL)"
	@echo "make test-pg   run the test suite on PostgreSQL ($(PG_URL))"
	@echo "make lint      ruff (lint + format check), mypy, migrations check"
	@echo "make format    ruff format + autofix"

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py serve --port $(PORT) --seed-demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-pg: install
	DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} $(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: install
	$(PY) manage.py migrate

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm var .pytest_cache .mypy_cache .ruff_cache
