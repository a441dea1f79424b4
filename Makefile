# Two entry points (README quick start): `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lumbar-twin build data/sample/patient.json --out out/

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

clean:
	rm -rf out/ .pytest_cache
