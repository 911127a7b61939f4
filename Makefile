# One-liners around the project's tools; `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint fmt bench clean

# the demo's world ends now, is loaded into a store (its tables as an arrival log, as a
# lender's would be) and served as of the wall clock, following the log; the application
# to try is the one the simulator wrote for this world (a farmer with an active contract)
DEMO_SEED ?= 5

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/agricredit simulate --out data/world --seasons 5 --seed $(DEMO_SEED) --until now
	$(BIN)/agricredit data load data/world --data data/store
	$(BIN)/agricredit features build --data data/store
	$(BIN)/agricredit train --data data/store --ablate
	$(BIN)/agricredit promote latest
	@KEY=$$($(BIN)/agricredit keys create --role lender --name demo | sed -n 2p); \
	echo "lender API key for the demo (shown once): $$KEY"; \
	echo "try, once the server below says it is running:"; \
	echo "  curl -s -X POST http://127.0.0.1:8000/v1/score -H 'Authorization: Bearer '$$KEY \\"; \
	echo "    -H 'Idempotency-Key: demo-1' -H 'content-type: application/json' \\"; \
	echo "    -d '"$$($(BIN)/python -c 'import json; print(json.dumps(json.load(open("data/world/world.json"))["example_application"]))')"'"; \
	echo "API docs: http://127.0.0.1:8000/docs"
	$(BIN)/agricredit serve --data data/store --host 127.0.0.1 --port 8000

# two workers, one per core; tests sharing an expensive fixture stay on one (tests/conftest.py)
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# the inner loop: no default-size worlds, no real servers
test-fast: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow and not e2e"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports && $(BIN)/mypy

fmt: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: setup
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_zonal.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_model_size.py
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_preapprove.py
	$(BIN)/python benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) data .pytest_cache
