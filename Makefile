# The targets CI and the README call. uv is installed into the user's Python when it is missing.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: uv install demo test lint types check bench clean

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

install: uv
	$(UV) sync --locked

demo: install
	$(UV) run --locked arbkit demo

test: install
	$(UV) run --locked pytest -q

lint: install
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

types: install
	$(UV) run --locked mypy

check: lint types test

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(UV) run --locked python $$b --quick || exit 1; done

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache demo-store demo-run
