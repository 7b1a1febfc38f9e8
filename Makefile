# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use;
# the install steps re-run only when setup.cfg or pyproject.toml change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint docs clean fuzz

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "opbsim needs Python 3.11 or newer: run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,rtl,cluster]'
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/opbsim demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check opbsim tests
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -n 2

# The fuzz suite at 10,000 examples per target (make test runs it at 25): tests/fuzz/bounds.py states
# the contract each input must keep (exit 0/1/2, one line under 300 characters, time and memory bounds).
# Its figures (examples, failures, slowest example, peak memory) go to benchmarks/results/fuzz.md.
FUZZ_EXAMPLES ?= 10000
fuzz: $(VENV)/.installed-test
	rm -rf build/fuzz && mkdir -p build/fuzz
	OPBSIM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) OPBSIM_FUZZ_LOG=build/fuzz $(BIN)/python -m pytest -n 2 -q \
	    -W ignore::DeprecationWarning --junitxml=build/fuzz/junit.xml tests/fuzz; status=$$?; \
	$(BIN)/python benchmarks/fuzz_summary.py build/fuzz build/fuzz/junit.xml --examples $(FUZZ_EXAMPLES) \
	    > benchmarks/results/fuzz.md; cat benchmarks/results/fuzz.md; exit $$status

docs: $(VENV)/.installed-run
	$(BIN)/opbsim isa --format markdown -o docs/isa.md
	$(BIN)/opbsim rtl generate
	$(BIN)/python -c "from opbsim.reference.constants_header import write; write()"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .import_linter_cache opbsim-demo sim_build
