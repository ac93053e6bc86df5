# retroscope: the two commands of the README.
#   make demo  - simulate, train briefly, evaluate, predict and report on the diffraction task
#                into demo-output/diffraction/ (each task into its own folder; nothing else is deleted)
#                (make demo TASK=crystal / TASK=clouds / TASK=pmd: the same on the Coulomb-crystal task,
#                the atom-cloud detection task or the H2+ momentum-map task)
#   make test  - the fast test suite (slow and GPU tests are excluded / skipped)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-output
TASK   ?= diffraction

.PHONY: demo test test-slow test-browser bench clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch and torchvision are pinned in pyproject.toml and installed by pip, never by uv.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only builds first (no
# CUDA libraries: about half the install), for machines that can reach that index.
TORCH_INDEX ?=
$(STAMP): pyproject.toml | $(BIN)/python
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/retroscope demo $(TASK) --out $(DEMO)/$(TASK) --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-browser: $(STAMP)
	$(BIN)/python -m pytest -q -m browser

bench: $(STAMP)
	$(BIN)/python benchmarks/diffraction.py
	$(BIN)/python benchmarks/crystal.py

clean-demo:
	rm -rf $(DEMO)
