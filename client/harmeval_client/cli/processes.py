"""`harmeval up/down/status`: the local stack as background processes under the data dir.

up fetches the embedded models into the data dir when they are not there yet
(:mod:`harmeval_client.embedded_models`), then starts, in order: the embedded PostgreSQL
(unless HARMEVAL_DATABASE_URL is set), the local OpenAI-compatible model server for the LLM
judge (unless HARMEVAL_JUDGE_LLM_BASE_URL points elsewhere), then the generator (serving both
embedded models, unless HARMEVAL_GENERATOR_MODELS_FILE names others), judge, metrics and runner
services and the annotation app, and waits until each is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harmeval.clients import health_status
from harmeval.db.connection import start_embedded_postgres, stop_embedded_postgres
from harmeval.settings import env_name
from harmeval_client import embedded_models
from harmeval_client.cli.tokens import CLI_TOKEN, SERVICES_TOKEN, local_token
from harmeval_client.embedded_models import GEMMA, MODELS, SMOLLM2, EmbeddedModel
from harmeval_client.settings import ClientSettings

STARTUP_TIMEOUT_S = 300.0


class StackError(RuntimeError):
    """A component failed to start; the message carries the tail of its log."""


@dataclass(frozen=True)
class Component:
    name: str
    command: list[str]
    # gRPC address (health-checked) or HTTP URL (polled) that says it is ready.
    address: str
    kind: str  # "grpc" or "http"


def run_dir(settings: ClientSettings) -> Path:
    return settings.data_dir.resolve() / "run"


def log_dir(settings: ClientSettings) -> Path:
    return settings.data_dir.resolve() / "logs"


def _pid_file(settings: ClientSettings, name: str) -> Path:
    return run_dir(settings) / f"{name}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (when up and down run in one process) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot), None when it is gone: with the pid
    it names one process, where a pid alone may since have been given to another."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _running(info: dict[str, object]) -> bool:
    """Whether the process a pid file records is still that process and alive."""
    pid = int(str(info["pid"]))
    started = info.get("started")
    return _alive(pid) and (started is None or _start_time(pid) == started)


def recorded(settings: ClientSettings, name: str) -> dict[str, object] | None:
    path = _pid_file(settings, name)
    if not path.exists():
        return None
    info: dict[str, object] = json.loads(path.read_text())
    return info


def llm_base_url(settings: ClientSettings) -> str:
    return os.environ.get(
        env_name("judge_llm_base_url"), f"http://127.0.0.1:{settings.llm_server_port}/v1"
    )


def _uses_local_llm_server() -> bool:
    return env_name("judge_llm_base_url") not in os.environ


def judge_model(settings: ClientSettings) -> EmbeddedModel:
    """The embedded model the local judge server serves (HARMEVAL_LLM_SERVER_MODEL)."""
    model = MODELS.get(settings.llm_server_model)
    if model is None:
        raise StackError(
            f"HARMEVAL_LLM_SERVER_MODEL: expected one of {sorted(MODELS)}, "
            f"got {settings.llm_server_model!r}"
        )
    return model


# Components answering plain HTTP (readiness is a 200 from their URL), not gRPC health.
HTTP_COMPONENTS = frozenset({"llm-server", "annotator"})


def components(settings: ClientSettings, judge_model_path: Path | None) -> list[Component]:
    """The processes of the stack; the judge server's model file when it is started."""
    py = sys.executable
    items = []
    if _uses_local_llm_server():
        judge = judge_model(settings)
        if judge_model_path is None:
            raise StackError(f"the judge server's model {judge.name} was not fetched")
        # A model without a chat template (Gemma, a base model) needs a llama-cpp-python
        # format; SmolLM2's own template comes from its file.
        chat_format = ["--chat_format", judge.chat_format] if judge.chat_format else []
        items.append(
            Component(
                "llm-server",
                [
                    py,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    str(judge_model_path),
                    "--model_alias",
                    judge.name,
                    *chat_format,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(settings.llm_server_port),
                    "--n_ctx",
                    str(settings.llm_server_n_ctx),
                ],
                f"http://127.0.0.1:{settings.llm_server_port}/v1/models",
                "http",
            )
        )
    items += [
        Component(
            "generator", [py, "-m", "harmeval_generator"], settings.generator_address, "grpc"
        ),
        Component("judge", [py, "-m", "harmeval_judge"], settings.judge_address, "grpc"),
        Component("metrics", [py, "-m", "harmeval_metrics"], settings.metrics_address, "grpc"),
        Component("runner", [py, "-m", "harmeval_runner"], settings.runner_address, "grpc"),
        Component(
            "annotator",
            [py, "-m", "harmeval_annotator"],
            f"http://{settings.annotator_address}/healthz",
            "http",
        ),
    ]
    return items


def _log_tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _ready(c: Component, settings: ClientSettings) -> bool:
    if c.kind == "grpc":
        return await health_status(c.address, settings) == "SERVING"
    return await asyncio.to_thread(_http_ok, c.address)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _spawn(c: Component, env: dict[str, str], log: Path) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            c.command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return proc.pid


async def _wait_ready(c: Component, pid: int, log: Path, settings: ClientSettings) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise StackError(f"{c.name} exited during start-up; log {log}:\n{_log_tail(log)}")
        if await _ready(c, settings):
            return
        await asyncio.sleep(0.3)
    raise StackError(f"{c.name} not ready after {STARTUP_TIMEOUT_S:.0f}s; log {log}")


def fetch_models(settings: ClientSettings, say: Callable[[str], None] = print) -> dict[str, Path]:
    """The embedded models' files under the data dir, by name, fetched when missing: Gemma
    always (the generator's default model), SmolLM2 when the local generator serves it (no
    HARMEVAL_GENERATOR_MODELS_FILE of the user's) or the local judge server does."""
    needed = [GEMMA]
    if env_name("generator_models_file") not in os.environ:
        needed.append(SMOLLM2)
    if _uses_local_llm_server() and judge_model(settings) not in needed:
        needed.append(judge_model(settings))
    paths = {}
    for model in needed:
        if not (embedded_models.models_dir(settings.data_dir) / model.file_name).exists():
            say(f"{model.name}: fetching {model.description} into the data dir (once)")
        try:
            paths[model.name] = embedded_models.fetch(model, settings.data_dir)
        except embedded_models.EmbeddedModelError as exc:
            raise StackError(f"{model.name}: {exc}") from exc
    return paths


def generator_models_file(settings: ClientSettings, paths: dict[str, Path]) -> Path:
    """The local generator's models file: Gemma 3 270M (a base model, completion-style; its
    file is HARMEVAL_GENERATOR_MODEL_PATH, which defaults to the embedded one) and
    SmolLM2-135M-Instruct (through its chat template)."""
    gemma_name = os.environ.get(env_name("generator_model_name"), GEMMA.name)
    smollm2 = {
        "name": SMOLLM2.name,
        "backend": "llama.cpp",
        "model_path": str(paths[SMOLLM2.name]),
        "prompt_format": SMOLLM2.prompt_format,
    }
    path = settings.data_dir.resolve() / "generator-models.yaml"
    models = [{"name": gemma_name, "backend": "llama.cpp"}, smollm2]
    path.write_text(
        "# Written by `harmeval up` at every start: the embedded models the local generator\n"
        "# serves. To serve others, point HARMEVAL_GENERATOR_MODELS_FILE at a file of yours.\n"
        + yaml.safe_dump({"models": models}, sort_keys=False)
    )
    return path


def local_judge_defaults(judge: EmbeddedModel, env: dict[str, str]) -> None:
    """The judge and runner settings for the local judge server, where `env` (the user's
    environment) does not set them."""
    # The built-in LLM judges ask the embedded model; llama-cpp-python's server constrains
    # their replies to the protocol's JSON Schema (README "Structured output").
    env.setdefault(env_name("judge_llm_model"), judge.name)
    env.setdefault(env_name("judge_llm_name"), f"openai-listwise-{judge.name}")
    env.setdefault(env_name("judge_llm_structured_output"), "json_object")
    # The server answers one request at a time: more in flight would only queue there, where
    # each one's timeout runs (and a request given up on is still computed). They queue in
    # the judge service instead, and the runner sends the LLM judge one job at a time.
    env.setdefault(env_name("judge_llm_max_concurrency"), "1")
    env.setdefault(env_name("runner_judge_limits"), f"{env[env_name('judge_llm_name')]}=1")


async def up(settings: ClientSettings, say: Callable[[str], None] = print) -> None:
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    log_dir(settings).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env[env_name("data_dir")] = str(settings.data_dir.resolve())
    judge = judge_model(settings)
    paths = fetch_models(settings, say)
    if settings.database_url:
        url = settings.database_url
        say("postgres: using HARMEVAL_DATABASE_URL")
    else:
        url = start_embedded_postgres(settings.data_dir)
        say(f"postgres: embedded under {settings.data_dir.resolve() / 'postgres'}")
    env[env_name("database_url")] = url
    env.setdefault(env_name("generator_model_path"), str(paths[GEMMA.name]))
    if env_name("generator_models_file") not in env:
        env[env_name("generator_models_file")] = str(generator_models_file(settings, paths))
    if _uses_local_llm_server():
        local_judge_defaults(judge, env)
    env.setdefault(env_name("judge_llm_base_url"), llm_base_url(settings))
    env.setdefault(env_name("log_format"), "json")
    # Loopback plaintext with tokens (README "Security"): the services listen on 127.0.0.1
    # only, where TLS would protect nothing a local user could not read from the data dir;
    # tokens still keep other local users and browsers' cross-site requests out.
    env[env_name("auth_tokens_file")] = str(settings.tokens_path.resolve())
    local_token(settings, CLI_TOKEN, "local-cli")
    env[env_name("token_file")] = str(local_token(settings, SERVICES_TOKEN, "local-services"))
    env.pop(env_name("token"), None)
    # Each process reads only its own settings; addresses come from the same variables.
    addresses = ("generator", "judge", "metrics", "runner", "annotator")
    for field in (f"{name}_address" for name in addresses):
        env[env_name(field)] = getattr(settings, field)
    env[env_name("annotator_metrics_target")] = settings.metrics_address
    env[env_name("metrics_generator_target")] = settings.generator_address
    env[env_name("metrics_judge_target")] = settings.judge_address
    env[env_name("runner_generator_target")] = settings.generator_address
    env[env_name("runner_judge_target")] = settings.judge_address
    env[env_name("runner_metrics_target")] = settings.metrics_address
    # One in-process engine: chunks are answered in turn, so each chunk's verdicts are made
    # while the next one is generated (more at once would only interleave them).
    env.setdefault(env_name("runner_generate_jobs"), "1")

    started: list[tuple[Component, int, Path]] = []
    for c in components(settings, paths.get(judge.name)):
        info = recorded(settings, c.name)
        if info and _running(info):
            say(f"{c.name}: already running (pid {info['pid']})")
            continue
        log = log_dir(settings) / f"{c.name}.log"
        pid = _spawn(c, env, log)
        _pid_file(settings, c.name).write_text(
            json.dumps(
                {"pid": pid, "started": _start_time(pid), "address": c.address, "log": str(log)}
            )
        )
        started.append((c, pid, log))
    try:
        for c, pid, log in started:
            await _wait_ready(c, pid, log, settings)
            say(f"{c.name}: ready at {c.address} (pid {pid})")
    except StackError:
        await down(settings, say=lambda _: None, stop_postgres=False)
        raise


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def down(
    settings: ClientSettings,
    say: Callable[[str], None] = print,
    stop_postgres: bool = True,
) -> None:
    names = ["annotator", "runner", "metrics", "judge", "generator", "llm-server"]
    for name in names:
        info = recorded(settings, name)
        if info is None:
            continue
        pid = int(str(info["pid"]))
        if _running(info):
            await asyncio.to_thread(_terminate, pid, settings.grace_seconds)
            say(f"{name}: stopped (pid {pid})")
        _pid_file(settings, name).unlink(missing_ok=True)
    if stop_postgres and not settings.database_url and stop_embedded_postgres(settings.data_dir):
        say("postgres: stopped")


async def status(settings: ClientSettings) -> list[dict[str, str]]:
    rows = []
    for name in ["llm-server", "generator", "judge", "metrics", "runner", "annotator"]:
        info = recorded(settings, name)
        if info is None:
            rows.append({"component": name, "pid": "-", "address": "-", "state": "not started"})
            continue
        pid = int(str(info["pid"]))
        state = "stopped"
        if _running(info):
            comp = Component(
                name, [], str(info["address"]), "http" if name in HTTP_COMPONENTS else "grpc"
            )
            state = "SERVING" if await _ready(comp, settings) else "starting or unhealthy"
        rows.append(
            {
                "component": name,
                "pid": str(pid),
                "address": str(info["address"]),
                "state": state,
                "log": str(info.get("log", "")),
            }
        )
    pg = settings.data_dir.resolve() / "postgres"
    if settings.database_url:
        rows.append(
            {
                "component": "postgres",
                "pid": "-",
                "address": "HARMEVAL_DATABASE_URL",
                "state": "external",
            }
        )
    else:
        running = (pg / "postmaster.pid").exists()
        rows.append(
            {
                "component": "postgres",
                "pid": "-",
                "address": str(pg),
                "state": "running" if running else "stopped",
            }
        )
    return rows
