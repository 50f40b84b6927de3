# imi — the two commands: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test sim soak chaos bench lint clean venv browser node-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

INTEROP := tests/interop

# The interop tests drive the npm package @openid4vc/openid4vci (pinned in
# $(INTEROP)/package-lock.json). Without npm they are skipped (failed under CI=true):
# install Node 20+ with npm, then `make test` runs `npm ci` here by itself.
$(INTEROP)/node_modules: $(INTEROP)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(INTEROP) && npm ci --no-audit --no-fund; \
	else echo "npm not found: interop tests will be skipped (install Node 20+ and npm to run them)" >&2; fi

test: $(STAMP) browser $(INTEROP)/node_modules node-deps
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The page tests drive Debian's chromium (Playwright, by its path). Installed here when
# missing and possible (root with apt-get); otherwise say what to do. With CI=true a
# missing browser fails those tests rather than skipping them.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the page tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "no chromium: install Debian's chromium (sudo apt-get install chromium fonts-noto-cjk) for the page tests"; \
	  fi; }

# The OpenID4VP interop tests drive the npm package @openid4vc/openid4vp (pinned in the
# lock file). Installed from the lock file when missing; without npm, say what to do (the
# tests then skip, or fail with CI=true).
OID4VP_INTEROP := tests/interop/openid4vp
node-deps:
	@test -d $(OID4VP_INTEROP)/node_modules || { \
	  if command -v npm >/dev/null 2>&1; then \
	    echo "installing the OpenID4VP interop packages (npm ci)"; \
	    npm ci --prefix $(OID4VP_INTEROP) --no-audit --no-fund; \
	  else \
	    echo "no npm: install Node 20+ and npm, then: npm ci --prefix $(OID4VP_INTEROP)"; \
	  fi; }

run: $(STAMP)
	$(PY) -m cli.demo

sim: $(STAMP)
	$(PY) -m tests.sim --seeds 10000

soak: $(STAMP)
	$(PY) -m tests.soak --minutes 10

# Real validator processes under attack (Byzantine peers, floods, slowloris, kill -9); `make test` runs the quick form.
chaos: $(STAMP)
	$(PY) -m tests.chaos

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
