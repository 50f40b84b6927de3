# imi — the two commands: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test sim soak bench lint clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup

run: $(STAMP)
	$(PY) -m cli.demo

sim: $(STAMP)
	$(PY) -m tests.sim --seeds 10000

soak: $(STAMP)
	$(PY) -m tests.soak --minutes 10

bench: $(STAMP)
	$(PY) -m bench all

LINT_STAMP := $(VENV)/.lint-installed

$(LINT_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[lint]'
	@touch $(LINT_STAMP)

# Not part of `make test`: the pinned ruff (its default rules plus pyproject's) and
# mypy --strict over the shipped packages (the tests are not typed to that bar).
lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy ledger node identity cli bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
