# Quick start: `make handouts` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install handouts test test-matrix test-browser test-lab hooks check-machine lab lint format clean

help:
	@echo "make handouts     execute every notebook, write build/handouts/{learner,instructor}/"
	@echo "make test         helper unit tests, every notebook under fork/spawn/forkserver, hygiene;"
	@echo "                  with chromium installed, also test-browser and test-lab"
	@echo "make lab          open JupyterLab on notebooks/"
	@echo "make lint         ruff check and ruff format --check"
	@echo "make test-matrix  every notebook under spawn/forkserver on the other Pythons (pyenv)"
	@echo "make test-browser the handouts in headless Chromium (run make handouts first)"
	@echo "make test-lab     every notebook run with Run All in a real JupyterLab (headless Chromium)"
	@echo "make hooks        install the pre-commit hooks (notebook outputs cleared, ruff)"
	@echo "make check-machine will the timing demos show their lessons on this machine? (~10 s)"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[course,test]'
	@touch $(STAMP)

handouts: $(STAMP)
	$(BIN)/python -m helpers.handouts --out build/handouts notebooks

# Two pytest runs. The red-team tests (every exercise check tried on answers written to fool
# it) mostly wait on children that sleep, so they run two at a time (pytest-xdist, a file per
# worker); everything else runs one test at a time, as the notebooks' timings and the
# harness's checks for leftover processes and /dev/shm files need. Both always run; make
# test fails if either does. JUNIT_DIR=folder writes each run's JUnit report there.
REDTEAM := tests/test_redteam_*.py
test: $(STAMP)
	@$(BIN)/python -m pytest -n 2 --dist loadfile $(REDTEAM) \
	    $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/redteam.xml); red=$$?; \
	$(BIN)/python -m pytest --ignore-glob='$(REDTEAM)' \
	    $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/test.xml); code=$$?; \
	for c in $$red $$code; do \
	    if [ $$c -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	done; \
	if [ $$red -ne 0 ]; then exit $$red; fi; exit $$code

test-matrix:
	PYTHON=$(PYTHON) .ci/test-matrix

test-browser: $(STAMP)
	$(BIN)/python -m pytest tests/test_browser_handouts.py

test-lab: $(STAMP)
	$(BIN)/python -m pytest tests/test_jupyterlab.py

hooks: $(STAMP)
	$(BIN)/pre-commit install

check-machine: $(STAMP)
	$(BIN)/python -m helpers.machine

# The course's JupyterLab settings (jupyter/: no news prompt, no update check) are added to
# the learner's own. As root (a container, a cloud notebook) JupyterLab needs --allow-root.
# In a container, serve on every interface and open the printed URL from the host:
#   make lab LAB_IP=0.0.0.0 LAB_ARGS=--no-browser
LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
LAB_ARGS ?=
lab: $(STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	$(BIN)/jupyter lab notebooks/ --ServerApp.ip=$(LAB_IP) --ServerApp.port=$(LAB_PORT) \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check helpers tests tools conftest.py notebooks
	$(BIN)/ruff format --check helpers tests tools conftest.py notebooks

format: $(STAMP)
	$(BIN)/ruff format helpers tests tools conftest.py notebooks

clean:
	rm -rf build
