# syntax=docker/dockerfile:1
# The annotation app (HTTP: people label answers in the browser; templates and static files are
# package data). Build from the repository root (`make images` builds every image with
# podman; see deploy/README.md):
#   docker build -f deploy/docker/annotator.Dockerfile -t harmeval/annotator:0.1.0 .
# PYTHON_IMAGE: a Debian-based image with python3 >= 3.11 and its venv module, the same in
# both stages (the venv links to its python3): the public python image, or the Debian bookworm
# base `make images` makes with mmdebstrap where no registry can be reached.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, in a layer that sees only the packages' pyproject.toml files: a code
# change does not rebuild it. Only the kernel's and this service's (no other service's).
# pip's cache lives in a cache mount, kept between builds and never in a layer.
COPY deploy/docker/dependencies.py /tmp/dependencies.py
COPY lib/pyproject.toml /src/lib/pyproject.toml
COPY services/annotator/pyproject.toml /src/services/annotator/pyproject.toml
RUN --mount=type=cache,id=harmeval-pip,target=/root/.cache/pip,sharing=locked \
    python /tmp/dependencies.py /src/lib "/src/services/annotator" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY lib /src/lib
COPY services/annotator /src/services/annotator
# requirements.lock: every distribution in the venv, pinned, shipped in the image.
RUN pip install --no-cache-dir --no-deps /src/lib /src/services/annotator \
    && pip check && python -m compileall -q /opt/venv \
    && mkdir -p /opt/harmeval && pip list --format=freeze > /opt/harmeval/requirements.lock

FROM ${PYTHON_IMAGE}
# The data dir exists and belongs to the service user, for runs without a volume there.
RUN groupadd --gid 10001 harmeval \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin harmeval \
    && install -d -o 10001 -g 10001 /var/lib/harmeval
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/harmeval /opt/harmeval
# HOME=/tmp: the root filesystem is read-only in Kubernetes; /tmp is an emptyDir there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HARMEVAL_DATA_DIR=/var/lib/harmeval \
    HARMEVAL_ANNOTATOR_ADDRESS=0.0.0.0:8470 \
    HARMEVAL_ANNOTATOR_PROMETHEUS_PORT=9455
USER 10001:10001
EXPOSE 8470 9455
ENTRYPOINT ["python", "-m", "harmeval_annotator"]
# Last, so a new commit rebuilds no layer above.
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="harmeval-annotator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
