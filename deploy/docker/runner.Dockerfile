# syntax=docker/dockerfile:1
# The runner service. Build from the repository root:
#   docker build -f deploy/docker/runner.Dockerfile -t harmeval/runner:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, in a layer that sees only the packages' pyproject.toml files: a code
# change does not rebuild it. Only the kernel's and this service's (no other service's).
COPY deploy/docker/dependencies.py /tmp/dependencies.py
COPY lib/pyproject.toml /src/lib/pyproject.toml
COPY services/runner/pyproject.toml /src/services/runner/pyproject.toml
RUN python /tmp/dependencies.py /src/lib "/src/services/runner" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY lib /src/lib
COPY services/runner /src/services/runner
RUN pip install --no-deps /src/lib /src/services/runner \
    && pip check && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 harmeval \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin harmeval
COPY --from=build /opt/venv /opt/venv
# HOME=/tmp: the root filesystem is read-only in Kubernetes; /tmp is an emptyDir there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HARMEVAL_DATA_DIR=/var/lib/harmeval \
    HARMEVAL_RUNNER_ADDRESS=0.0.0.0:50054 \
    HARMEVAL_RUNNER_PROMETHEUS_PORT=9454
USER 10001:10001
EXPOSE 50054 9454
ENTRYPOINT ["python", "-m", "harmeval_runner"]
