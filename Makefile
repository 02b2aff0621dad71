# One-command set-up, demo and tests. Everything runs inside the local virtual environment .venv/.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.base-installed-stamp
STAMP := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-installed-stamp

.PHONY: setup demo test lint test-nbs test-py test-explore test-slow export bench readme docs docs-serve help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv/ and install the pinned dependencies and the package (editable), with the tools for tests and notebooks

# the package and what it needs to run: all the demo installs
$(BASE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(BASE_STAMP)

$(STAMP): pyproject.toml $(BASE_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['peers'])" \
	    | xargs $(BIN)/python -m pip install --quiet --no-deps   # SpikingJelly and snnTorch for the adapters' tests
	touch $(STAMP)

demo: $(BASE_STAMP)  ## run the main job on the embedded Fashion-MNIST demo
	$(BIN)/rsnn run

test: lint test-nbs test-py  ## ruff, nbdev-test over all notebooks, then pytest tests/

lint: setup  ## ruff over the package (the notebooks' exported code), tests, benchmarks and docs builder ([tool.ruff])
	$(BIN)/ruff check robustsparsesnn tests bench docs

test-nbs: setup
	OMP_NUM_THREADS=1 RSNN_PROGRESS=0 $(BIN)/nbdev-test --n-workers 2 --timing

test-py: setup
	$(BIN)/python -m pytest tests/ -ra -m "not slow" --hypothesis-profile=ci

test-explore: setup  ## hypothesis properties with fresh seeds and 10x the examples (RSNN_EXPLORE_SCALE), not deterministic
	RSNN_PROGRESS=0 $(BIN)/python -m pytest tests/ -ra -m "not slow and not browser" --hypothesis-profile=explore --hypothesis-show-statistics -q

test-slow: setup  ## the slow checks too: reference comparisons, full-size runs
	$(BIN)/python -m pip install --quiet -e ".[dev,test-ref]"
	$(BIN)/python -m pip install --quiet --no-deps torchattacks==3.5.1
	RSNN_PROGRESS=0 $(BIN)/nbdev-test --n-workers 1 --flags slow
	$(BIN)/python -m pytest tests/ -ra -m slow

export: setup  ## notebooks -> package, then strip notebook metadata
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean

bench: setup  ## print the benchmarks' numbers
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

readme: setup  ## the results of results/ into nbs/index.ipynb, then README.md from it (nbdev-readme does the rendering where Quarto is installed)
	$(BIN)/python -c "from robustsparsesnn.recipes import fill_readme; fill_readme('nbs/index.ipynb', 'results')"
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --output README --output-dir . --log-level WARN
	sed -i 's#](images/#](nbs/images/#g' README.md    # figures live in nbs/images/, beside the notebook

docs: setup $(DOCS_STAMP)  ## the docs site offline (no Quarto, no network) into _docs/: open _docs/index.html
	$(BIN)/python docs/build.py

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs-serve: docs  ## build the docs, then serve _docs/ on http://127.0.0.1:8000
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _docs
