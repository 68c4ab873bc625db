# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 5000
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run serve bench test lint install install-dev migrate seed clean screenshots oidc-provider

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) seed

## Start the portal on SQLite at http://127.0.0.1:$(PORT) (creates .venv, migrates, seeds).
## Development: links point at http://127.0.0.1:$(PORT) unless BASE_URL says otherwise.
run: export PORTAL_ENV := development
run: export PORT := $(PORT)
run: seed
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

## Serve with gunicorn (gunicorn.conf.py: workers, timeouts, access log; env-overridable).
## Production: BASE_URL (the public address) is required; only its host is served.
serve: migrate
	$(FLASK) seed --no-setup-link
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## Measure throughput and latency on SQLite and PostgreSQL; writes BENCHMARKS.md.
bench: install-dev
	$(BIN)/python -m bench

## The SSO tests' OpenID provider (tests/oidc): its npm packages, when Node and npm are here.
tests/oidc/node_modules/.package-lock.json: tests/oidc/package-lock.json
	@if command -v npm >/dev/null; then cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the SSO tests will be skipped (install Debian's nodejs and npm)"; fi

oidc-provider: tests/oidc/node_modules/.package-lock.json

## Run every test: on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.
## The browser tests (tests/e2e) need /usr/bin/chromium; without it they are skipped, and say so.
## The SSO tests need Node and tests/oidc's packages; without them they are skipped, and say so.
test: install-dev oidc-provider
	env -u TEST_DATABASE_URL $(BIN)/pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$TEST_DATABASE_URL)"; \
		$(BIN)/pytest; \
	fi

## Re-take docs/screenshots/*.png by running the browser tests with SCREENSHOT_DIR set.
screenshots: install-dev
	env -u TEST_DATABASE_URL SCREENSHOT_DIR=docs/screenshots $(BIN)/pytest -q -m e2e tests/e2e

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
