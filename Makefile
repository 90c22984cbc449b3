# The two commands a newcomer needs:  make run  (demo data on SQLite)  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: run test test-fast test-browser messages clean

$(BIN)/lending: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

## run: the app with a demo venue on the embedded SQLite database, at http://127.0.0.1:$(PORT)/
run: $(BIN)/lending
	LENDING_DEMO=1 $(BIN)/lending demo
	LENDING_DEMO=1 $(BIN)/lending run --host $(HOST) --port $(PORT)

## test: every test; PostgreSQL ones when LENDING_TEST_POSTGRES_URL is set, browser ones when chromium is installed
test: $(BIN)/lending
	$(BIN)/pytest --ignore=tests/e2e tests
	$(BIN)/pytest tests/e2e

## messages: refresh the translation catalogues from the code and templates
messages: $(BIN)/lending
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output -k _l -k lazy_gettext -k lazy_ngettext:1,2 -o src/lending/locale/messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i src/lending/locale/messages.pot -d src/lending/locale -l cy

clean:
	rm -rf $(VENV) build dist .pytest_cache
