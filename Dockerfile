# syntax=docker/dockerfile:1
# Two images from one file:
#   --target service : slim Cloud Run service (REST API, dispatcher, Slack bot, notifier); no torch.
#   --target worker  : GPU training worker for Cloud Run Jobs (torch CUDA 12 build, Ultralytics, W&B).
# Cloud Run provides the NVIDIA driver; the torch wheels carry the CUDA runtime libraries.

FROM python:3.11-slim AS source
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml constraints.txt README.md ./
COPY config ./config
COPY orchestrator ./orchestrator
COPY bot ./bot
COPY worker ./worker

FROM source AS service
RUN pip install -c constraints.txt ".[gcp]"
ENV LAXAI_BACKEND=gcp PORT=8080 LAXAI_HOME=/tmp/laxai
USER nobody
EXPOSE 8080
CMD ["sh", "-c", "exec laxai serve --host 0.0.0.0 --port ${PORT} --log-level info"]

FROM source AS worker
# OpenCV (pulled in by Ultralytics) needs these shared libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
# Cloud Run's L4 runs NVIDIA driver 535 (CUDA 12.2). PyPI's default torch 2.14 wheel is built for
# CUDA 13.0, which needs a 580 driver: torch.cuda.is_available() would be False there and the job
# would train on the CPU. torch 2.14's CUDA 12 build is cu126 (its matrix: 12.6, 13.0, 13.2), which
# runs on any 12.x driver >= 525 and carries sm_86 code that the L4 (sm_89) executes. Same versions
# as constraints.txt, so the rest of the install keeps them.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}+cu126" "torchvision==${TORCHVISION_VERSION}+cu126"
RUN pip install -c constraints.txt ".[worker,gcp]"
# Fail the build unless the installed torch (after everything else was installed) is a CUDA 12 build.
RUN python -c "import torch, sys; cuda = torch.version.cuda or 'none'; print('torch', torch.__version__, 'CUDA', cuda); sys.exit(0 if cuda.startswith('12') else 'torch ' + torch.__version__ + ' is built for CUDA ' + cuda + ', not 12.x: Cloud Run L4 driver 535 cannot run it')"
# Not root: the worker runs users' training code. LAXAI_HOME is the Cloud Run job's in-memory volume
# (deploy.sh mounts it at /var/laxai with an explicit size limit); the directory here serves `docker run`.
RUN groupadd --system --gid 10001 laxai \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/laxai --create-home laxai
ENV LAXAI_BACKEND=gcp LAXAI_HOME=/var/laxai WANDB_DIR=/var/laxai/wandb YOLO_CONFIG_DIR=/var/laxai/ultralytics
USER 10001:10001
# TASK_ID and ATTEMPT come from the execution's overrides (CloudRunJobLauncher).
CMD ["python", "-m", "worker"]
