# Two commands for a fresh clone (see README):
#   make demo   creates .venv if missing, installs everything, trains + evaluates on synthetic data
#   make test   installs if needed and runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmrs-installed
INSTALL_INPUTS := setup.py requirements/torch.txt requirements/mminstall.txt \
	requirements/runtime.txt requirements/tests.txt tools/install/install.sh \
	tools/install/ensure_mmcv.py

.PHONY: install test test-fast demo clean-demo

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	MMRS_VENV=$(VENV) bash tools/install/install.sh
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Everything but the slower end-to-end runs (training through the tools, DDP).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) tools/demo.py

clean-demo:
	rm -rf work_dirs/demo data/synthetic_demo
