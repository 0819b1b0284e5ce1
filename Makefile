# The two commands a newcomer needs: `make run` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench scale soak clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "tidings needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# `make run PORT=9000` listens elsewhere; connection URLs printed afterwards follow.
PORT ?= 8000
run: $(STAMP)
	$(BIN)/tidings serve --port $(PORT)

# The whole suite twice: on SQLite (the embedded default) and on PostgreSQL (scale-out).
test: $(STAMP)
	@scripts/ensure-services || echo "a service is down; the tests that need it will say so"
	@scripts/ensure-chromium || echo "no Chromium; the dashboard's browser tests will fail and say why"
	$(BIN)/python -m pytest --db sqlite
	$(BIN)/python -m pytest --db postgresql

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src/tidings

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# 20,000 webhooks against tidings and against a Flask + Celery baseline, in one run (bench/README.md).
bench: $(BENCH_STAMP)
	@scripts/ensure-services || true
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A store grown to 10k, 100k and 1M messages through the intake, measured at each size (about
# 10 minutes here; SCALE_ARGS="--sizes 10000,100000" stops at 100k). bench/README.md, "Scale".
scale: $(BENCH_STAMP)
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# A steady load with duplicates and out-of-order events for at most 10 minutes (SOAK_ARGS="--seconds 60").
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
