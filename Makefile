# The two commands: `make demo` and `make test`. Both create .venv and install into it
# when pyproject.toml changed since the last install (a stamp file makes this idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned to the build that lies on this machine's disk; override on other machines,
# e.g. `make TORCH_SPEC="torch torchvision" test`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/genlab demo

# lint first: a minute of ruff + mypy saves a 3-minute test run on a typo
test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean-venv:
	rm -rf $(VENV)
