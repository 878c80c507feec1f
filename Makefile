# Two commands on a fresh machine: `make demo` fits the default scene, `make test` runs the tests.
# Both create the virtual environment in .venv first (PyTorch's CPU build is used where no CUDA
# build is already installed; set TORCH= to pick another, e.g. TORCH="torch==2.13.0").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# The venv's tools (ninja for the kernels' first-use build) come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup system-deps demo test bench gpu-check clean

# System libraries first (libusb for open3d, python3-venv): installed with apt-get where root or
# sudo allow, otherwise one line says what to install (SYSTEM_DEPS=skip goes on without them).
setup: system-deps $(VENV)/.installed

system-deps:
	@PYTHON=$(PYTHON) bash .ci/system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: setup
	rm -rf runs/demo-camera-hash
	$(VENV)/bin/inr fit image --out runs/demo-camera-hash
	$(VENV)/bin/inr render image runs/demo-camera-hash --scale 2 -o runs/demo-camera-hash/render_2x.png

# The fast tests first (quick feedback), then the end-to-end ones marked slow. pytest-xdist spreads
# each phase over the cores, a test file per worker at a time (a file's fixtures are fitted once).
PYTEST_ARGS ?= -q -n auto --dist loadfile
test: setup
	$(PY) -m pytest $(PYTEST_ARGS) -m "not slow"
	$(PY) -m pytest $(PYTEST_ARGS) -m slow

bench: setup
	$(PY) benchmarks/hashgrid.py
	$(PY) benchmarks/image_fit.py
	$(PY) benchmarks/mlp_cpu.py
	$(PY) benchmarks/sdf_fit.py

# On a machine with a CUDA GPU and its own PyTorch build (no venv): every CUDA kernel test, then
# the kernel benchmark (one JSON line per configuration) into bench-kernels.jsonl.
GPU_TESTS := tests/test_cuda_mlp.py tests/test_cuda_tc.py tests/test_cuda_jvp.py tests/test_cuda_hashgrid.py \
	tests/test_tcnn_backend.py
gpu-check:
	$(PYTHON) -m pytest -q $(GPU_TESTS)
	$(PYTHON) benchmarks/kernels.py | tee bench-kernels.jsonl

clean:
	rm -rf $(VENV) runs .pytest_cache
