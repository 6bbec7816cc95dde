# The targets CI and the README call. `uv` is installed into the user's Python if missing.
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := .venv/bin/python

.PHONY: install demo test lint types check bench clean

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

install: $(UV)
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
