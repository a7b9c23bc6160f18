# Two commands: `make run` starts the bot, `make test` runs lint and the tests.
# Each creates .venv and installs what it needs on first use (and again when a
# requirements file changes, or when PYTHON is another interpreter than the one
# that made .venv).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint format audit bench clean FORCE

run: $(VENV)/.runtime
	$(BIN)/python bot.py

test: $(VENV)/.dev lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

audit: $(VENV)/.dev
	$(BIN)/python .ci/audit.py

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run_all.py

# Which interpreter made .venv: its version and real path, kept in $(VENV)/.python.
# When PYTHON is another one (or .venv is missing or half made), .venv is made anew.
PYTHON_ID := $(shell $(PYTHON) -c 'import os, sys; print(sys.version.split()[0], os.path.realpath(sys.executable))' 2>/dev/null)
ifneq ($(PYTHON_ID),$(shell cat $(VENV)/.python 2>/dev/null))
$(VENV)/.python: FORCE
endif

# First a clear line if PYTHON is missing or too old; then the venv, removed again if
# its creation fails, so that the next run starts afresh instead of tripping over it.
$(VENV)/.python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		found=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
		echo "error: Python 3.11 or newer is needed (found $${found:-no $(PYTHON)}); set PYTHON=python3.11" >&2; \
		exit 1; }
	@echo "creating $(VENV) with Python $(PYTHON_ID)"
	@rm -rf $(VENV)
	@{ $(PYTHON) -m venv $(VENV) \
		&& $(BIN)/python -m pip install --quiet --upgrade pip \
		&& echo "$(PYTHON_ID)" > $@; } || { rm -rf $(VENV); exit 1; }

FORCE:

# The stamps are written only once pip succeeded: a failed install is retried next time.
$(VENV)/.runtime: requirements.txt $(VENV)/.python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# --- Translations --------------------------------------------------------------
# `make messages` collects every marked text into locales/avatarbot.pot and merges it
# into each language's .po (new texts empty, changed ones fuzzy: both fail the tests
# until translated). `make compile` builds the .mo files; the bot also compiles a
# .po that is newer than its .mo when it starts.
LOCALES_DIR := locales
I18N_SOURCES := bot.py cogs avatarbot avatar_api
.PHONY: messages compile

messages: $(VENV)/.dev
	$(BIN)/pybabel --quiet extract -F babel.cfg -k N_ -k N_plural:1,2 -k locale_str -c kind: -w 100 \
		--sort-by-file --project="Avatar Bot" --copyright-holder="Avatar Bot contributors" \
		-o $(LOCALES_DIR)/avatarbot.pot $(I18N_SOURCES)
	$(BIN)/pybabel --quiet update -i $(LOCALES_DIR)/avatarbot.pot -d $(LOCALES_DIR) \
		-D avatarbot -w 100

compile: $(VENV)/.runtime
	$(BIN)/pybabel compile -d $(LOCALES_DIR) -D avatarbot --statistics
