# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make up     installs what is needed into .venv, then runs `jetscan up`
#   make test   the same install, then ruff, ruff format --check, hadolint, mypy --strict and pytest
# (--inexact keeps the uv that installed the venv: an exact sync would remove it.)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced

.PHONY: up test lint typecheck pytest proto bench clean system-deps

up: $(STAMP) system-deps
	$(BIN)/jetscan up

test: $(STAMP) system-deps lint typecheck pytest

$(UV):
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "jetscan: Python's venv module is missing; install it with: sudo apt-get install python3-venv" >&2; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --python $(BIN)/python --quiet
	touch $(STAMP)

# Debian packages: nmap runs the nmap scans; the Noto fonts let typst draw every script and
# emoji in PDF reports (handlers/reports/pdf.py names their folders); poppler-utils
# (pdftotext) reads PDFs back in tests; chromium is the browser the portal's Playwright tests
# drive (/usr/bin/chromium). Installed when missing (as root or with sudo).
DEBIAN_PACKAGES := nmap poppler-utils fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji chromium

system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; \
	  else echo "jetscan: missing Debian packages; install them with: sudo apt-get install" $$missing >&2; exit 1; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint scanners/*/Dockerfile deploy/Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

# A test run must leave tests/ as it found it (no snapshot written on the spot): the state of
# tests/ in git (diff and untracked files, by content) before and after must match. Outside a
# git checkout there is nothing to compare, and the run stands on pytest alone.
TESTS_STATE = { git diff --no-ext-diff HEAD -- tests; git ls-files -o --exclude-standard -z -- tests \
	| xargs -0r sha256sum; } 2>/dev/null | sha256sum

pytest: $(STAMP)
	@before="$$($(TESTS_STATE))"; \
	$(BIN)/pytest || exit $$?; \
	if [ "$$before" != "$$($(TESTS_STATE))" ]; then \
	  echo "jetscan: the test run changed tests/ (a snapshot written?):" >&2; \
	  git status --short -- tests >&2; exit 1; fi

proto: $(STAMP)
	$(BIN)/python -m contracts.protogen

bench: $(STAMP)
	$(BIN)/python -m bench nmap-parse

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
