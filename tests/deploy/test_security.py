"""The Kubernetes side of harmeval's security (issue 12), on every rendering: the restricted Pod
Security Standard (namespace labels and every pod template), Secrets as read-only files and
never environment values, mutual TLS from cert-manager wherever components/tls is in (it is in
production and gpu), plaintext only in the local overlay, probes on the health-only port, and
NetworkPolicies that deny by default and let out only DNS, Postgres, the harmeval services a
pod calls and the declared backends."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from harmeval.common.v1 import access_pb2
from tests.deploy.conftest import (
    APPS,
    SERVICES,
    WORKLOADS,
    default_deny,
    find,
    one,
    render_report,
)
from tests.deploy.test_manifests import (
    CALLS,
    DNS_TARGET,
    EXTERNAL_SECRETS,
    KUSTOMIZATIONS,
    PRODUCTION_LIKE,
    effective_env,
    judge_backends,
    k8s_id,
    overlay_of,
    pod_labels,
    selector_matches,
    server,
)

# Renderings with components/tls: every production-like one (the production overlay includes
# it), and any combination that adds it.
TLS = tuple(
    n
    for n in KUSTOMIZATIONS
    if n in PRODUCTION_LIKE or "tls" in render_report.COMBINATIONS.get(n, ("", ()))[1]
)
# The one rendering whose servers may listen in plaintext: a laptop cluster without cert-manager.
PLAINTEXT = ("local",)
# The callers of each service (CALLS inverted): the identities its HARMEVAL_AUTH_CERT_ROLES names.
CALLERS = {s: {c for c, callees in CALLS.items() if s in callees} for s in SERVICES}
ROLES = {
    name.removeprefix("ROLE_").lower()
    for name in access_pb2.Role.keys()  # noqa: SIM118 (an enum wrapper, not a dict)
    if name != "ROLE_UNSPECIFIED"
}
# The one Secret still read as an environment value: no file setting exists for the database
# URL yet. Tokens and keys are files.
SECRET_ENV_ALLOWED = {"HARMEVAL_DATABASE_URL"}
# Egress to the declared backends (LLM APIs, the Hub): HTTPS to anything but the private, shared
# (CGNAT) and link-local ranges, so never a pod, a node or a cloud metadata service.
BACKEND_LABEL = ("harmeval.io/egress", "backends")
NOT_PUBLIC = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
]
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


# --- helpers ---------------------------------------------------------------------------------


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) for everything that makes pods."""
    found = []
    for o in objects:
        what = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            found.append((what, o["spec"]["template"]["spec"]))
        elif o["kind"] == "CronJob":
            found.append((what, o["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif o["kind"] == "Pod":
            found.append((what, o["spec"]))
    return found


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *spec.get("initContainers", []),
        *spec["containers"],
        *spec.get("ephemeralContainers", []),
    ]


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {
    None,
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What in a pod spec the `restricted` Pod Security Standard (latest) forbids, baseline
    rules included (kubernetes.io/docs/concepts/security/pod-security-standards)."""
    problems = []
    pod_sc = spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field}: true")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds - RESTRICTED_VOLUMES)}")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser: 0")
    pod_seccomp = pod_sc.get("seccompProfile", {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"pod seccompProfile {pod_seccomp}")
    for sc_owner, sc in [("pod", pod_sc)] + [
        (c["name"], c.get("securityContext", {})) for c in all_containers(spec)
    ]:
        if sc.get("windowsOptions", {}).get("hostProcess"):
            problems.append(f"{sc_owner}: hostProcess")
        selinux = sc.get("seLinuxOptions", {})
        if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            problems.append(f"{sc_owner}: seLinuxOptions {selinux}")
        apparmor = sc.get("appArmorProfile", {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            problems.append(f"{sc_owner}: appArmorProfile {apparmor}")
    for c in all_containers(spec):
        sc = c.get("securityContext", {})
        who = f"container {c['name']}"
        if sc.get("privileged"):
            problems.append(f"{who}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{who}: allowPrivilegeEscalation not false")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{who}: procMount {sc['procMount']}")
        if not (sc.get("runAsNonRoot") is True or pod_sc.get("runAsNonRoot") is True):
            problems.append(f"{who}: runAsNonRoot not true")
        if sc.get("runAsNonRoot") is False:
            problems.append(f"{who}: runAsNonRoot: false")
        if sc.get("runAsUser") == 0:
            problems.append(f"{who}: runAsUser: 0")
        seccomp = sc.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{who}: seccompProfile {seccomp}")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{who}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{who}: adds capabilities {capabilities['add']}")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{who}: hostPort {port['hostPort']}")
    return problems


def volume_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (volume,) = [v for v in spec["volumes"] if v["name"] == name]
    return volume


def mounted_file(
    spec: dict[str, Any], container: dict[str, Any], path: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The volume mount a file path lies under (the deepest), its volume, and the file's path
    inside the volume. Fails when the path is on no volume."""
    file = PurePosixPath(path)
    mounts = [m for m in container.get("volumeMounts", []) if file.is_relative_to(m["mountPath"])]
    assert mounts, f"{path}: on no mounted volume"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    return mount, volume_of(spec, mount["name"]), str(file.relative_to(mount["mountPath"]))


def secret_file(deployment: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) a file path in a service's container reads: a read-only mount of a
    whole Secret volume, as a directory (never subPath: the kubelet updates a directory's files
    when the Secret changes, never a subPath's)."""
    spec = deployment["spec"]["template"]["spec"]
    mount, volume, inside = mounted_file(spec, server(deployment), path)
    assert "secret" in volume, f"{path}: volume {volume['name']} is not a Secret"
    assert mount.get("readOnly") is True, f"{path}: mount not read-only"
    assert "subPath" not in mount and "subPathExpr" not in mount, f"{path}: subPath mount"
    # With `items`, only the keys listed appear, under their paths.
    items = {i["path"]: i["key"] for i in volume["secret"].get("items", [])}
    assert not items or inside in items, f"{path}: not among the volume's items"
    return volume["secret"]["secretName"], items.get(inside, inside)


def secret_data(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    data = one(objects, "Secret", name).get("data", {})
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def go_duration_hours(text: str) -> float:
    assert GO_DURATION.sub("", text) == "", text
    scale = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600}
    return sum(float(n) * scale[unit] for n, unit in GO_DURATION.findall(text))


def parse_cert_roles(text: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in text.split(",") if p]
    return {cn.strip(): role.strip() for cn, role in pairs}


def tls_enabled(env: dict[str, str]) -> bool:
    return bool(env.get("HARMEVAL_TLS_CERT_FILE"))


def plaintext_allowed(env: dict[str, str]) -> bool:
    return env.get("HARMEVAL_ALLOW_PLAINTEXT", "false").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


# --- Pod Security Standards --------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_namespace_enforces_the_restricted_standard(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    (namespace,) = find(rendered[name], "Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", mode
        # No pinned version: the current standard, as the checks below apply it.
        assert f"pod-security.kubernetes.io/{mode}-version" not in labels


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_every_pod_meets_the_restricted_standard(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    templates = pod_templates(rendered[name])
    assert templates
    problems = [f"{what}: {p}" for what, spec in templates for p in restricted_violations(spec)]
    assert not problems, "\n".join(problems)


def test_the_restricted_check_catches_violations() -> None:
    """The checker itself: a compliant pod passes, each kind of violation is named."""
    good: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    assert restricted_violations(good) == []
    bad = json.loads(json.dumps(good))
    bad["hostNetwork"] = True
    bad["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    bad["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    bad["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": True,
        "privileged": True,
        "runAsUser": 0,
        "capabilities": {"add": ["NET_ADMIN"]},
    }
    bad["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    bad["initContainers"] = [{"name": "init"}]
    found = "\n".join(restricted_violations(bad))
    for expected in (
        "hostNetwork",
        "volume host",
        "pod seccompProfile Unconfined",
        "container c: privileged",
        "container c: allowPrivilegeEscalation",
        "container c: runAsUser: 0",
        "container c: capabilities do not drop ALL",
        "container c: adds capabilities",
        "container c: hostPort",
        "container init: allowPrivilegeEscalation",
        "container init: capabilities",
    ):
        assert expected in found, expected


# --- Secrets as files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_secrets_are_files_not_environment_values(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """No token, key or password reaches a container as an environment value (they end up in
    `kubectl describe`, crash dumps and child processes): Secrets are mounted, read-only, as
    whole directories. The database URL is the one exception left (no file setting yet)."""
    problems = []
    for what, spec in pod_templates(rendered[name]):
        for c in all_containers(spec):
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    problems.append(f"{what}/{c['name']}: envFrom Secret {source['secretRef']}")
            for var in c.get("env", []):
                from_secret = "secretKeyRef" in var.get("valueFrom", {})
                if from_secret and var["name"] not in SECRET_ENV_ALLOWED:
                    problems.append(f"{what}/{c['name']}: {var['name']} from a Secret")
            secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
            for mount in c.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    if mount.get("readOnly") is not True:
                        problems.append(f"{what}/{c['name']}: {mount['mountPath']} writable")
                    if "subPath" in mount or "subPathExpr" in mount:
                        problems.append(f"{what}/{c['name']}: {mount['mountPath']} subPath")
        for volume in spec.get("volumes", []):
            if "secret" not in volume:
                continue
            # Readable by the owner and the pod's fsGroup only (the kubelet's default, 0644,
            # lets any user read them).
            mode = volume["secret"].get("defaultMode", 0o644)
            if mode & 0o007:
                problems.append(f"{what}: volume {volume['name']} mode {mode:o}")
    assert not problems, "\n".join(problems)


def referenced_secrets(objects: list[dict[str, Any]]) -> set[str]:
    names = set()
    for _, spec in pod_templates(objects):
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
        for c in all_containers(spec):
            for var in c.get("env", []):
                if ref := var.get("valueFrom", {}).get("secretKeyRef"):
                    names.add(ref["name"])
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    names.add(source["secretRef"]["name"])
    return names


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_external_secrets_are_exactly_the_documented_ones(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """The Secrets an operator must create are the ones the overlays' comments and the README
    list: every other Secret a pod reads is generated in the rendering or made by cert-manager
    from a Certificate in it."""
    objects = rendered[name]
    generated = {o["metadata"]["name"] for o in find(objects, "Secret")}
    issued = {c["spec"]["secretName"] for c in find(objects, "Certificate")}
    external = referenced_secrets(objects) - generated - issued
    assert external == EXTERNAL_SECRETS[overlay_of(name)]


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_every_service_reads_the_tokens_file(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """HARMEVAL_AUTH_TOKENS_FILE is the `tokens.json` key of Secret harmeval-tokens (hashes
    only, made by `harmeval token create`), mounted so that updates reach the servers."""
    objects = rendered[name]
    for service in WORKLOADS:
        deployment = one(objects, "Deployment", service)
        env = effective_env(objects, server(deployment))
        secret, key = secret_file(deployment, env["HARMEVAL_AUTH_TOKENS_FILE"])
        assert re.fullmatch(r"harmeval-tokens(-[a-z0-9]{10})?", secret), (service, secret)
        assert key == "tokens.json", service


def test_local_development_tokens_authenticate(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The local overlay's generated tokens file accepts the callers' (runner, metrics service,
    annotation app) development tokens (Secret harmeval-service-tokens) as operators, read by
    the servers' own token store."""
    from harmeval.tokens import TokenStore

    objects = rendered["local"]
    [tokens_secret] = [
        s["metadata"]["name"]
        for s in find(objects, "Secret")
        if s["metadata"]["name"].startswith("harmeval-tokens-")
    ]
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(secret_data(objects, tokens_secret)["tokens.json"])
    store = TokenStore(tokens_file)
    for service in CALLS:
        deployment = one(objects, "Deployment", service)
        env = effective_env(objects, server(deployment))
        secret, key = secret_file(deployment, env["HARMEVAL_TOKEN_FILE"])
        assert key == service
        principal = store.authenticate(secret_data(objects, secret)[key])
        assert (principal.name, principal.role) == (service, "operator")


# --- Transport: mutual TLS, or plaintext only where allowed --------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_transport_is_tls_except_in_the_local_overlay(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Every real deployment (production, gpu, and anything with components/tls) serves mutual
    TLS on every gRPC port and never allows plaintext; the local overlay alone allows
    plaintext; the base alone does neither, so its servers refuse to start (fail closed). The
    annotation app serves no gRPC: as a client it uses TLS wherever the services serve it,
    and may send its token in plaintext only where they listen in plaintext."""
    objects = rendered[name]
    for service in SERVICES:
        env = effective_env(objects, server(one(objects, "Deployment", service)))
        if name in TLS:
            assert tls_enabled(env) and env.get("HARMEVAL_TLS_CLIENT_CA_FILE"), service
            assert not plaintext_allowed(env), service
        else:
            assert not tls_enabled(env), service
            assert plaintext_allowed(env) == (name in PLAINTEXT), service
    for app in APPS:
        env = effective_env(objects, server(one(objects, "Deployment", app)))
        assert not tls_enabled(env), app  # its HTTP port: TLS ends at the Ingress
        assert bool(env.get("HARMEVAL_TLS_CA_FILE")) == (name in TLS), app
        assert plaintext_allowed(env) == (name in PLAINTEXT), app
    assert bool(find(objects, "Certificate")) == (name in TLS)


@pytest.mark.parametrize("name", TLS, ids=k8s_id)
def test_tls_certificates_are_mounted_and_used(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Each service serves its own cert-manager Certificate (common name = the service, DNS
    names = its headless Service's, server and client auth, from the namespace's CA), mounted
    read-only; the server's cert, key and client CA files are that Secret's tls.crt, tls.key and
    ca.crt. The callers show the same certificate as clients and trust the CA."""
    objects = rendered[name]
    certificates = find(objects, "Certificate")
    issuers = {i["metadata"]["name"]: i for i in find(objects, "Issuer")}
    for service in SERVICES:
        (cert,) = [c for c in certificates if c["spec"].get("commonName") == service]
        spec = cert["spec"]
        deployment = one(objects, "Deployment", service)
        namespace = deployment["metadata"]["namespace"]
        assert f"{service}.{namespace}.svc.cluster.local" in spec["dnsNames"], service
        assert {"server auth", "client auth"} <= set(spec["usages"]), service
        assert not spec.get("isCA"), service
        duration, renew = (
            go_duration_hours(spec["duration"]),
            go_duration_hours(spec["renewBefore"]),
        )
        assert 24 <= duration <= 24 * 398 and 1 <= renew < duration, service
        assert spec["privateKey"]["rotationPolicy"] == "Always", service
        # Issued by the namespace's CA Issuer, whose key is a self-signed CA Certificate's.
        issuer = issuers[spec["issuerRef"]["name"]]
        assert spec["issuerRef"].get("kind", "Issuer") == "Issuer"
        (ca,) = [
            c for c in certificates if c["spec"]["secretName"] == issuer["spec"]["ca"]["secretName"]
        ]
        assert ca["spec"]["isCA"] is True
        assert "selfSigned" in issuers[ca["spec"]["issuerRef"]["name"]]["spec"]

        env = effective_env(objects, server(deployment))
        files = {
            "HARMEVAL_TLS_CERT_FILE": "tls.crt",
            "HARMEVAL_TLS_KEY_FILE": "tls.key",
            "HARMEVAL_TLS_CLIENT_CA_FILE": "ca.crt",
        }
        if service in CALLS:
            files |= {
                "HARMEVAL_TLS_CA_FILE": "ca.crt",
                "HARMEVAL_TLS_CLIENT_CERT_FILE": "tls.crt",
                "HARMEVAL_TLS_CLIENT_KEY_FILE": "tls.key",
            }
        for var, key in files.items():
            assert secret_file(deployment, env[var]) == (spec["secretName"], key), var

    # The annotation app calls with a certificate of its own and serves no TLS: client auth
    # only, from the same CA.
    for app in APPS:
        (cert,) = [c for c in certificates if c["spec"].get("commonName") == app]
        spec = cert["spec"]
        assert "client auth" in spec["usages"] and "server auth" not in spec["usages"], app
        assert issuers[spec["issuerRef"]["name"]]["spec"].get("ca"), app
        deployment = one(objects, "Deployment", app)
        env = effective_env(objects, server(deployment))
        for var, key in {
            "HARMEVAL_TLS_CA_FILE": "ca.crt",
            "HARMEVAL_TLS_CLIENT_CERT_FILE": "tls.crt",
            "HARMEVAL_TLS_CLIENT_KEY_FILE": "tls.key",
        }.items():
            assert secret_file(deployment, env[var]) == (spec["secretName"], key), var

    # No pod mounts the CA's key.
    ca_secrets = {i["spec"]["ca"]["secretName"] for i in issuers.values() if "ca" in i["spec"]}
    assert not ca_secrets & referenced_secrets(objects)


@pytest.mark.parametrize("name", TLS, ids=k8s_id)
def test_every_internal_target_is_covered_by_its_certificate(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """A caller verifies the server's certificate against the host name it dials."""
    objects = rendered[name]
    by_cn = {c["spec"].get("commonName"): c["spec"] for c in find(objects, "Certificate")}
    for caller in CALLS:
        env = effective_env(objects, server(one(objects, "Deployment", caller)))
        for var, target in env.items():
            if match := DNS_TARGET.fullmatch(target):
                host = target.removeprefix("dns:///").rsplit(":", 1)[0]
                assert host in by_cn[match["service"]]["dnsNames"], (var, target)


@pytest.mark.parametrize("name", TLS, ids=k8s_id)
def test_services_know_each_other_by_certificate(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Under mutual TLS each server maps exactly its callers' certificate names to a role, the
    callers send no bearer token, and the shared client certificate for people and other
    systems carries no role (their token decides)."""
    objects = rendered[name]
    mapped: set[str] = set()
    for service in SERVICES:
        deployment = one(objects, "Deployment", service)
        env = effective_env(objects, server(deployment))
        roles = parse_cert_roles(env.get("HARMEVAL_AUTH_CERT_ROLES", ""))
        assert set(roles) == CALLERS[service], service
        assert set(roles.values()) <= ROLES, service
        mapped |= set(roles)
    for caller in CALLS:
        deployment = one(objects, "Deployment", caller)
        env = effective_env(objects, server(deployment))
        assert "HARMEVAL_TOKEN_FILE" not in env and "HARMEVAL_TOKEN" not in env, caller
        assert not any(
            s.startswith("harmeval-service-tokens") for s in referenced_secrets([deployment])
        ), caller
    service_cns = {c["spec"].get("commonName") for c in find(objects, "Certificate")}
    (client,) = [
        c
        for c in find(objects, "Certificate")
        if "server auth" not in c["spec"].get("usages", [])
        and not c["spec"].get("isCA")
        and c["spec"].get("commonName") not in WORKLOADS
    ]
    assert client["spec"]["usages"] and "client auth" in client["spec"]["usages"]
    assert client["spec"]["commonName"] not in mapped
    assert mapped <= service_cns


@pytest.mark.parametrize("name", [n for n in KUSTOMIZATIONS if n not in TLS], ids=k8s_id)
def test_without_tls_callers_send_their_own_token(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Without certificates, the runner, the metrics service and the annotation app
    authenticate with a bearer token of their own: a file of Secret harmeval-service-tokens,
    the key named after them."""
    objects = rendered[name]
    for caller in CALLS:
        deployment = one(objects, "Deployment", caller)
        env = effective_env(objects, server(deployment))
        assert "HARMEVAL_TOKEN" not in env
        secret, key = secret_file(deployment, env["HARMEVAL_TOKEN_FILE"])
        assert re.fullmatch(r"harmeval-service-tokens(-[a-z0-9]{10})?", secret), secret
        assert key == caller


# --- the annotation app's browsers ----------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_people_reach_the_annotation_app_over_https(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Its session cookie is `Secure` everywhere but the local overlay (reached with kubectl
    port-forward over plain HTTP); production-like renderings expose it through an Ingress
    that terminates TLS for its host, at the root path, to the Service's `http` port."""
    objects = rendered[name]
    for app in APPS:
        env = effective_env(objects, server(one(objects, "Deployment", app)))
        secure = env["HARMEVAL_ANNOTATOR_SECURE_COOKIES"].strip().lower() in ("1", "true", "yes")
        assert secure == (overlay_of(name) != "local"), app
        ingresses = [
            i
            for i in find(objects, "Ingress")
            for rule in i["spec"]["rules"]
            for path in rule["http"]["paths"]
            if path["backend"]["service"]["name"] == app
        ]
        assert bool(ingresses) == (name in PRODUCTION_LIKE), app
        for ingress in ingresses:
            tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
            for rule in ingress["spec"]["rules"]:
                assert rule["host"] in tls_hosts, rule["host"]
                [path] = rule["http"]["paths"]
                assert (path["path"], path["pathType"]) == ("/", "Prefix")
                assert path["backend"]["service"]["port"] == {"name": "http"}


# --- the judge's declared backends ------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS, ids=k8s_id)
def test_judge_backends_own_their_keys_as_files(
    rendered: dict[str, list[dict[str, Any]]], name: str, tmp_path: Path
) -> None:
    """The backends file is a mounted ConfigMap that the judge's own loader accepts; each
    backend's api_key_file is a file of a mounted Secret (its value never in the ConfigMap or the
    environment); it declares `default`, the LLM judge's endpoint, so neither
    HARMEVAL_JUDGE_LLM_BASE_URL nor HARMEVAL_JUDGE_LLM_API_KEY is needed, or set."""
    from harmeval_judge.backends import read_backends_file

    objects = rendered[name]
    backends = judge_backends(objects)
    deployment = one(objects, "Deployment", "judge")
    env = effective_env(objects, server(deployment))
    generated = {s["metadata"]["name"] for s in find(objects, "Secret")}
    # The pod's files under tmp_path: the backends file, and each key where its Secret puts it.
    staged = []
    for backend in backends:
        secret, key = secret_file(deployment, backend["api_key_file"])
        value = secret_data(objects, secret)[key] if secret in generated else "sk-from-operator"
        key_file = tmp_path / backend["api_key_file"].lstrip("/")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(value)
        staged.append({**backend, "api_key_file": str(key_file)})
    backends_file = tmp_path / "backends.yaml"
    backends_file.write_text(yaml.safe_dump({"backends": staged}))
    loaded = read_backends_file(backends_file, environ={})
    assert "default" in loaded
    assert not {"HARMEVAL_JUDGE_LLM_BASE_URL", "HARMEVAL_JUDGE_LLM_API_KEY"} & set(env)
    assert not any("api_key_env" in b for b in backends), "keys are files, not environment"


# --- NetworkPolicies ------------------------------------------------------------------------------


def _selected(policies: list[dict[str, Any]], labels: dict[str, str], kind: str) -> list[Any]:
    return [
        p
        for p in policies
        if kind in p["spec"]["policyTypes"] and selector_matches(p["spec"]["podSelector"], labels)
    ]


@pytest.mark.parametrize("name", PRODUCTION_LIKE, ids=k8s_id)
def test_every_pod_is_denied_by_default_and_allowed_explicitly(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    policies = find(objects, "NetworkPolicy")
    deny = default_deny(objects)
    assert len(deny) == 1, "one default-deny policy for the whole namespace"
    for deployment in find(objects, "Deployment") + find(objects, "StatefulSet"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        dname = deployment["metadata"]["name"]
        ingress = [p for p in _selected(policies, labels, "Ingress") if p["spec"].get("ingress")]
        egress = [p for p in _selected(policies, labels, "Egress") if p["spec"].get("egress")]
        assert ingress, f"{dname}: no ingress allowed (its gRPC port is unreachable)"
        assert egress, f"{dname}: no egress allowed (not even DNS)"


def _ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(p["port"], p.get("protocol", "TCP")) for p in rule.get("ports", [])}


def reaches_private(block: dict[str, Any]) -> bool:
    """Whether an ipBlock lets through any of the private, shared or link-local ranges."""
    cidr = ipaddress.ip_network(block["cidr"])
    excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
    for private in NOT_PUBLIC:
        if private.version != cidr.version or not private.overlaps(cidr):
            continue
        # Covered by one of the exceptions (same address family).
        if not any(
            e.version == private.version
            and int(e.network_address) <= int(private.network_address)
            and int(private.broadcast_address) <= int(e.broadcast_address)
            for e in excepted
        ):
            return True
    return False


def egress_kind(policy: dict[str, Any], rule: dict[str, Any]) -> str | None:
    """Which of the four allowed kinds an egress rule is, or None."""
    ports, to = _ports(rule), rule.get("to")
    if ports == {(53, "UDP"), (53, "TCP")} and to == [DNS_PEER]:
        return "dns"
    if ports == {(5432, "TCP")} and all("ipBlock" in peer for peer in to or []):
        # Anywhere on 5432 (the managed database's address is the operator's), or narrowed.
        return "postgres"
    if ports == {("grpc", "TCP")} and to:
        apps = set()
        for peer in to:
            if set(peer) != {"podSelector"}:
                return None
            [expr] = peer["podSelector"].get("matchExpressions", [None])
            if expr is None or (expr["key"], expr["operator"]) != ("app", "In"):
                return None
            apps |= set(expr["values"])
        return "harmeval" if apps <= set(SERVICES) else None
    labels = policy["metadata"].get("labels", {})
    if labels.get(BACKEND_LABEL[0]) == BACKEND_LABEL[1] and ports == {(443, "TCP")} and to:
        for peer in to:
            if set(peer) != {"ipBlock"}:
                return None
            if reaches_private(peer["ipBlock"]):
                return None
        return "backends"
    return None


@pytest.mark.parametrize("name", PRODUCTION_LIKE, ids=k8s_id)
def test_egress_allows_only_dns_postgres_harmeval_and_backends(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """Every egress rule is DNS to kube-dns, Postgres on 5432, gRPC to the harmeval services
    the pod calls, or the documented backend rule (HTTPS outside the cluster's private ranges,
    for the judge and, on GPUs, the generator's model downloads)."""
    objects = rendered[name]
    backend_pods = {"judge"} | ({"generator"} if overlay_of(name) == "gpu" else set())
    for policy in find(objects, "NetworkPolicy"):
        if "Egress" not in policy["spec"]["policyTypes"]:
            continue
        pname = policy["metadata"]["name"]
        for rule in policy["spec"].get("egress", []):
            kind = egress_kind(policy, rule)
            assert kind is not None, f"{pname}: egress rule not allowed: {rule}"
            selected = {
                s
                for s in WORKLOADS
                if selector_matches(policy["spec"]["podSelector"], pod_labels(objects, s))
            }
            if kind == "backends":
                assert selected <= backend_pods, pname
            if kind == "harmeval":
                assert selected <= set(CALLS), pname
    # Each backend's port is open to the judge (a backend on another port needs its rule).
    backends = judge_backends(objects)
    judge_ports = {
        port
        for p in _selected(find(objects, "NetworkPolicy"), pod_labels(objects, "judge"), "Egress")
        for rule in p["spec"].get("egress", [])
        if egress_kind(p, rule) == "backends"
        for port, _ in _ports(rule)
    }
    for backend in backends:
        url = backend["base_url"]
        port = (
            int(m[1])
            if (m := re.match(r"https?://[^/:]+:(\d+)", url))
            else (443 if url.startswith("https://") else 80)
        )
        assert port in judge_ports, f"{backend['name']}: {url} not allowed out"
