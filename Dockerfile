# syntax=docker/dockerfile:1
# Two images from one file:
#   --target service : slim Cloud Run service (REST API, dispatcher, Slack bot, notifier); no torch.
#   --target worker  : GPU training worker for Cloud Run Jobs (torch CUDA build, Ultralytics, W&B).
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
RUN pip install -c constraints.txt ".[worker,gcp]"
ENV LAXAI_BACKEND=gcp LAXAI_HOME=/tmp/laxai WANDB_DIR=/tmp/laxai/wandb YOLO_CONFIG_DIR=/tmp/laxai/ultralytics
# TASK_ID and ATTEMPT come from the execution's overrides (CloudRunJobLauncher).
CMD ["python", "-m", "worker"]
