# tsir developer entry points. CPU machine: `make test`. GPU machine (no network): `make gpu-test`
# with the wheels that `make device-wheels` put in .whl/ beforehand.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.tsir-installed
WHEEL_DIR ?= .whl
# --z3 bound for device-wheels: z3 5.x wheels are 33-39 MB, 4.16 is 32 MB (the tree cap is 64 MiB).
DEVICE_Z3 ?= <5
GPU_SITE ?= /tmp/site
PYTEST_ARGS ?=

.PHONY: help venv test demo sloc device-wheels gpu-test gpu-dist clean

help:
	@echo "make test           CPU tests in $(VENV) (created from pyproject.toml)"
	@echo "make demo           run examples/demo.py in $(VENV)"
	@echo "make device-wheels  download the wheels the GPU machine lacks into $(WHEEL_DIR)/"
	@echo "make gpu-test       on the GPU machine: install $(WHEEL_DIR)/*.whl, run gpu/multigpu tests"
	@echo "make gpu-dist       on a 2+ GPU machine: multi-GPU tests, then distributed benchmarks"
	@echo "make sloc           line counts per top-level folder"

# The virtualenv is rebuilt when pyproject.toml changes (the stamp is older than it).
$(VENV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV_STAMP)

sloc:
	@$(PYTHON) .ci/sloc.py

test: $(VENV_STAMP)
	@$(VENV_PY) .ci/sloc.py
	$(VENV_PY) -m pytest -q -m "not gpu and not multigpu" --durations=10 $(PYTEST_ARGS)

demo: $(VENV_STAMP)
	$(VENV_PY) examples/demo.py

device-wheels:
	$(PYTHON) .ci/device_wheels.py --dest $(WHEEL_DIR) --z3 '$(DEVICE_Z3)'

# Runs with the machine's own python3 (it has torch, cupy, cuda-bindings), never the venv. The
# checkout goes on PYTHONPATH: tsir/__init__.py adds the repo root to tsir.__path__, so
# tsir.passes/codegen/runtime resolve to passes/, codegen/, runtime/ without installing tsir.
gpu-test:
	@ls $(WHEEL_DIR)/*.whl >/dev/null 2>&1 || { echo "no wheels in $(WHEEL_DIR)/: run 'make device-wheels' on a machine with network first" >&2; exit 1; }
	python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target $(GPU_SITE) $(WHEEL_DIR)/*.whl
	PYTHONPATH=$(GPU_SITE):$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} python3 -c "import tsir, tsir.runtime.nvrtc as n, tvm_ffi, z3; print('tsir from', tsir.__file__, '| NVRTC', n.nvrtc_version(), '| tvm_ffi', tvm_ffi.__version__, '| z3', z3.get_version_string())"
	PYTHONPATH=$(GPU_SITE):$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} python3 -m pytest -m "gpu or multigpu" -v -rs $(PYTEST_ARGS)
	PYTHONPATH=$(GPU_SITE):$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} bash scripts/gpu_sanitize.sh

gpu-dist:
	bash scripts/gpu_dist_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
