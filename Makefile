# Two entry points for a fresh clone: `make demo` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo venv clean bench completions docs

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23" -c constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the demo experiment (docs/demo.md): writes demo-out/report.md; a second run redoes nothing
demo: $(STAMP)
	$(VENV)/bin/ait experiment run examples/demo.yaml
	$(VENV)/bin/ait experiment report examples/demo.yaml

completions: $(STAMP)
	$(PY) -m aligninstruct_cli.completions completions/

# the option tables in docs/ from the options dataclasses (tests/test_docs.py checks they are current)
docs: $(STAMP)
	$(PY) -m aligninstruct_cli.docgen

bench: $(STAMP)
	@echo "see benchmarks/README.md; each script prints figures side by side"

clean:
	rm -rf $(VENV) demo-out .pytest_cache
