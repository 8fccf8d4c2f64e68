"""A study run through the runner service, for the CLI and any Python caller (no terminal
output: each change of the run goes to an optional callback).

The run belongs to the service: starting it returns at once and the work goes on there, so a
caller may stop watching (or die) and the run continues; starting the same study again returns
the same run, or resumes it where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from harmeval.common.v1 import common_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.runner.v1 import runner_pb2
from harmeval_client.clients import Clients
from harmeval_client.study import Study


class StudyRunError(RuntimeError):
    pass


# Called with the run each time it changes.
OnRun = Callable[[runner_pb2.Run], None]


@dataclass
class RunSummary:
    run: runner_pb2.Run = field(default_factory=runner_pb2.Run)
    generations: Counter[str] = field(default_factory=Counter)
    judgments: Counter[str] = field(default_factory=Counter)


def study_definition(study: Study) -> runner_pb2.StudyDefinition:
    return runner_pb2.StudyDefinition(
        name=study.name,
        prompts=[
            common_pb2.Prompt(external_id=p.id, text=p.text, category=p.category)
            for p in study.prompts
        ],
        models=[
            metrics_pb2.StudyModel(name=m.name, model=m.model, params=m.params.to_proto())
            for m in study.models
        ],
        judges=study.judges,
        judge_definitions=[json.dumps(d) for d in study.judge_definitions],
    )


def summarize(run: runner_pb2.Run) -> RunSummary:
    """Items per outcome: new (stored by this attempt), cached, unscorable, failed."""
    counts: dict[int, Counter[str]] = {
        runner_pb2.STAGE_GENERATE: Counter(),
        runner_pb2.STAGE_JUDGE: Counter(),
    }
    for s in run.progress.stages:
        counts[s.stage].update(
            new=s.done - s.cached, cached=s.cached, unscorable=s.unscorable, failed=s.failed
        )
    # `+` drops the outcomes that did not occur.
    return RunSummary(run, +counts[runner_pb2.STAGE_GENERATE], +counts[runner_pb2.STAGE_JUDGE])


async def start_run(
    study: Study, clients: Clients, *, rejudge_unscorable: bool = False
) -> runner_pb2.Run:
    """Starts (or resumes) the study's run; fails before any work on a bad study."""
    try:
        reply = await clients.runner.StartRun(
            runner_pb2.StartRunRequest(
                definition=study_definition(study), rejudge_unscorable=rejudge_unscorable
            )
        )
    except grpc.aio.AioRpcError as exc:
        raise StudyRunError(f"{exc.code().name}: {exc.details()}") from exc
    run: runner_pb2.Run = reply.run
    return run


# Seconds a watch waits for the runner to answer again (a replica restarting, a connection
# closed after its maximum age) before giving up.
RECONNECT_FOR_S = 120.0


async def watch_run(run_name: str, clients: Clients, on_run: OnRun | None = None) -> RunSummary:
    """Follows the run until it is done, reconnecting when the stream breaks (the run goes on
    in the service either way); returns its final state."""
    last = runner_pb2.Run()
    failing_since: float | None = None
    while not last.done:
        try:
            async for reply in clients.runner.WatchRun(runner_pb2.WatchRunRequest(name=run_name)):
                failing_since = None
                last = reply.run
                if on_run is not None:
                    on_run(last)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
                raise
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > RECONNECT_FOR_S:
                raise
            await asyncio.sleep(0.5)
    return summarize(last)


async def run_study(
    study: Study,
    clients: Clients,
    *,
    rejudge_unscorable: bool = False,
    on_run: OnRun | None = None,
) -> RunSummary:
    """Starts the study's run and waits for it to end. A run that failed or was cancelled
    raises StudyRunError (what is stored stays stored: starting it again continues)."""
    run = await start_run(study, clients, rejudge_unscorable=rejudge_unscorable)
    summary = await watch_run(run.name, clients, on_run)
    if summary.run.state != runner_pb2.RUN_STATE_SUCCEEDED:
        state = runner_pb2.RunState.Name(summary.run.state).removeprefix("RUN_STATE_")
        errors = "; ".join(summary.run.progress.last_errors[-3:])
        raise StudyRunError(
            f"run {summary.run.name} {state.lower()}: {summary.run.error}"
            + (f" (last errors: {errors})" if errors else "")
        )
    return summary
