# Two commands on a fresh machine: `make demo` fits the default scene, `make test` runs the tests.
# Both create the virtual environment in .venv first (PyTorch's CPU build is used where no CUDA
# build is already installed; set TORCH= to pick another, e.g. TORCH="torch==2.13.0").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# The venv's tools (ninja for the kernels' first-use build) come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test bench gpu-check clean

setup: $(VENV)/.installed

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

test: setup
	$(PY) -m pytest -q

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
