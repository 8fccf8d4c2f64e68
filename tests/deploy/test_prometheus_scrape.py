"""A real Prometheus server scrapes the four services and the annotation app and evaluates the
rules.

The services and the app run as they do in a pod (`python -m harmeval_<service>`, one process
each, so each /metrics is its own registry) on free loopback ports against a real PostgreSQL; the
Debian `prometheus` binary scrapes them every second with the same labels the ServiceMonitor
gives (job="harmeval", namespace, service) and loads the exported rule file. The test asserts
every target is up, the RPCs it made are counted exactly, every rule evaluates healthily, and
every alert, recording and dashboard expression runs as a query. The services authenticate as
in production: they trust the test session's token file and call each other, and are called
here, with its operator token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.runner.v1 import runner_pb2, runner_pb2_grpc
from tests.conftest import free_ports
from tests.credentials import OPERATOR_TOKEN, TOKENS_FILE
from tests.deploy.conftest import APPS, WORKLOADS, render_report, tool
from tests.deploy.promql import grafana_queries
from tests.deploy.test_monitoring import dashboard, keda_queries, rule_groups

SCRAPE_INTERVAL_S = 1
NAMESPACE = "harmeval"
# The operator token, sent per call: harmeval.clients builds aio channels, these stubs are sync.
AUTH = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)


@dataclass
class Service:
    name: str
    # gRPC, or HTTP for the annotation app (APPS).
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def healthy(self) -> bool:
        if self.name in APPS:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return True  # 200; a 503 raises
            except OSError:
                return False
        return _healthy(self.port)


def _healthy(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def services(database_url: str, model_path: Path, tmp_path: Path) -> Iterator[dict[str, Service]]:
    ports = free_ports(2 * len(WORKLOADS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARMEVAL_")}
    env.update(
        HARMEVAL_DATABASE_URL=database_url,
        HARMEVAL_DATA_DIR=str(tmp_path / "data"),
        HARMEVAL_LOG_FORMAT="text",
        HARMEVAL_GRACE_SECONDS="2",
        HARMEVAL_GENERATOR_MODEL_PATH=str(model_path),
        HARMEVAL_GENERATOR_N_CTX="512",
        # No LLM endpoint here: the judge offers its local judges only.
        HARMEVAL_JUDGE_LLM_ENABLED="false",
        HARMEVAL_AUTH_TOKENS_FILE=str(TOKENS_FILE),
        HARMEVAL_TOKEN=OPERATOR_TOKEN,
    )
    running: dict[str, Service] = {}
    try:
        for i, name in enumerate(WORKLOADS):
            port, metrics_port = ports[2 * i], ports[2 * i + 1]
            env[f"HARMEVAL_{name.upper()}_ADDRESS"] = f"127.0.0.1:{port}"
            env[f"HARMEVAL_{name.upper()}_PROMETHEUS_PORT"] = str(metrics_port)
            # Callers reach the services started before them (WORKLOADS lists callees first).
            for callee in running:
                env[f"HARMEVAL_{name.upper()}_{callee.upper()}_TARGET"] = (
                    f"127.0.0.1:{running[callee].port}"
                )
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"harmeval_{name}"],
                    env=dict(env),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            running[name] = Service(name, port, metrics_port, process, log)
        deadline = time.monotonic() + 120
        for svc in running.values():
            while not svc.healthy():
                if svc.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"{svc.name} did not become healthy:\n{svc.log.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
        yield running
    finally:
        for svc in running.values():
            _stop(svc.process)


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=promql)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def wait_for(self, what: str, check: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: timed out waiting for {what}")
            time.sleep(0.25)


@pytest.fixture
def prometheus(services: dict[str, Service], tmp_path: Path) -> Iterator[Prometheus]:
    binary = tool("prometheus")
    (port,) = free_ports(1)
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "rule_files": [str(render_report.EXPORTED_RULES)],
        # The labels the ServiceMonitor and deploy/monitoring/prometheus.yml give in a cluster.
        "scrape_configs": [
            {
                "job_name": "harmeval",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{svc.metrics_port}"],
                        "labels": {"service": svc.name, "namespace": NAMESPACE},
                    }
                    for svc in services.values()
                ],
            }
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        _stop(process)


def _make_calls(services: dict[str, Service]) -> None:
    """One RPC of each kind the assertions count: OK on generator, judge and runner,
    NOT_FOUND on metrics (an error by status, not a server fault)."""
    with grpc.insecure_channel(f"127.0.0.1:{services['generator'].port}") as ch:
        generator_pb2_grpc.GeneratorServiceStub(ch).ListModels(
            generator_pb2.ListModelsRequest(), timeout=10, metadata=AUTH
        )
    with grpc.insecure_channel(f"127.0.0.1:{services['judge'].port}") as ch:
        judge_pb2_grpc.JudgeServiceStub(ch).ListJudges(
            judge_pb2.ListJudgesRequest(), timeout=10, metadata=AUTH
        )
    with grpc.insecure_channel(f"127.0.0.1:{services['metrics'].port}") as ch:
        with pytest.raises(grpc.RpcError) as err:
            metrics_pb2_grpc.MetricsServiceStub(ch).GetAgreement(
                metrics_pb2.GetAgreementRequest(study="no-such-study"), timeout=10, metadata=AUTH
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(f"127.0.0.1:{services['runner'].port}") as ch:
        runner_pb2_grpc.RunnerServiceStub(ch).ListRuns(
            runner_pb2.ListRunsRequest(), timeout=10, metadata=AUTH
        )


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _as_grafana_sends(query: str) -> str:
    """A dashboard query as Grafana would send it, its variables filled in."""
    for var, value in {
        "$__rate_interval": "1m",
        "$__range": "5m",
        "$namespace": ".*",
        "$judge": ".*",
    }.items():
        query = query.replace(var, value)
    if query.startswith("label_values("):
        query = query[len("label_values(") :].rsplit(",", 1)[0]
    return query


def test_prometheus_scrapes_every_service_and_evaluates_the_rules(
    services: dict[str, Service],
    prometheus: Prometheus,
    rendered: dict[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _make_calls(services)

    up = prometheus.wait_for(
        "every target up",
        lambda: (
            (r := prometheus.query('up{job="harmeval"} == 1')) and len(r) == len(WORKLOADS) and r
        ),
    )
    assert {s["metric"]["service"] for s in up} == set(WORKLOADS)
    targets = prometheus.get("/api/v1/targets")["activeTargets"]
    assert sorted(t["labels"]["service"] for t in targets) == sorted(WORKLOADS)
    assert all(t["health"] == "up" for t in targets), targets

    # Exact counts of what this test did, read back through Prometheus. Two rounds: a
    # labelled counter is born at its first call, so only a second call shows as a rate.
    counted = (
        'harmeval_generator_requests_total{method="ListModels", code="OK"}',
        'harmeval_judge_requests_total{method="ListJudges", code="OK"}',
        'harmeval_metrics_requests_total{method="GetAgreement", code="NOT_FOUND"}',
        'harmeval_metrics_errors_total{method="GetAgreement", code="NOT_FOUND"}',
        'harmeval_generator_request_duration_seconds_count{method="ListModels"}',
        'harmeval_runner_requests_total{method="ListRuns", code="OK"}',
    )
    for expected in (1, 2):
        if expected == 2:
            _make_calls(services)
        for selector in counted:
            got = prometheus.wait_for(
                f"{selector} == {expected}",
                lambda s=selector, n=expected: prometheus.query(f"{s} == {n}"),
            )
            assert _value(got) == expected, selector
    # Health checks are not counted.
    assert not prometheus.query('harmeval_generator_requests_total{method="Check"}')

    # Every rule has been evaluated without error; the recording rules see the traffic.
    n_rules = sum(len(g["rules"]) for g in rule_groups())

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        done = len(rules) == n_rules and all(
            r["health"] == "ok" and r["lastEvaluation"] > "1970" for r in rules
        )
        return rules if done else None

    rules = prometheus.wait_for("every rule evaluated", evaluated)
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    rate = prometheus.wait_for(
        "recorded request rate",
        lambda: prometheus.query('harmeval:requests:rate5m{service="generator"} > 0'),
    )
    assert rate[0]["metric"]["method"] == "ListModels"

    # Every alert, recording and dashboard expression runs on the real server (a syntax or
    # type error answers 400, which fails `get`); with healthy services no alert fires.
    firing = []
    for group in rule_groups():
        for rule in group["rules"]:
            result = prometheus.query(str(rule["expr"]))
            if "alert" in rule and result:
                firing.append(rule["alert"])
    assert firing == [], firing
    for where, query in grafana_queries(dashboard()):
        try:
            prometheus.get("/api/v1/query", query=_as_grafana_sends(query))
        except urllib.error.HTTPError as exc:
            pytest.fail(f"dashboard {where}: {exc.read().decode()}")
    # KEDA's queries too (it sends them to Prometheus as they are).
    for where, query in keda_queries(rendered):
        try:
            prometheus.get("/api/v1/query", query=query)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{where}: {exc.read().decode()}")

    # Figures for the closing note.
    series = {
        s["metric"]["service"]: int(float(s["value"][1]))
        for s in prometheus.query('scrape_samples_scraped{job="harmeval"}')
    }
    harmeval_series = {
        s["metric"]["service"]: int(float(s["value"][1]))
        for s in prometheus.query('count by (service) ({job="harmeval", __name__=~"harmeval_.*"})')
    }
    with capsys.disabled():
        print("\n  Prometheus scrape test:")
        for t in sorted(targets, key=lambda t: t["labels"]["service"]):
            name = t["labels"]["service"]
            print(
                f"    target {name:<9} {t['scrapeUrl']:<32} {t['health']}: "
                f"{series[name]} series scraped, {harmeval_series.get(name, 0)} harmeval_*"
            )
        print(f"    {len(rules)} rules evaluated healthy; {len(firing)} alerts firing")
