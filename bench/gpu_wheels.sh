#!/usr/bin/env bash
# Download, here, the wheels the GPU machine lacks into .whl/ (Python 3.12, manylinux x86_64).
#
# The GPU machine (no network) has Python 3.12 with torch, torchvision, numpy, opencv-python-headless,
# matplotlib, pillow, pyyaml, requests, scipy, psutil, httpx, rich, h11 and more, but not ultralytics,
# polars, pydantic(-settings), fastapi, starlette, uvicorn or wandb. Each wheel is fetched without its
# dependencies (--no-deps), so every one needed is listed here, pinned to the versions of .venv.
# W&B is left out: its wheel (20 MB) would take the set past the 64 MiB a device call may carry, so
# bench/gpu_check.sh runs with WANDB_MODE=disabled. Usage, from the repository root:
#   bench/gpu_wheels.sh        # then carry .whl to the GPU machine and run bench/gpu_check.sh there
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
  # Ultralytics and what it needs beyond the machine's packages (polars: its trainer writes results.csv)
  ultralytics==8.4.190 ultralytics-thop==2.2.3 ultralytics-platform==0.1.99
  polars==2.1.0 polars-runtime-32==2.1.0
  # Settings and domain models
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0 pydantic-settings==2.16.3 python-dotenv==1.2.4
  # The service (laxai serve): REST API, ASGI server, CLI
  fastapi==0.165.0 starlette==1.10.0 annotated-doc==0.0.7 opentelemetry-api==1.45.2 anyio==4.16.0
  uvicorn==0.54.0 typer==0.29.2 click==8.5.1
)

rm -rf .whl
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}" 2>&1 \
  | grep -v "^WARNING: Location" || true
count=$(ls .whl/*.whl | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
  echo "expected ${#WHEELS[@]} wheels, got $count" >&2
  exit 1
fi
mib=$(du -sm .whl | cut -f1)
echo "$count wheels, ${mib} MiB in .whl/ (a device call carries at most 64 MiB, the repository included)"
if [ "$mib" -gt 62 ]; then
  echo "too large to carry with the repository" >&2
  exit 1
fi
