# The two commands a developer needs: `make run` and `make test`. Each sets up
# everything from nothing first (scripts/setup.sh is cheap when cached).
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: setup run test lint typecheck unit catalogs chat

setup:
	@scripts/setup.sh

# Running needs no browser: skip installing chromium (only the browser tests use it).
run:
	@BOT_SKIP_CHROMIUM=1 scripts/setup.sh
	@scripts/serve.sh

chat: setup
	$(PY) -m bot chat

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: setup
	.venv/bin/mypy

unit: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# What CI runs: the whole suite, lint and types included.
test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

# Extract every translatable string and merge it into the zh_CN and en catalogs.
catalogs: setup
	.venv/bin/pybabel extract -F babel.cfg -k N_ -k NP_:1,2 -k _ -k ngettext:1,2 --no-location --sort-output \
	  --project=feedback-bot -o locales/messages.pot bot
	.venv/bin/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete
	.venv/bin/pybabel compile -d locales -D messages
