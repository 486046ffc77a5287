# dnc-policy: the two commands a newcomer runs are `make demo` and `make test`.
# Both create (or reuse) a virtual environment in $(VENV) and install what they need.
#
# PyTorch: TORCH_SPEC pins the CPU build this project is developed and tested on.
# On a CUDA machine override it, e.g.  make test TORCH_SPEC=torch   (PyPI's default
# Linux wheel is the CUDA build), or point pip at your own wheel.

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS     ?= train,bench,ros,dev
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC) $(EXTRAS)' | md5sum | cut -c1-8)

.PHONY: setup demo copy-task test bench gpu-check clean

$(STAMP): pyproject.toml setup.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	@# An older checkout installed the ROS package's sources as a second distribution, and
	@# the root as one of the same name (whose egg-info would shadow the ROS package's).
	@$(PY) -m pip uninstall --quiet --yes dnc_policy 2>/dev/null || true
	@rm -rf dnc_policy.egg-info
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)

# The main job on the embedded default: train the default DNC policy (T-maze), evaluate
# it, export it to ONNX (parity-checked), run it through the robot runtime and through
# the ROS 2 policy node against the sim bridge (colcon-built), and draw its memory.
demo: setup
	$(PY) -m training.demo

# The supervised copy-task learning check of the DNC core.
copy-task: setup
	$(PY) -m training.copy_task

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m dnc_core.bench
	$(PY) -m sim.bench
	$(PY) -m training.bench

# On a machine with an NVIDIA GPU: the exported policy on the CPU, CUDA (without and with
# CUDA graphs) and TensorRT providers at batch 1 and 64, each parity-checked, and a minute
# of training on CUDA vs CPU, as one table (docs/BENCHMARKS.md). It needs a CUDA build of
# torch and onnxruntime-gpu in place of onnxruntime (the two packages cannot share a venv):
#   make clean && make setup TORCH_SPEC=torch
#   $(VENV)/bin/pip uninstall -y onnxruntime && $(VENV)/bin/pip install onnxruntime-gpu
#   make gpu-check TORCH_SPEC=torch
# (a later reinstall by setup, after pyproject.toml or this file changed, brings the CPU
# onnxruntime back beside it: swap it out again.)
# Options go in GPU_CHECK_ARGS, e.g. GPU_CHECK_ARGS="--checkpoint runs/<run>".
gpu-check: setup
	$(PY) -m export.gpu_check $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
