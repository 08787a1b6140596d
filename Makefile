# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   create .venv, install, run the main job end to end on a simulated incident
#   make test   create .venv, install, run the whole test suite (CI runs this)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out/demo
JOBS   ?= 2

.PHONY: install demo test fuzz lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/forensics demo --out $(OUT)

test: install
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile tests
	$(BIN)/python -m pytest --doctest-modules toolkit -q

# The property-based / fuzz tests with a long budget (make test runs them with a small one).
FUZZ_EXAMPLES ?= 2000
fuzz: install
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -m fuzz -q tests

lint: install
	$(BIN)/ruff check toolkit tests bench

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/diagnose.py

clean:
	rm -rf $(VENV) out .pytest_cache
