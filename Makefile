# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit migrate browser-deps media-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m server

migrate: $(STAMP)
	$(BIN)/python -m server migrate

browser-deps:
	@sh tests/e2e/ensure_chromium.sh

# Janus, janus-tools and coturn: the server installs them itself at start, but the tests run in a network namespace
# where apt-get cannot reach a mirror (tests/ensure_media_parts.sh). Also nats-server, the bus of the node tests.
media-deps:
	@sh tests/ensure_media_parts.sh

LINTED = $(wildcard server signaling recordings tests bench)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

# Each run gets its own temporary folder: pytest prunes old ones under /tmp/pytest-of-$USER, which would pull the
# embedded PostgreSQL of a concurrent run from under it.
PYTEST = $(BIN)/python -m pytest --basetemp="$$(mktemp -d -t roundtable-test.XXXXXX)"

unit: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS)

# With no PYTEST_ARGS, two runs. First the media and browser tests (tests/e2e, tests/sfu, tests/bench), one at a
# time: Chromium, Janus and aiortc need the two cores to themselves. Then everything else on PARALLEL_WORKERS
# pytest-xdist workers, a file per worker: those tests mostly wait (on PostgreSQL, on server processes starting, on
# leases lapsing) and share nothing (each has its own database, node processes, ports and bus subjects). Both runs
# always run; either failing fails the target. A new folder of tests is in the parallel run unless listed in SERIAL.
# A media test that fails in the first run is run once more (pytest-rerunfailures; the summary counts the reruns):
# real Chromium, Janus and aiortc on two cores sometimes starve a stream for longer than a wait allows (seen about
# once a run on an AMD EPYC machine, each time a different test). Failing twice fails. The parallel run gets no rerun.
SERIAL = tests/e2e tests/sfu tests/bench
MEDIA_RERUNS ?= 1
PARALLEL_WORKERS ?= 3

test: $(STAMP) browser-deps media-deps lint typecheck
ifeq ($(strip $(PYTEST_ARGS)),)
	status=0; \
	$(PYTEST) --reruns $(MEDIA_RERUNS) $(SERIAL) || status=1; \
	$(PYTEST) -n $(PARALLEL_WORKERS) --dist loadfile $(addprefix --ignore=,$(SERIAL)) tests || status=1; \
	exit $$status
else
	$(PYTEST) $(PYTEST_ARGS)
endif

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
