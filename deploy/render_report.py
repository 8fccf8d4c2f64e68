"""Renders every kustomization under deploy/k8s, and every overlay with the optional
components meant for it (COMBINATIONS), and reports what each holds.

    python deploy/render_report.py                 # objects per kustomization, by kind
    python deploy/render_report.py --json          # the same as JSON
    python deploy/render_report.py --export-rules  # rewrite deploy/monitoring/harmeval.rules.yml

The PrometheusRule in deploy/k8s/components/monitoring is the one source of the rule groups;
`--export-rules` writes them as a plain rule file for Prometheus servers without the operator
(tests/deploy fails when the exported file is stale).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = {
    "base": K8S / "base",
    "local": K8S / "overlays" / "local",
    "gpu": K8S / "overlays" / "gpu",
    "production": K8S / "overlays" / "production",
}
# Optional components on top of an overlay, rendered like the overlays: name -> (overlay, the
# components under deploy/k8s/components an operator adds to it). Every optional component
# with every overlay it is meant for.
COMBINATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "production+keda": ("production", ("keda",)),
    "gpu+keda": ("gpu", ("keda",)),
    # Mutual TLS is part of production (and gpu); on a laptop cluster with cert-manager.
    "local+tls": ("local", ("tls",)),
}
PROMETHEUS_RULE = K8S / "components" / "monitoring" / "prometheusrule.yaml"
EXPORTED_RULES = DEPLOY / "monitoring" / "harmeval.rules.yml"
EXPORT_HEADER = (
    "# Exported from deploy/k8s/components/monitoring/prometheusrule.yaml by\n"
    "# `python deploy/render_report.py --export-rules`: edit that file, not this one.\n"
)


def render(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH` parsed into objects; raises with kubectl's message on failure."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FileNotFoundError("kubectl is not installed (it brings kustomize)")
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_combination(overlay: str, components: tuple[str, ...]) -> list[dict[str, Any]]:
    """An overlay with extra components, as an operator's own kustomization would add them: a
    throwaway kustomization.yaml with the overlay's namespace and labels, naming the overlay
    and the components by relative path (kustomize refuses absolute ones)."""
    base = yaml.safe_load((KUSTOMIZATIONS[overlay] / "kustomization.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="harmeval-kustomize-") as tmp:

        def rel(path: Path) -> str:
            return os.path.relpath(path, tmp)

        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": base["namespace"],
            "labels": base["labels"],
            "resources": [rel(KUSTOMIZATIONS[overlay])],
            "components": [rel(K8S / "components" / c) for c in components],
        }
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return render(Path(tmp))


def render_all() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization and every combination, by name."""
    rendered = {name: render(path) for name, path in KUSTOMIZATIONS.items()}
    for name, (overlay, components) in COMBINATIONS.items():
        rendered[name] = render_combination(overlay, components)
    return rendered


def counts(objects: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(o["kind"] for o in objects).items()))


def exported_rules_text() -> str:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    body = yaml.safe_dump(rule["spec"], sort_keys=False, width=100, allow_unicode=True)
    return EXPORT_HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument(
        "--export-rules", action="store_true", help=f"rewrite {EXPORTED_RULES.relative_to(DEPLOY)}"
    )
    args = parser.parse_args(argv)
    if args.export_rules:
        EXPORTED_RULES.write_text(exported_rules_text())
        print(f"wrote {EXPORTED_RULES}")
        return 0
    report = {name: counts(objects) for name, objects in render_all().items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, by_kind in report.items():
        total = sum(by_kind.values())
        detail = ", ".join(f"{kind} {n}" for kind, n in by_kind.items())
        print(f"{name:<16} {total:>3} objects: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
