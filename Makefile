# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --disable-pip-version-check -q -c requirements/machine-pins.txt

.PHONY: demo test lint venv clean fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/machine-pins.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deeptoolbox demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# each reader fuzzed on its own for FUZZ_SECONDS (default 300); what breaks a reader is kept
# under tests/fuzz/corpus/<target>/, which `make test` replays
fuzz: $(STAMP)
	FUZZ_EACH=1 FUZZ_SAVE=1 FUZZ_SECONDS=$${FUZZ_SECONDS:-300} $(BIN)/python -m pytest -q -s \
		tests/fuzz

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports  # the layer order of shared/DESIGN.md ([tool.importlinter] in pyproject.toml)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
