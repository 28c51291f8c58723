# Quick start: `make handouts` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install handouts test check-machine lab lint format clean

help:
	@echo "make handouts  execute every notebook, write build/handouts/{learner,instructor}/"
	@echo "make test      helper unit tests, every notebook under fork/spawn/forkserver, hygiene"
	@echo "make check-machine  will the timing demos show their lessons on this machine? (~10 s)"
	@echo "make lab       open JupyterLab on notebooks/"
	@echo "make lint      ruff check and ruff format --check"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[course,test]'
	@touch $(STAMP)

handouts: $(STAMP)
	$(BIN)/python -m helpers.handouts --out build/handouts notebooks

test: $(STAMP)
	$(BIN)/python -m pytest

check-machine: $(STAMP)
	$(BIN)/python -m helpers.machine

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff check helpers tests conftest.py notebooks
	$(BIN)/ruff format --check helpers tests conftest.py notebooks

format: $(STAMP)
	$(BIN)/ruff format helpers tests conftest.py notebooks

clean:
	rm -rf build
