# Swarm: `make run` starts everything on the embedded default; `make test` runs the whole suite.
# Both do all set-up themselves and are idempotent (stamps skip work already done).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.requirements.stamp
NPM_STAMP := node_modules/.package.stamp
VENDOR_STAMP := static/vendor/.stamp

# Test services (real PostgreSQL and Redis; .ci/run starts them when they are down).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9

.PHONY: setup run chromium test test-python test-js test-browser lint lint-js format-js typecheck typecheck-js vectors clean

setup: $(PY_STAMP) $(VENDOR_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py swarm_keys

$(PY_STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENDOR_STAMP): $(NPM_STAMP) scripts/vendor.mjs
	node scripts/vendor.mjs
	touch $@

run: setup
	$(VENV)/bin/honcho start -f Procfile

lint: $(PY_STAMP) lint-js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# Which package may import which (pyproject.toml [tool.importlinter]).
	$(VENV)/bin/lint-imports --no-logo

# Biome (biome.json): formatting and lint of the JavaScript; `make format-js` rewrites it.
lint-js: $(NPM_STAMP)
	node_modules/.bin/biome ci --error-on-warnings .

format-js: $(NPM_STAMP)
	node_modules/.bin/biome check --write .

typecheck: $(PY_STAMP) typecheck-js
	$(VENV)/bin/mypy

# tsc on the ES modules of tsconfig.json (JSDoc types; nothing is emitted).
typecheck-js: $(NPM_STAMP)
	node_modules/.bin/tsc -p tsconfig.json

vectors: $(PY_STAMP) $(NPM_STAMP)
	$(PY) scripts/make_vectors.py
	node scripts/content_vectors.mjs

# Chromium first: without it the browser tests would fail only after everything else ran.
test: chromium setup lint typecheck test-python test-js test-browser

chromium:
	@sh scripts/need_chromium.sh

test-python: setup
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest tests --ignore=tests/browser
	# The beacon again on the embedded default: SQLite and per-process limits, no Redis;
	# and the old layout migrating forward on SQLite too.
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest tests/test_beacon_api.py tests/test_beacon_fuzz.py tests/test_beacon_withdraw.py \
		tests/test_layout_migration.py

test-js: $(VENDOR_STAMP)
	@ls tests/js/*.test.js >/dev/null  # no test files is a failure, not a pass
	node --test tests/js/

test-browser: chromium setup
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest tests/browser

clean:
	rm -rf $(VENV) node_modules static/vendor
