# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --disable-pip-version-check -q -c requirements/machine-pins.txt

# The browser apps' front-end (web/) is built into the Python package (a wheel carries it):
# only when the built assets are missing or older than the sources, so `make test` stays fast.
WEB_SOURCES := $(wildcard web/src/*) web/index.html web/package.json web/package-lock.json \
	web/vite.config.ts web/tsconfig.json
WEB_MODULES := web/node_modules/.installed
WEB_BUILT := src/deeptoolbox/apps/static/index.html

.PHONY: demo test lint venv clean fuzz web web-test test-keras-applications

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/machine-pins.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deeptoolbox demo

test: $(STAMP) web web-test
	$(BIN)/python -m pytest -q

# each reader fuzzed on its own for FUZZ_SECONDS (default 300); what breaks a reader is kept
# under tests/fuzz/corpus/<target>/, which `make test` replays
fuzz: $(STAMP)
	FUZZ_EACH=1 FUZZ_SAVE=1 FUZZ_SECONDS=$${FUZZ_SECONDS:-300} $(BIN)/python -m pytest -q -s \
		tests/fuzz

# every keras.applications model (make test imports one of each layer family)
test-keras-applications: $(STAMP)
	DTB_KERAS_APPLICATIONS=all $(BIN)/python -m pytest -q tests/interop/test_keras_applications.py

web: $(WEB_BUILT)

$(WEB_MODULES): web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd web && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "warning: npm not found; the apps' front-end is not built and its browser tests skip"; fi

$(WEB_BUILT): $(WEB_MODULES) $(WEB_SOURCES)
	@if [ -f $(WEB_MODULES) ]; then cd web && npm run build; fi

web-test: $(WEB_MODULES)
	@if [ -f $(WEB_MODULES) ]; then cd web && npm test; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports  # the layer order of shared/DESIGN.md ([tool.importlinter] in pyproject.toml)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info web/node_modules src/deeptoolbox/apps/static
