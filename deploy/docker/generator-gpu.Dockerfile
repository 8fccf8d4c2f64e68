# syntax=docker/dockerfile:1
# The generator service, GPU variant: vLLM on a CUDA base (llama.cpp stays in as the fallback
# backend the CPU variant uses). Models come from the model-cache volume, not the image.
# Build from the repository root (`make images-gpu` builds it with podman; no GPU needed):
#   docker build -f deploy/docker/generator-gpu.Dockerfile -t harmeval/generator-gpu:0.1.0 .
# The PyPI vllm wheel brings torch and the CUDA user-space libraries it was built against
# (vllm 0.33.0: torch 2.14.0+cu130, CUDA 13.0); the base image's CUDA major version must match
# them and the nodes' driver must support it (CUDA 13: driver >= 580).
# CUDA_IMAGE: a Debian or Ubuntu image with python3 >= 3.11 in its apt sources: the CUDA 13.0
# runtime image, or the Debian bookworm base `make images-gpu` makes with mmdebstrap where no
# registry can be reached (the wheels' own CUDA libraries then serve; the NVIDIA variables
# below let the container toolkit add the driver either way).
# The generator is installed with [vllm] only, not [tgi]: text-generation cannot be installed
# beside vLLM (huggingface-hub <1.0 against >=1.31), so a models file here names no tgi model.
ARG CUDA_IMAGE=nvidia/cuda:13.0.3-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04's python3 is 3.12, Debian bookworm's 3.11 (the project needs >= 3.11).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       python3 python3-venv python3-dev build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, in a layer that sees only the packages' pyproject.toml files: a code
# change does not rebuild it. Only the kernel's and this service's (no other service's).
# pip's cache lives in a cache mount, kept between builds and never in a layer.
COPY deploy/docker/dependencies.py /tmp/dependencies.py
COPY lib/pyproject.toml /src/lib/pyproject.toml
COPY services/generator/pyproject.toml /src/services/generator/pyproject.toml
RUN --mount=type=cache,id=harmeval-pip,target=/root/.cache/pip,sharing=locked \
    python3 /tmp/dependencies.py /src/lib "/src/services/generator[vllm]" > /tmp/requirements.txt \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -r /tmp/requirements.txt
COPY lib /src/lib
COPY services/generator /src/services/generator
# requirements.lock: every distribution in the venv, pinned, shipped in the image. torch's
# test helpers hold Python 3.12 syntax: on 3.11 (Debian's) they cannot be compiled, and the
# service never imports them.
RUN pip install --no-cache-dir --no-deps /src/lib /src/services/generator \
    && pip check && python -m compileall -q -x '/site-packages/torch/testing/' /opt/venv \
    && mkdir -p /opt/harmeval && pip list --format=freeze > /opt/harmeval/requirements.lock

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# The same python3 the venv was built with; libgomp1 for llama.cpp's OpenMP runtime. The data
# dir exists and belongs to the service user, for runs without a volume there.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 harmeval \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin harmeval \
    && install -d -o 10001 -g 10001 /var/lib/harmeval
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/harmeval /opt/harmeval
# HF_HOME on the model-cache volume: downloads survive restarts and are shared between pods.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HOME=/models/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HARMEVAL_DATA_DIR=/var/lib/harmeval \
    HARMEVAL_GENERATOR_ADDRESS=0.0.0.0:50051 \
    HARMEVAL_GENERATOR_PROMETHEUS_PORT=9451
USER 10001:10001
EXPOSE 50051 9451
ENTRYPOINT ["python", "-m", "harmeval_generator"]
# Last, so a new commit rebuilds no layer above.
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="harmeval-generator-gpu" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
