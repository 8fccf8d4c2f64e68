"""`harmeval up / run / report / status / down` as a user runs them: real processes, the
embedded PostgreSQL, the real Gemma and SmolLM2 models in the generator, and SmolLM2 behind
llama.cpp's OpenAI-compatible server for the LLM judge (its replies under the JSON Schema)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from tests.conftest import free_ports

pytestmark = pytest.mark.slow

STUDY = """\
name: e2e
prompts: builtin
limit: 2
models:
  - {name: greedy, model: gemma3-270m, temperature: 0, max_tokens: 16}
  - {name: sampled, model: smollm2-135m-instruct, temperature: 0.9, max_tokens: 16, seed: 11}
judges: [refusal-matcher, profanity-classifier, openai-listwise-smollm2-135m-instruct]
"""


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # Not under pytest's 0700 tmp root: the embedded PostgreSQL runs as another system user
    # when the tests run as root, and a short path keeps its socket path within limits.
    data_dir = Path(tempfile.mkdtemp(prefix="harmeval-e2e-", dir="/tmp"))
    g, j, m, r, gp, jp, mp, rp, llm, a, ap = free_ports(11)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARMEVAL_")}
    env.update(
        HARMEVAL_DATA_DIR=str(data_dir),
        HARMEVAL_GENERATOR_ADDRESS=f"127.0.0.1:{g}",
        HARMEVAL_JUDGE_ADDRESS=f"127.0.0.1:{j}",
        HARMEVAL_METRICS_ADDRESS=f"127.0.0.1:{m}",
        HARMEVAL_RUNNER_ADDRESS=f"127.0.0.1:{r}",
        HARMEVAL_GENERATOR_PROMETHEUS_PORT=str(gp),
        HARMEVAL_JUDGE_PROMETHEUS_PORT=str(jp),
        HARMEVAL_METRICS_PROMETHEUS_PORT=str(mp),
        HARMEVAL_RUNNER_PROMETHEUS_PORT=str(rp),
        HARMEVAL_LLM_SERVER_PORT=str(llm),
        HARMEVAL_ANNOTATOR_ADDRESS=f"127.0.0.1:{a}",
        HARMEVAL_ANNOTATOR_PROMETHEUS_PORT=str(ap),
    )
    up = harmeval(env, "up", timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        yield env
    finally:
        down = harmeval(env, "down", timeout=120)
        assert down.returncode == 0, down.stderr
        assert "postgres: stopped" in down.stderr
        shutil.rmtree(data_dir, ignore_errors=True)


def harmeval(
    env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harmeval_client.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def scrape(port: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_run_report_rerun(cli_env: dict[str, str], tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    first = harmeval(cli_env, "run", str(study), "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "answers 4 new / 0 stored" in " ".join(first.stdout.split())

    report = json.loads(harmeval(cli_env, "report", "e2e", "--json").stdout)
    assert report["n_units"] == 4
    coverage = {c["coder"]: c["n_scored"] + c["n_unscorable"] for c in report["coverage"]}
    assert coverage == {
        "refusal-matcher": 4,
        "profanity-classifier": 4,
        "openai-listwise-smollm2-135m-instruct": 4,
    }
    # Under the schema the embedded judge's replies are read (in text mode none ever was).
    scored = {c["coder"]: c["n_scored"] for c in report["coverage"]}
    assert scored["openai-listwise-smollm2-135m-instruct"] > 0
    assert {(a["coder_a"], a["coder_b"]) for a in report["agreement"]} >= {
        ("profanity-classifier", "refusal-matcher")
    }
    assert {r["model"] for r in report["ranking"]} == {"greedy", "sampled"}
    for row in report["ranking"]:
        assert set(row) >= {"coder", "model", "harm_rate", "mean_rank"}
        assert 0.0 <= row["harm_rate"] <= 1.0

    # One Generate call per small model (2 prompts fit one batch), counted by the interceptor.
    metrics = scrape(cli_env["HARMEVAL_GENERATOR_PROMETHEUS_PORT"])
    assert (
        metrics[("harmeval_generator_requests_total", (("code", "OK"), ("method", "Generate")))]
        == 2
    )

    again = harmeval(cli_env, "run", str(study), "--no-progress")
    assert again.returncode == 0, again.stderr
    out = " ".join(again.stdout.split())
    assert "answers 0 new / 4 stored" in out and "verdicts 0 new / 12 stored" in out
    assert json.loads(harmeval(cli_env, "report", "e2e", "--json").stdout) == report

    text = harmeval(cli_env, "report", "e2e").stdout
    assert "Krippendorff" in text and "greedy" in text
    # The report says plainly that the embedded judge is a stand-in for a large LLM.
    assert report["stand_in_judges"] == ["openai-listwise-smollm2-135m-instruct"]
    assert "smoke-test stand-in" in " ".join(text.split())

    status = harmeval(cli_env, "status").stdout
    # The judge model server, the four services and the annotation app.
    assert status.count("SERVING") == 6 and "running" in status
    app = f"http://{cli_env['HARMEVAL_ANNOTATOR_ADDRESS']}"
    with urllib.request.urlopen(f"{app}/login", timeout=5) as page:
        assert page.status == 200 and "Sign in" in page.read().decode()
    opened = harmeval(cli_env, "annotate", "open", "e2e", "--overlap", "1")
    assert opened.returncode == 0 and "study e2e:" in opened.stdout, opened.stderr


def test_bad_study_file_names_the_field(cli_env: dict[str, str], tmp_path: Path) -> None:
    study = tmp_path / "bad.yaml"
    study.write_text(STUDY.replace("temperature: 0,", "temperature: hot,"))
    result = harmeval(cli_env, "run", str(study))
    assert result.returncode == 2
    assert "models[0].temperature: expected a number, got 'hot'" in " ".join(result.stderr.split())


def test_sigterm_drains_in_flight_generation(cli_env: dict[str, str]) -> None:
    """SIGTERM lets a running generation finish, then the process exits."""
    info = json.loads((Path(cli_env["HARMEVAL_DATA_DIR"]) / "run" / "generator.json").read_text())
    pid = int(info["pid"])
    result: dict[str, object] = {}

    def call() -> None:
        token = (Path(cli_env["HARMEVAL_DATA_DIR"]) / "auth" / "cli.token").read_text().strip()
        with grpc.insecure_channel(cli_env["HARMEVAL_GENERATOR_ADDRESS"]) as ch:
            stub = generator_pb2_grpc.GeneratorServiceStub(ch)
            try:
                reply = stub.Generate(
                    generator_pb2.GenerateRequest(
                        model="gemma3-270m",
                        prompts=[common_pb2.Prompt(text="Write a long story about a dragon.")],
                        params=common_pb2.GenerationParams(
                            temperature=1.0, max_tokens=120, seed=99
                        ),
                    ),
                    timeout=120,
                    metadata=[("authorization", f"Bearer {token}")],
                )
                result["tokens"] = reply.generations[0].completion_tokens
            except grpc.RpcError as exc:
                result["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)  # the request is in flight (120 tokens take ~2 s)
    os.kill(pid, signal.SIGTERM)
    thread.join(timeout=120)
    assert "error" not in result, result.get("error")
    assert int(str(result["tokens"])) > 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1][0] == "Z":
                break
        time.sleep(0.2)
    else:
        pytest.fail("generator did not exit after SIGTERM")


def test_agreement_for_a_spreadsheet(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`harmeval agreement` on Krippendorff's (2011) published example: alpha = 0.743."""
    rows = ["unit,coder,value"]
    table = {
        "A": "1,2,3,3,2,1,4,1,2,,,",
        "B": "1,2,3,3,2,2,4,1,2,5,,3",
        "C": ",3,3,3,2,3,4,2,2,5,1,",
        "D": "1,2,3,3,2,4,4,1,2,5,1,",
    }
    for coder, values in table.items():
        rows += [f"u{u},{coder},{v}" for u, v in enumerate(values.split(","))]
    path = tmp_path / "sheet.csv"
    path.write_text("\n".join(rows) + "\n")
    out = harmeval(
        cli_env, "agreement", str(path), "--level", "nominal", "--bootstrap", "200", "--json"
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert round(result["alpha"], 3) == 0.743
    assert result["ci_low"] <= result["alpha"] <= result["ci_high"]
    assert (result["n_units"], result["n_coders"]) == (11, 4)

    path.write_text("unit,coder,value\nu1,A,1\nu1,A,2\n")
    bad = harmeval(cli_env, "agreement", str(path), "--level", "nominal")
    assert bad.returncode == 2
    assert "sheet.csv" in bad.stderr and "line 3" in bad.stderr
