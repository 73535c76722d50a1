#!/usr/bin/env bash
# CUDA checks for a machine with an NVIDIA GPU (not run in CI; installs nothing):
#   1. the CUDA parity tests with real CUDA on the VGG layer shapes at batch 100
#      (FASTNET_CUDA_FULL=1, production launch sizes);
#   2. the VGG training-step benchmark next to PyTorch (when torch imports), after
#      checking one step's loss and gradients against torch autograd;
#   3. the CUDA parity tests on the tiny edge-case shapes with shrunk launch sizes
#      (several blocks, grid-stride loops, partial tiles, split-K), as in the simulator.
# Needs numpy, numba-cuda and pytest in $PYTHON (default: python); under 5 minutes.
# Usage, from anywhere: tests/gpu/check.sh [bench_gpu.py arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
unset NUMBA_ENABLE_CUDASIM
export NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0  # the tiny test grids are deliberate

"$PYTHON" - <<'PY'
from numba import cuda

assert cuda.is_available(), "no CUDA GPU visible to numba-cuda"
print("GPU:", cuda.get_current_device().name)
PY

tests=(-q -p no:cacheprovider tests/kernels/test_cuda.py)
FASTNET_CUDA_FULL=1 timeout 150 "$PYTHON" -m pytest "${tests[@]}"
PYTHONPATH=. timeout 90 "$PYTHON" tests/gpu/bench_gpu.py "$@"
timeout 60 "$PYTHON" -m pytest "${tests[@]}"
