#!/usr/bin/env bash
# The worker-overhead comparison (benchmark item 4) on a GPU, with GPU utilisation; under 8 minutes.
#
# Run on the GPU machine from the repository root, with .whl/ (made here by bench/gpu_wheels.sh) carried:
#   bench/gpu_check.sh            # imgsz 640, 384 synthetic images, 3 epochs, device 0, pairs while they fit
#   bench/gpu_check.sh --cpu      # the same code on the CPU at a tiny size (to try the script anywhere)
#   EXPECT_CUDA=13 bench/gpu_check.sh   # the torch CUDA major it asserts on a GPU (default 12, as the worker image)
# It installs the wheels into /tmp/site (no network there), prints the system/bare ratios of train()
# wall time and peak RSS and the GPU utilisation during each side's train(), and writes gpu.json and
# gpu.md into $OUT (the device tool's output folder) or /tmp/laxai-gpu-check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
started=$(date +%s)

if ! "$PY" -c "import ultralytics, pydantic_settings, fastapi, uvicorn, polars" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "missing packages and no .whl/: run bench/gpu_wheels.sh where pip works, and carry .whl" >&2
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # orchestrator, worker and bench from this checkout
# W&B is not in the wheel set (size): the worker then skips it, as WANDB_MODE=disabled says.
"$PY" -c "import wandb" 2>/dev/null || export WANDB_MODE=disabled
export PYTHONUNBUFFERED=1
echo "python: $("$PY" --version 2>&1); torch: $("$PY" -c 'import torch; print(torch.__version__, torch.cuda.is_available())')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
# On a GPU, torch must be the CUDA build the worker image ships (12.x: Cloud Run's L4 driver 535 runs
# no CUDA 13 build) and must see the device; else the comparison would time the CPU. EXPECT_CUDA=13
# checks a machine whose preinstalled torch is a CUDA 13 build instead.
if [[ " $* " != *" --cpu "* ]]; then
  EXPECT_CUDA=${EXPECT_CUDA:-12} "$PY" - <<'PY' || exit 1
import os, sys, torch
expect, cuda = os.environ["EXPECT_CUDA"], torch.version.cuda or "none"
driver = os.popen("nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null").read().strip()
if not cuda.startswith(expect + "."):
    sys.exit(f"torch {torch.__version__} is built for CUDA {cuda}, expected {expect}.x (driver {driver or 'unknown'})")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} (CUDA {cuda}) sees no GPU (driver {driver or 'unknown'})")
print(f"CUDA check: torch {torch.__version__}, CUDA {cuda}, driver {driver}, {torch.cuda.get_device_name(0)}")
PY
fi
echo "set-up took $(( $(date +%s) - started )) s"

out=${OUT:-/tmp/laxai-gpu-check}
# The comparison stops adding pairs past --budget seconds; timeout is the hard stop.
timeout 420 "$PY" -m bench.gpu --budget 300 --out "$out" "$@"
echo "gpu_check took $(( $(date +%s) - started )) s; results in $out"
