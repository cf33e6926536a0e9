# The README's two commands are `make demo` and `make test`; each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test test-fast lint format bench clean up down browser-deps

# setup.py and the C source too: an edited kernel is rebuilt (transform.scoring refuses a stale build)
$(STAMP): pyproject.toml setup.py transform/_scoring.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the pipeline through the Airflow DAGs on the bundled sample feeds (embedded broker + DuckDB).
demo: install
	$(BIN)/newswire demo

## The whole test suite (what CI runs).
test: install browser-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup

test-fast: install
	$(BIN)/python -m pytest -q -m "not airflow and not browser"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## Both benchmarks: dedup/clustering quality, then pipeline speed (JSON reports under bench/results/).
bench: install
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.pipeline

## Start the local stack: embedded broker + Airflow api-server, scheduler, dag-processor, triggerer; prints the UI
## address and the login. PORT=8080 by default; SAMPLE=1 also serves the bundled sample sites and polls them.
## EXECUTOR=celery runs the CeleryExecutor (Redis broker, PostgreSQL metadata DB) with WORKERS workers (2) of
## CONCURRENCY tasks each (2); the LocalExecutor is the default.
up: install
	$(BIN)/newswire up $(if $(PORT),--port $(PORT)) $(if $(SAMPLE),--sample) $(if $(SAMPLE_PORT),--sample-port $(SAMPLE_PORT)) \
	  $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(WORKERS),--workers $(WORKERS)) \
	  $(if $(CONCURRENCY),--worker-concurrency $(CONCURRENCY))

## Stop every process `make up` started (state stays in NEWSWIRE_HOME).
down:
	$(BIN)/newswire down

## Debian's Chromium for the browser test (driven by the Playwright package; `playwright install` is never used).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

clean:
	rm -rf .newswire .pytest_cache .ruff_cache
