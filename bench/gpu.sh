#!/usr/bin/env bash
# The GPU path, measured, in one run on a machine with a CUDA GPU: bench/bench_gpu.py at paper scale (its docstring
# says what is timed and how); about 5 minutes on an H200. Record the printed tables in bench/RESULTS.md with the GPU named.
#
#   bash bench/gpu.sh [OUT.json]        # default OUT: bench/gpu-YYYYmmdd-HHMM.json
#
# PYTHON (default: .venv/bin/python where it exists, else python3) needs torch with CUDA and Triton, and this package's
# dependencies; the package itself is taken from this checkout. SpikingJelly 2.0 is compared where it imports
# (pip install --no-deps spikingjelly==2.0.0); without it that row is skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
out=${1:-bench/gpu-$(date +%Y%m%d-%H%M).json}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "gpu.sh: no NVIDIA GPU answers here (nvidia-smi)"; exit 1; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RSNN_PROGRESS=0 PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, robustsparsesnn; assert torch.cuda.is_available(), 'torch sees no CUDA device'" \
    || { echo "gpu.sh: $PYTHON cannot import torch with CUDA and robustsparsesnn's dependencies (pyproject.toml)"; exit 1; }
"$PYTHON" -c "import triton" 2>/dev/null || echo "gpu.sh: no Triton: the IF neuron's compiled graph cannot run on the GPU; the torch loop is timed in its place"
"$PYTHON" bench/bench_gpu.py --device cuda --out "$out"
