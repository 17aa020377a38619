# Two entry points for a fresh clone: `make demo` and `make test`. Both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo venv clean bench completions docs test-transformers5

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23" -c constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the tests without the long ones (`@pytest.mark.slow`: over ~10 s each, trainings and launches); `make test` is the
# whole suite, as CI runs it
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# the demo experiment (docs/demo.md): writes demo-out/report.md; a second run redoes nothing
demo: $(STAMP)
	$(VENV)/bin/ait experiment run examples/demo.yaml
	$(VENV)/bin/ait experiment report examples/demo.yaml

completions: $(STAMP)
	$(PY) -m aligninstruct_cli.completions completions/

# the option tables in docs/ from the options dataclasses (tests/docs/test_option_docs.py checks they are current)
docs: $(STAMP)
	$(PY) -m aligninstruct_cli.docgen

# the transformers-5 environment (.venv-tf5, constraints-tf5.txt: no unbabel-comet, which needs transformers<5):
# ait's COMET scorer and decoding loop under transformers 5.x; the comet cross-check tests skip there
TF5 := .venv-tf5
TF5_STAMP := $(TF5)/.installed
TF5_TESTS ?= tests/metrics/test_comet_model.py tests/translation/test_decoding.py

$(TF5_STAMP): pyproject.toml constraints-tf5.txt
	test -x $(TF5)/bin/python || $(PYTHON) -m venv $(TF5)
	$(TF5)/bin/python -m pip install -q --upgrade "pip>=23"
	$(TF5)/bin/python -m pip install -q -c constraints-tf5.txt -e . pytest hypothesis
	touch $(TF5_STAMP)

# the COMET cross-check across environments: comet's own scores from .venv (transformers 4.x), ait's under 5.x
test-transformers5: $(TF5_STAMP) $(STAMP)
	$(PY) tests/comet_reference.py $(TF5)/comet-reference
	AIT_COMET_REFERENCE=$(TF5)/comet-reference $(TF5)/bin/python -m pytest -q $(TF5_TESTS) $(PYTEST_ARGS)

bench: $(STAMP)
	@echo "see benchmarks/README.md; each script prints figures side by side"

clean:
	rm -rf $(VENV) $(TF5) demo-out .pytest_cache
