# shareflow: set-up, run, test. Every target that needs the environment runs
# `bootstrap` first (idempotent: Debian packages, ./.venv, pip install -e '.[test]').
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON := $(VENV)/bin/python
VAR    := var

# make test TESTS=tests/functional PYTEST_ARGS='-k jobboard -x'
TESTS        ?= tests
PYTEST_ARGS  ?=
# Plugins (real ZooKeeper, PostgreSQL, btrfs, Ganesha fixtures) are registered in tests/conftest.py.
PYTEST_FLAGS := -ra --durations=15
RUN_ARGS     ?=

.PHONY: help bootstrap run test bench clean

help:
	@echo "make run        install what is missing, then run shareflow (Ctrl-C stops it)"
	@echo "make test       install what is missing, then run the tests"
	@echo "make bench      install what is missing, then run bench/create_share.py"
	@echo "make bootstrap  only install what is missing (Debian packages, .venv)"
	@echo "make clean      remove ./$(VAR) (refused while anything is mounted under it)"

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	$(VENV)/bin/shareflow run $(RUN_ARGS)

# pytest exit 5 means "no tests collected": that is a failure here, not a pass.
test: bootstrap
	@bash scripts/bootstrap-test.sh
	@rc=0; $(PYTHON) -m pytest $(PYTEST_FLAGS) $(PYTEST_ARGS) $(TESTS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		echo "make test: FAILED: pytest collected no tests (exit 5) from $(TESTS)" >&2; exit 1; \
	elif [ $$rc -ne 0 ]; then \
		echo "make test: FAILED (pytest exit $$rc)" >&2; exit $$rc; \
	fi

bench: bootstrap
	$(PYTHON) bench/create_share.py

# Refuse while a mount (the btrfs pool, a share subvolume) or a loop device
# backing file lives under ./var: `rm -rf` would go through a live filesystem.
clean:
	@if [ ! -e "$(VAR)" ]; then echo "clean: nothing to do ($(VAR) does not exist)"; exit 0; fi; \
	var=$$(realpath -e "$(VAR)"); \
	mounts=$$(awk -v d="$$var" '{ m = $$5; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print m }' /proc/self/mountinfo); \
	if [ -n "$$mounts" ]; then \
		echo "clean: refusing to remove $$var: still mounted under it (stop shareflow / unmount first):" >&2; \
		echo "$$mounts" | sed 's/^/  /' >&2; exit 1; \
	fi; \
	loops=$$(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v d="$$var/" 'index($$2, d) == 1' || true); \
	if [ -n "$$loops" ]; then \
		echo "clean: refusing to remove $$var: loop devices still use files under it (losetup -d them first):" >&2; \
		echo "$$loops" | sed 's/^/  /' >&2; exit 1; \
	fi; \
	echo "clean: removing $$var"; rm -rf -- "$$var"
