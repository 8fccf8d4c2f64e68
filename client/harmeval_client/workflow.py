"""A study run driven through the three services, for the CLI and any Python caller (no
terminal output: progress goes to an optional callback).

Every step is idempotent on the service side (stored answers and verdicts are returned, not
recomputed), so running again after an interruption continues where it stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval_client.clients import Clients
from harmeval_client.study import Study

GENERATE_BATCH = 4
JUDGE_CONCURRENCY = 4


class StudyRunError(RuntimeError):
    pass


# (stage, total) once per stage ("generate", "judge"), then (stage, done so far) as work ends.
Progress = Callable[[str, int], None]


@dataclass
class RunSummary:
    generations: Counter[str] = field(default_factory=Counter)
    judgments: Counter[str] = field(default_factory=Counter)


async def check_names(study: Study, clients: Clients) -> None:
    """Fails before any work when the study names a model or judge nobody serves."""
    models = await clients.generator.ListModels(generator_pb2.ListModelsRequest())
    served = {m.name for m in models.models}
    judges = await clients.judge.ListJudges(judge_pb2.ListJudgesRequest())
    offered = {j.name for j in judges.judges}
    problems = [
        f"model {m.model!r} (small model {m.name!r}) is not served; served: {sorted(served)}"
        for m in study.models
        if m.model not in served
    ]
    problems += [
        f"judge {j!r} is not offered; available: {sorted(offered)}"
        for j in study.judges
        if j not in offered
    ]
    if problems:
        raise StudyRunError("; ".join(problems))


async def define_judges(study: Study, clients: Clients) -> None:
    """Sends the judges the study file defines to the judge service (idempotent)."""
    for definition in study.judge_definitions:
        try:
            await clients.judge.DefineJudge(
                judge_pb2.DefineJudgeRequest(definition=json.dumps(definition))
            )
        except grpc.aio.AioRpcError as exc:
            raise StudyRunError(
                f"judge definition {definition.get('name')!r}: {exc.details()}"
            ) from exc


async def run_study(
    study: Study,
    clients: Clients,
    *,
    rejudge_unscorable: bool = False,
    on_total: Progress | None = None,
    on_advance: Progress | None = None,
) -> RunSummary:
    """Generates and judges what is not stored yet; `rejudge_unscorable` also asks the judges
    again where their stored verdict is unscorable. `on_total(stage, n)` announces a stage's
    size, `on_advance(stage, k)` reports k more items of it done."""
    total = on_total or (lambda stage, n: None)
    advance = on_advance or (lambda stage, k: None)
    await define_judges(study, clients)
    await check_names(study, clients)
    registered = await clients.metrics.RegisterStudy(
        metrics_pb2.RegisterStudyRequest(
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
        )
    )
    prompts = list(registered.prompts)
    summary = RunSummary()
    # answers[prompt index][model index]
    answers: list[list[common_pb2.Generation | None]] = [
        [None] * len(study.models) for _ in prompts
    ]
    total("generate", len(prompts) * len(study.models))
    total("judge", len(prompts) * len(study.judges))
    for mi, model in enumerate(study.models):
        for start in range(0, len(prompts), GENERATE_BATCH):
            batch = prompts[start : start + GENERATE_BATCH]
            reply = await clients.generator.Generate(
                generator_pb2.GenerateRequest(
                    model=model.model, prompts=batch, params=model.params.to_proto()
                )
            )
            for offset, g in enumerate(reply.generations):
                answers[start + offset][mi] = g
                summary.generations["cached" if g.cached else "new"] += 1
            advance("generate", len(batch))

    limit = asyncio.Semaphore(JUDGE_CONCURRENCY)

    async def judge_one(pi: int, judge: str) -> None:
        gens = [g for g in answers[pi] if g is not None]
        async with limit:
            reply = await clients.judge.Judge(
                judge_pb2.JudgeRequest(
                    judge=judge,
                    prompt=prompts[pi],
                    answers=[
                        judge_pb2.Answer(generation_id=g.generation_id, text=g.text) for g in gens
                    ],
                    rejudge_unscorable=rejudge_unscorable,
                )
            )
        for j in reply.judgments:
            if j.status == common_pb2.JUDGMENT_STATUS_UNSCORABLE:
                summary.judgments["unscorable"] += 1
            summary.judgments["cached" if j.cached else "new"] += 1
        advance("judge", 1)

    try:
        await asyncio.gather(
            *(judge_one(pi, judge) for pi in range(len(prompts)) for judge in study.judges)
        )
    except grpc.aio.AioRpcError as exc:
        raise StudyRunError(
            f"judging stopped: {exc.code().name}: {exc.details()} "
            "(finished verdicts are stored; run again to continue)"
        ) from exc
    return summary
