"""Every kustomization (and every overlay with its optional components) renders with
`kubectl kustomize`, every rendered object validates offline against the Kubernetes schema, and
the objects say what the design needs: the service shape, headless Services behind every
internal `dns:///` target, gRPC probes, security, grace periods, settings, one autoscaler per
workload, and each overlay's extras."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from harmeval import settings as settings_module
from tests.deploy.conftest import (
    APPS,
    SERVICES,
    WORKLOADS,
    default_deny,
    find,
    one,
    render_report,
)

KUSTOMIZATIONS = (*render_report.KUSTOMIZATIONS, *render_report.COMBINATIONS)


def overlay_of(name: str) -> str:
    """The kustomization under deploy/k8s a rendered name is built on (itself, or the overlay
    of a combination)."""
    return render_report.COMBINATIONS[name][0] if name in render_report.COMBINATIONS else name


# Renderings with the production overlay's extras (autoscaling, PDBs, NetworkPolicies,
# monitoring): production, gpu, and both with optional components.
PRODUCTION_LIKE = tuple(n for n in KUSTOMIZATIONS if overlay_of(n) in ("production", "gpu"))


def k8s_id(name: str) -> str:
    """Test ids `k8s-gpu`, not `gpu`: the root conftest skips every test with a `gpu` keyword."""
    return f"k8s-{name}"


# The oldest Kubernetes minor harmeval supports (native gRPC probes are GA since 1.27) and
# the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
SCHEMAS = Path(__file__).parent / "schemas"
# Custom resources: hand-written strict schemas (the operators' CRDs are not in
# kubernetes-validate), one per kind harmeval uses.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SCHEMAS / "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): SCHEMAS / "prometheusrule-monitoring-v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "scaledobject-keda-v1alpha1.json",
    ("cert-manager.io/v1", "Certificate"): SCHEMAS / "certificate-cert-manager-v1.json",
    ("cert-manager.io/v1", "Issuer"): SCHEMAS / "issuer-cert-manager-v1.json",
}
GRPC_PORTS = {"generator": 50051, "judge": 50052, "metrics": 50053, "runner": 50054}
METRICS_PORTS = {
    "generator": 9451,
    "judge": 9452,
    "metrics": 9453,
    "runner": 9454,
    "annotator": 9455,
}
# The annotation app's HTTP port (people's browsers, through an Ingress).
HTTP_PORTS = {"annotator": 8470}
# The plaintext grpc.health.v1-only port (HARMEVAL_HEALTH_ADDRESS) the probes use: kubelet's
# gRPC probes cannot do TLS. The same in every pod.
HEALTH_PORT = 8081
# Imported when a test needs them, so a service package that is not installed fails only
# those tests.
SETTINGS_CLASSES = {
    "generator": ("harmeval_generator.settings", "GeneratorSettings"),
    "judge": ("harmeval_judge.settings", "JudgeSettings"),
    "metrics": ("harmeval_metrics.settings", "MetricsSettings"),
    "runner": ("harmeval_runner.settings", "RunnerSettings"),
    "annotator": ("harmeval_annotator.settings", "AnnotatorSettings"),
}
# The services each one calls over gRPC (HARMEVAL_<CALLER>_<CALLEE>_TARGET).
CALLS = {
    "metrics": {"generator", "judge"},
    "runner": {"generator", "judge", "metrics"},
    "annotator": {"metrics"},
}
# Secrets the cluster must already hold (created from a secret manager, never committed), by
# the overlay a rendering is built on; the others are generated (local) or made by
# cert-manager (components/tls). tests/deploy/test_security.py checks the list both ways.
PRODUCTION_SECRETS = {"harmeval-database", "harmeval-tokens", "harmeval-judge-backend-keys"}
EXTERNAL_SECRETS = {
    # Without components/tls the runner and the metrics service call the others with tokens.
    "base": PRODUCTION_SECRETS | {"harmeval-service-tokens"},
    "local": set(),
    "production": PRODUCTION_SECRETS,
    "gpu": PRODUCTION_SECRETS | {"harmeval-hf-token"},
}
# In-cluster gRPC targets: a headless Service's fully qualified name, resolved by gRPC's DNS
# resolver to every ready pod.
DNS_TARGET = re.compile(
    r"dns:///(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc\.cluster\.local:(?P<port>\d+)"
)
# Settings the manifests set before the services read them; each needs its code change.
PLANNED_SETTINGS: dict[str, str] = {}
# The longest RPC each service may be handling when SIGTERM comes. Generator: a full batch on
# CPU (256 prompts x 64 tokens at ~60 tokens/s is ~270 s). Judge: computed from its settings.
LONGEST_GENERATION_SECONDS = 300
# The annotation app's longest request: PlanLabelling's deadline (harmeval_annotator.app).
LONGEST_ANNOTATOR_REQUEST_SECONDS = 60
# The openai client honours a server's Retry-After up to this long between attempts.
OPENAI_MAX_RETRY_WAIT_SECONDS = 60


# --- helpers ---------------------------------------------------------------------------------


def settings_class(service: str) -> Any:
    module, name = SETTINGS_CLASSES[service]
    return getattr(importlib.import_module(module), name)


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "server"]
    return container


def server_or_only(workload: dict[str, Any]) -> dict[str, Any]:
    """The `server` container, or the workload's only container (Postgres)."""
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    if len(containers) == 1:
        return containers[0]
    return server(workload)


def effective_env(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env (env wins).
    Secret values are not in the manifests: they read as `<secret NAME/KEY>`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
            env[var["name"]] = f"<secret {ref['name']}/{ref['key']}>"
    return env


def judge_backends(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The judge's declared backends: HARMEVAL_JUDGE_BACKENDS_FILE, a file of the ConfigMap
    mounted where it points."""
    deployment = one(objects, "Deployment", "judge")
    container = server(deployment)
    path = effective_env(objects, container)["HARMEVAL_JUDGE_BACKENDS_FILE"]
    folder, key = path.rsplit("/", 1)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    config = one(objects, "ConfigMap", volume["configMap"]["name"])
    backends: list[dict[str, Any]] = yaml.safe_load(config["data"][key])["backends"]
    return backends


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        ok = {
            "In": present and value in expr.get("values", []),
            "NotIn": not present or value not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expr["operator"]]
        if not ok:
            return False
    return True


def pod_labels(objects: list[dict[str, Any]], app: str) -> dict[str, str]:
    labels: dict[str, str] = one(objects, "Deployment", app)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


# --- rendering and schema validation ----------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_kustomization_renders(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    objects = rendered[name]
    counts = render_report.counts(objects)
    print(f"{name}: {len(objects)} objects {counts}")
    assert objects
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == "harmeval", (
                f"{o['kind']}/{o['metadata']['name']}"
            )
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"


def test_every_component_is_rendered() -> None:
    """Each component under deploy/k8s/components is part of some rendering: an overlay's
    `components`, or a combination in render_report.COMBINATIONS."""
    components_dir = render_report.K8S / "components"
    used = {c for _, extra in render_report.COMBINATIONS.values() for c in extra}
    for path in render_report.KUSTOMIZATIONS.values():
        kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
        for ref in kustomization.get("components", []):
            used.add((path / ref).resolve().relative_to(components_dir).as_posix())
    assert used == {d.name for d in components_dir.iterdir() if d.is_dir()}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_objects_validate_against_kubernetes_schema(
    rendered: dict[str, list[dict[str, Any]]], name: str, version: str
) -> None:
    """Strict: a field the schema does not know is an error, not a warning."""
    problems = []
    for o in rendered[name]:
        what = f"{o['kind']}/{o['metadata']['name']}"
        crd = CRD_SCHEMAS.get((o["apiVersion"], o["kind"]))
        try:
            if crd is not None:
                jsonschema.Draft202012Validator(json.loads(crd.read_text())).validate(o)
            else:
                kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{what}: no schema for {o['apiVersion']} in Kubernetes {version}")
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            problems.append(f"{what}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)


MISSPELT = {
    "ServiceMonitor": (
        {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
        "intervall",
    ),
    "ScaledObject": (
        {
            "scaleTargetRef": {"name": "runner"},
            "minReplicas": 2,
            "triggers": [{"type": "cpu", "metadata": {"value": "75"}}],
        },
        "minReplicas",
    ),
    "Certificate": (
        {
            "secretName": "harmeval-judge-tls",
            "issuerRef": {"name": "harmeval-ca"},
            "dnsName": ["judge"],
        },
        "dnsName",
    ),
    "Issuer": ({"selfsigned": {}}, "selfsigned"),
}


@pytest.mark.parametrize("kind", MISSPELT)
def test_crd_schemas_reject_a_misspelt_field(kind: str) -> None:
    """The hand-written CRD schemas are strict, like kubernetes-validate's."""
    (api_version,) = [v for v, k in CRD_SCHEMAS if k == kind]
    spec, misspelt = MISSPELT[kind]
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    schema = json.loads(CRD_SCHEMAS[(api_version, kind)].read_text())
    with pytest.raises(jsonschema.ValidationError, match=misspelt):
        jsonschema.Draft202012Validator(schema).validate(obj)


# --- the four services ----------------------------------------------------------------------


def workload(objects: list[dict[str, Any]], app: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`app`'s Deployment and Service, checked for what every workload shares: a
    ServiceAccount of its own, and the `app` label selecting its pods."""
    deployment = one(objects, "Deployment", app)
    svc = one(objects, "Service", app)
    one(objects, "ServiceAccount", app)
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": app}
    assert pod["metadata"]["labels"]["app"] == app
    assert svc["spec"]["selector"] == {"app": app}
    assert pod["spec"]["serviceAccountName"] == app
    return deployment, svc


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_service_shape_and_probes(
    rendered: dict[str, list[dict[str, Any]]], name: str, service: str
) -> None:
    objects = rendered[name]
    deployment, svc = workload(objects, service)
    # Headless: the name resolves to every ready pod (clients balance with round_robin), and
    # only ready ones: a draining pod leaves DNS before it stops serving.
    assert svc["spec"]["clusterIP"] == "None"
    assert not svc["spec"].get("publishNotReadyAddresses", False)

    container = server(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "grpc": GRPC_PORTS[service],
        "metrics": METRICS_PORTS[service],
        "health": HEALTH_PORT,
    }
    # The health port is for the kubelet on the pod's own address: no Service offers it.
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert set(svc_ports) == {"grpc", "metrics"}
    assert svc_ports["grpc"]["targetPort"] == "grpc"
    assert svc_ports["metrics"]["targetPort"] == "metrics"

    env = effective_env(objects, container)
    # The service binds all interfaces on the port the probes and the Service use, and
    # /metrics on the container's `metrics` port.
    assert env[f"HARMEVAL_{service.upper()}_ADDRESS"] == f"0.0.0.0:{ports['grpc']}"
    assert int(env[f"HARMEVAL_{service.upper()}_PROMETHEUS_PORT"]) == ports["metrics"]
    assert env["HARMEVAL_HEALTH_ADDRESS"] == f"0.0.0.0:{ports['health']}"
    # From a Secret (name hash-suffixed where the overlay generates it).
    assert re.fullmatch(
        r"<secret harmeval-database(-[a-z0-9]{10})?/url>", env["HARMEVAL_DATABASE_URL"]
    )

    # Native gRPC probes on the plaintext health-only port (a gRPC probe's port is a number,
    # never a name). Liveness and start-up ask the process's status (""); readiness asks the
    # service's own name, which also says whether its database answers: an outage takes pods
    # out of rotation instead of restarting every one of them.
    full_name = {
        "generator": "harmeval.generator.v1.GeneratorService",
        "judge": "harmeval.judge.v1.JudgeService",
        "metrics": "harmeval.metrics.v1.MetricsService",
        "runner": "harmeval.runner.v1.RunnerService",
    }[service]
    for probe, asked in (
        ("startupProbe", ""),
        ("readinessProbe", full_name),
        ("livenessProbe", ""),
    ):
        assert container[probe]["grpc"] == {"port": ports["health"], "service": asked}, probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_app_shape_and_probes(
    rendered: dict[str, list[dict[str, Any]]], name: str, app: str
) -> None:
    """The annotation app: Deployment, Service and ServiceAccount as the services have, but
    HTTP: ports `http` and `metrics` (no health-only port), a Service with a virtual IP (HTTP
    clients need no client-side balancing), and httpGet probes: start-up and readiness on
    /healthz (which asks the database), liveness on a page that does not (a database outage
    takes pods out of rotation, it does not restart them)."""
    objects = rendered[name]
    deployment, svc = workload(objects, app)
    assert svc["spec"].get("clusterIP") != "None"

    container = server(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": HTTP_PORTS[app], "metrics": METRICS_PORTS[app]}
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert set(svc_ports) == {"http", "metrics"}
    for port in ("http", "metrics"):
        assert svc_ports[port]["targetPort"] == port
        assert svc_ports[port]["appProtocol"] == "http"

    env = effective_env(objects, container)
    assert env[f"HARMEVAL_{app.upper()}_ADDRESS"] == f"0.0.0.0:{ports['http']}"
    assert int(env[f"HARMEVAL_{app.upper()}_PROMETHEUS_PORT"]) == ports["metrics"]
    assert re.fullmatch(
        r"<secret harmeval-database(-[a-z0-9]{10})?/url>", env["HARMEVAL_DATABASE_URL"]
    )
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/healthz"),
        ("livenessProbe", "/livez"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_pods_are_locked_down(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    """runAsNonRoot, read-only root, no capabilities, requests and limits: every container."""
    for workload in workloads(rendered[name]):
        what = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, what
        assert spec["securityContext"]["runAsUser"] > 0, what
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, what
        assert spec["automountServiceAccountToken"] is False, what
        assert spec["enableServiceLinks"] is False, what
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, what
            assert sc["readOnlyRootFilesystem"] is True, what
            assert sc["capabilities"] == {"drop": ["ALL"]}, what
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{what}: {kind}"
            # Writable paths are volumes: /tmp everywhere, the data dir for the services.
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, what
            env = effective_env(rendered[name], c)
            if "HARMEVAL_DATA_DIR" in env:
                assert env["HARMEVAL_DATA_DIR"] in mounts, what


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_grace_periods_outlast_the_longest_request(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    for service in WORKLOADS:
        deployment = one(objects, "Deployment", service)
        env = effective_env(objects, server(deployment))
        grace = float(env["HARMEVAL_GRACE_SECONDS"])
        termination = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # The kubelet's SIGKILL must come after the service's own drain has ended.
        assert termination >= grace + 10, f"{service}: {termination} s vs drain {grace} s"
        if service == "judge":
            retries = int(env["HARMEVAL_JUDGE_LLM_MAX_RETRIES"])
            timeout = float(env["HARMEVAL_JUDGE_LLM_TIMEOUT_SECONDS"])
            longest = (retries + 1) * timeout + retries * OPENAI_MAX_RETRY_WAIT_SECONDS
            assert grace >= longest, f"judge drains {grace} s, a call may take {longest} s"
        if service == "generator":
            assert grace >= LONGEST_GENERATION_SECONDS
        if service == "runner":
            # A generate job waits on the generator as long as its longest generation.
            assert grace >= LONGEST_GENERATION_SECONDS
        if service == "annotator":
            # Its longest request: opening a drawn queue waits on PlanLabelling.
            assert grace >= LONGEST_ANNOTATOR_REQUEST_SECONDS


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_settings_are_real_and_load(
    rendered: dict[str, list[dict[str, Any]]], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every HARMEVAL_ variable is a setting the services read (or a planned one), each
    service's settings load from the rendered environment without error, and every target
    setting a service has is set (a default of 127.0.0.1 never reaches a pod)."""
    classes = {service: settings_class(service) for service in WORKLOADS}
    known = {
        settings_module.env_name(f.name)
        for cls in classes.values()
        for f in dataclasses.fields(cls)
    }
    objects = rendered[name]
    planned_in: dict[str, list[str]] = {}
    for service in WORKLOADS:
        env = effective_env(objects, server(one(objects, "Deployment", service)))
        names = {k for k in env if k.startswith(settings_module.PREFIX)}
        unknown = names - known - set(PLANNED_SETTINGS)
        assert not unknown, f"{service}: not settings: {sorted(unknown)}"
        for planned in names & set(PLANNED_SETTINGS):
            planned_in.setdefault(planned, []).append(service)
        loaded: Any = settings_module.load(classes[service], environ=env)
        assert loaded.log_format == "json"
        targets = {
            settings_module.env_name(f.name)
            for f in dataclasses.fields(classes[service])
            if f.name.endswith("_target")
        }
        assert targets <= set(env), f"{service}: unset: {sorted(targets - set(env))}"
    for planned, services in sorted(planned_in.items()):
        with capsys.disabled():
            why = PLANNED_SETTINGS[planned]
            print(f"\n  PLANNED setting {planned} in {name} ({', '.join(services)}): {why}")


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_internal_targets_are_headless_services(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Every HARMEVAL_*_TARGET is `dns:///<service>.<namespace>.svc.cluster.local:<port>` of a
    headless Service in the rendering whose `grpc` port is that port and whose pods serve gRPC
    on it; each caller reaches exactly the services it calls; every gRPC server closes
    connections after HARMEVAL_GRPC_MAX_CONNECTION_AGE_S, so clients re-resolve."""
    objects = rendered[name]
    for caller in WORKLOADS:
        deployment = one(objects, "Deployment", caller)
        env = effective_env(objects, server(deployment))
        assert float(env["HARMEVAL_GRPC_MAX_CONNECTION_AGE_S"]) > 0, caller
        # The shared ConfigMap gives every pod every service's targets: check them all, and
        # that the caller's own are the services it calls.
        targets = {k: v for k, v in env.items() if re.fullmatch(r"HARMEVAL_\w+_TARGET", k)}
        prefix = f"HARMEVAL_{caller.upper()}_"
        called = {
            k.removeprefix(prefix).removesuffix("_TARGET").lower()
            for k in targets
            if k.startswith(prefix)
        }
        assert called == CALLS.get(caller, set()), caller
        for var, target in targets.items():
            match = DNS_TARGET.fullmatch(target)
            assert match, f"{caller} {var}={target!r}: not a dns:/// name of a Service"
            assert match["namespace"] == deployment["metadata"]["namespace"], (var, target)
            if var.startswith(prefix):
                callee = var.removeprefix(prefix).removesuffix("_TARGET").lower()
                assert match["service"] == callee, (var, target)
            svc = one(objects, "Service", match["service"])
            assert svc["spec"].get("clusterIP") == "None", f"{var}: {match['service']} not headless"
            ports = {p["name"]: p for p in svc["spec"]["ports"]}
            assert ports["grpc"]["port"] == int(match["port"]), (var, target)
            assert ports["grpc"]["targetPort"] == "grpc"
            # Headless: clients dial the pods themselves, on the container's port.
            backends = [
                d
                for d in find(objects, "Deployment")
                if selector_matches(
                    {"matchLabels": svc["spec"]["selector"]},
                    pod_labels(objects, d["metadata"]["name"]),
                )
            ]
            assert [d["metadata"]["name"] for d in backends] == [match["service"]], var
            container_ports = {p["name"]: p["containerPort"] for p in server(backends[0])["ports"]}
            assert container_ports["grpc"] == int(match["port"]), (var, target)


# --- overlays ---------------------------------------------------------------------------------


def test_local_overlay_runs_postgres_and_the_judge_model_in_cluster(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["local"]
    postgres = one(objects, "StatefulSet", "postgres")
    headless = one(objects, "Service", postgres["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    (db_secret,) = [
        o for o in find(objects, "Secret") if o["metadata"]["name"].startswith("harmeval-database")
    ]
    url = base64.b64decode(db_secret["data"]["url"]).decode()
    assert url.startswith(
        f"postgresql://harmeval:harmeval-local-only@{headless['metadata']['name']}:5432/"
    )

    password_file = effective_env(objects, server_or_only(postgres))["POSTGRES_PASSWORD_FILE"]
    (pg_secret,) = [
        o for o in find(objects, "Secret") if o["metadata"]["name"].startswith("postgres-")
    ]
    assert password_file.endswith("/password")
    assert base64.b64decode(pg_secret["data"]["password"]).decode() == "harmeval-local-only"

    env = effective_env(objects, server(one(objects, "Deployment", "judge")))
    judge_llm = one(objects, "Service", "judge-llm")
    port = judge_llm["spec"]["ports"][0]["port"]
    backends = {b["name"]: b for b in judge_backends(objects)}
    assert backends["default"]["base_url"] == f"http://judge-llm:{port}/v1"
    # The judge model server loads the Gemma file baked into the CPU generator image.
    generator_env = effective_env(objects, server(one(objects, "Deployment", "generator")))
    args = server(one(objects, "Deployment", "judge-llm"))["args"]
    assert f"--model={generator_env['HARMEVAL_GENERATOR_MODEL_PATH']}" in args
    assert "--model_alias=" + env["HARMEVAL_JUDGE_LLM_MODEL"] in args


def test_gpu_overlay_puts_the_generator_on_a_gpu(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["gpu"]
    deployment = one(objects, "Deployment", "generator")
    spec = deployment["spec"]["template"]["spec"]
    container = server(deployment)
    assert container["image"].startswith("harmeval/generator-gpu:")
    for kind in ("requests", "limits"):
        assert container["resources"][kind]["nvidia.com/gpu"] == "1"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    claim = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
    pvc = one(objects, "PersistentVolumeClaim", claim)
    # Several replicas share the cache.
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    env = effective_env(objects, container)
    assert env["HF_HOME"].startswith("/models/")
    # The Hub token as a file of an optional Secret (public models need none).
    assert "HF_TOKEN" not in env
    token_dir, token_file = env["HF_TOKEN_PATH"].rsplit("/", 1)
    hf_volume = volumes[mounts[token_dir]]["secret"]
    assert hf_volume["secretName"] == "harmeval-hf-token" and hf_volume["optional"] is True
    assert token_file == "token"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60
    hpa = one(objects, "HorizontalPodAutoscaler", "generator")
    assert [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]] == [
        "harmeval_generator_queue_depth"
    ]


def autoscalers(objects: list[dict[str, Any]], deployment: str) -> list[dict[str, Any]]:
    """The HPAs and KEDA ScaledObjects that scale a Deployment (KEDA's kind defaults to it)."""
    found = []
    for o in objects:
        if o["kind"] not in ("HorizontalPodAutoscaler", "ScaledObject"):
            continue
        target = o["spec"]["scaleTargetRef"]
        if (target.get("kind", "Deployment"), target["name"]) == ("Deployment", deployment):
            found.append(o)
    return found


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_one_autoscaler_per_workload(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    """No Deployment has two autoscalers (an HPA and KEDA's would fight over its replicas);
    where one has an autoscaler, the Deployment leaves the replica count to it (`kubectl
    apply` must not reset it). Production scales generator, judge and runner; the runner
    with the overlay's HPA or, with the keda component, with a ScaledObject instead."""
    objects = rendered[name]
    scaled = set()
    for deployment in find(objects, "Deployment"):
        dname = deployment["metadata"]["name"]
        found = autoscalers(objects, dname)
        assert len(found) <= 1, f"{dname}: {[(o['kind'], o['metadata']['name']) for o in found]}"
        if found:
            scaled.add(dname)
            assert "replicas" not in deployment["spec"], dname
    if name in PRODUCTION_LIKE:
        assert scaled == {"generator", "judge", "runner"}
        (runner,) = autoscalers(objects, "runner")
        keda = "keda" in render_report.COMBINATIONS.get(name, ("", ()))[1]
        assert runner["kind"] == ("ScaledObject" if keda else "HorizontalPodAutoscaler")
    else:
        assert scaled == set()


def _queue_query(query: str) -> None:
    """Every runner pod exports the same fleet-wide queue depth: a query must take one copy
    per entrypoint (max over pods), not add the pods' copies up."""
    assert re.search(
        r"max by \((namespace, )?entrypoint\) \(harmeval_runner_queue_depth\b", query
    ), query


@pytest.mark.parametrize("name", PRODUCTION_LIKE, ids=k8s_id)
def test_production_scales_and_survives_disruptions(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    for service in ("generator", "judge"):
        hpa = one(objects, "HorizontalPodAutoscaler", service)
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1
    for service in ("metrics", "annotator"):
        assert one(objects, "Deployment", service)["spec"]["replicas"] >= 2, service
    # The runner scales on its queue, and on CPU; it also serves the API, so never below two.
    (runner,) = autoscalers(objects, "runner")
    if runner["kind"] == "HorizontalPodAutoscaler":
        assert runner["spec"]["maxReplicas"] > runner["spec"]["minReplicas"] >= 2
        by_type = {m["type"]: m for m in runner["spec"]["metrics"]}
        assert set(by_type) == {"External", "Resource"}
        # Fleet-wide, not per pod: External with a per-replica AverageValue target (a Pods
        # metric's average would not fall as pods are added).
        queue = by_type["External"]["external"]
        assert queue["metric"]["name"] == "harmeval_runner_queue_depth"
        assert queue["target"]["type"] == "AverageValue"
        assert by_type["Resource"]["resource"]["name"] == "cpu"
    else:
        spec = runner["spec"]
        assert spec["maxReplicaCount"] > spec["minReplicaCount"] >= 2
        triggers = {tr["type"]: tr for tr in spec["triggers"]}
        assert set(triggers) == {"prometheus", "cpu"}
        _queue_query(triggers["prometheus"]["metadata"]["query"])
        assert float(triggers["prometheus"]["metadata"]["threshold"]) > 0
        assert triggers["cpu"]["metricType"] == "Utilization"
    for service in WORKLOADS:
        (pdb,) = [
            p
            for p in find(objects, "PodDisruptionBudget")
            if selector_matches(p["spec"]["selector"], pod_labels(objects, service))
        ]
        assert pdb["spec"]["maxUnavailable"] == 1


def _rules(policies: list[dict[str, Any]], labels: dict[str, str], direction: str) -> list[Any]:
    kind = direction.capitalize()
    return [
        rule
        for p in policies
        if kind in p["spec"]["policyTypes"] and selector_matches(p["spec"]["podSelector"], labels)
        for rule in p["spec"].get(direction, [])
    ]


CLIENT_PEERS = [
    {"podSelector": {"matchLabels": {"harmeval.io/client": "true"}}},
    {"namespaceSelector": {"matchLabels": {"harmeval.io/client": "true"}}},
]
# The Ingress controller in front of the annotation app (ingress-nginx's own namespace).
INGRESS_CONTROLLER_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
}
PROMETHEUS_PEER = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
]


@pytest.mark.parametrize("name", PRODUCTION_LIKE, ids=k8s_id)
def test_network_policies_allow_only_the_designed_traffic(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    policies = find(objects, "NetworkPolicy")
    deny = default_deny(objects)
    assert deny, "no default-deny policy"
    # The declared backends: the judge's LLM APIs, the GPU generator's model downloads.
    egress_443 = {"judge"} | ({"generator"} if overlay_of(name) == "gpu" else set())
    for service in WORKLOADS:
        labels = pod_labels(objects, service)
        ingress = _rules(policies, labels, "ingress")
        # No `from`: any source.
        allowed_in = {
            (port["port"], json.dumps(rule.get("from", "any"), sort_keys=True))
            for rule in ingress
            for port in rule["ports"]
        }
        if service in APPS:
            # People's browsers and the CLI through the Ingress controller alone; the kubelet's
            # HTTP probes come from the pod's own node.
            expected_in = {
                ("http", json.dumps([INGRESS_CONTROLLER_PEER], sort_keys=True)),
                ("metrics", json.dumps(PROMETHEUS_PEER, sort_keys=True)),
            }
        else:
            expected_in = {
                ("grpc", json.dumps(CLIENT_PEERS, sort_keys=True)),
                ("metrics", json.dumps(PROMETHEUS_PEER, sort_keys=True)),
                # grpc.health.v1 alone, for the kubelet (whose source address CNIs see
                # differently).
                ("health", json.dumps("any")),
            }
        for caller, callees in CALLS.items():
            if service in callees:  # imports from metrics, a run's jobs, people's labels
                peer = {"podSelector": {"matchLabels": {"app": caller}}}
                expected_in.add(("grpc", json.dumps([peer], sort_keys=True)))
        assert allowed_in == expected_in, service
        egress = _rules(policies, labels, "egress")
        allowed_out = {
            (port["port"], port["protocol"]) for rule in egress for port in rule["ports"]
        }
        expected = {(53, "UDP"), (53, "TCP"), (5432, "TCP")}
        if service in egress_443:
            expected.add((443, "TCP"))
        if service in CALLS:
            expected.add(("grpc", "TCP"))
            [calls] = [r for r in egress if any(p["port"] == "grpc" for p in r["ports"])]
            [peer] = calls["to"]
            [expr] = peer["podSelector"]["matchExpressions"]
            assert (expr["key"], expr["operator"]) == ("app", "In")
            assert set(expr["values"]) == CALLS[service], service
        assert allowed_out == expected, service
        # DNS only to the cluster's resolver.
        for rule in egress:
            if any(p["port"] == 53 for p in rule["ports"]):
                assert rule["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


@pytest.mark.parametrize("name", PRODUCTION_LIKE, ids=k8s_id)
def test_service_monitor_scrapes_every_service(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    monitor = one(objects, "ServiceMonitor", "harmeval")
    selected = [
        s["metadata"]["name"]
        for s in find(objects, "Service")
        if selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
    ]
    assert sorted(selected) == sorted(WORKLOADS)
    for endpoint in monitor["spec"]["endpoints"]:
        for service in WORKLOADS:
            ports = {p["name"] for p in one(objects, "Service", service)["spec"]["ports"]}
            assert endpoint["port"] in ports
    # job="harmeval", as the rules and the dashboard expect.
    label = monitor["spec"]["jobLabel"]
    assert {one(objects, "Service", s)["metadata"]["labels"][label] for s in WORKLOADS} == {
        "harmeval"
    }
    dashboards = [
        c
        for c in find(objects, "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert [list(c["data"]) for c in dashboards] == [["harmeval.json"]]


def test_gpu_models_file_is_what_the_generator_reads(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The GPU overlay's models file parses with the generator's own loader: vLLM engine."""
    from harmeval_generator.engines import _entries

    config = one(rendered["gpu"], "ConfigMap", "generator-models")
    path = tmp_path / "models.yaml"
    path.write_text(config["data"]["models.yaml"])
    [entry] = _entries(path)
    assert entry["backend"] == "vllm" and entry["model"]
    generator = one(rendered["gpu"], "Deployment", "generator")
    env = {
        e["name"]: e.get("value")
        for e in generator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["HARMEVAL_GENERATOR_MODELS_FILE"] == "/etc/harmeval/models.yaml"
