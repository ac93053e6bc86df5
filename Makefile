# retroscope: the two commands of the README.
#   make demo  - simulate, train briefly, evaluate, predict and report on the diffraction task
#                into demo-output/diffraction/ (each task into its own folder; nothing else is deleted)
#                (make demo TASK=crystal / TASK=clouds: the same on the Coulomb-crystal task
#                or the atom-cloud detection task)
#   make test  - the fast test suite (slow and GPU tests are excluded / skipped)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-output
TASK   ?= diffraction

.PHONY: demo test test-slow bench clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch and torchvision are pinned in pyproject.toml and installed by pip, never by uv.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/retroscope demo $(TASK) --out $(DEMO)/$(TASK) --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/diffraction.py
	$(BIN)/python benchmarks/crystal.py

clean-demo:
	rm -rf $(DEMO)
