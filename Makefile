# Needs only Python 3.11+ and make: uv is installed into .tools/ and pulls the locked deps.
PYTHON ?= python3
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: run run-split test install lint typecheck imports pytest migrate seed worker openapi load stress bench bench-split bench-checkout clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

install: $(UV)
	$(UV) sync --frozen

run: install ## API + worker + embedded Postgres/Redis + demo data
	$(UV) run --frozen python -m devtools run

run-split: install ## the same, split: one API + worker per module, nginx on PORT in front
	$(UV) run --frozen python -m devtools run --split

test: install ## ruff, mypy --strict, import contracts, the whole pytest suite
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports
	$(UV) run --frozen pytest -n 3 --dist loadfile --cov --cov-report=term --cov-report=html:reports/coverage --cov-report=xml:reports/coverage.xml

migrate: install
	$(UV) run --frozen python -m app.cli migrate

seed: install
	$(UV) run --frozen python -m app.cli seed

worker: install
	$(UV) run --frozen python -m app.cli worker

openapi: install
	$(UV) run --frozen python -m app.cli openapi

LOAD_HOST ?= http://127.0.0.1:8000
LOAD_USERS ?= 50
LOAD_TIME ?= 60s
load: install ## headless locust against a running service; reports in load/reports/
	mkdir -p load/reports
	$(UV) run --frozen locust -f load/locustfile.py --headless \
		--host $(LOAD_HOST) -u $(LOAD_USERS) -r 10 -t $(LOAD_TIME) \
		--csv load/reports/keystone --html load/reports/keystone.html

stress: install ## users added in steps until the service saturates; table on stdout
	mkdir -p load/reports
	$(UV) run --frozen locust -f load/stressfile.py --headless \
		--host $(LOAD_HOST) --csv load/reports/stress --html load/reports/stress.html

bench: install ## Keystone vs bare Starlette+asyncpg; results in docs/performance.md
	$(UV) run --frozen python -m bench.run

bench-split: install ## split vs monolith: product read via the gateway, checkout with a remote catalog; bench/results/split.md
	$(UV) run --frozen python -m bench.split

bench-checkout: install ## checkouts against one API and one worker: placed->terminal, event lag, drain
	$(UV) run --frozen python -m bench.checkout $(BENCH_ARGS)

clean:
	rm -rf .venv .tools .mypy_cache .pytest_cache .ruff_cache
