"""JudgeService: judges the answers to one prompt and stores every verdict once."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

import grpc
from prometheus_client import Counter

from harmeval.common.v1 import common_pb2
from harmeval.db import Repository, open_database
from harmeval.db.repository import JudgeRecord, StoredJudgment
from harmeval.judge.v1 import judge_pb2, judge_pb2_grpc
from harmeval.server import ServiceSpec, require_ready
from harmeval.settings import JudgeSettings
from harmeval_judge.judges import (
    LISTWISE,
    Judge,
    JudgeBackendError,
    OpenAIListwiseJudge,
    ProfanityClassifierJudge,
    RefusalMatcherJudge,
    Verdict,
)

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

SPEC = ServiceSpec(
    name="judge",
    descriptor=judge_pb2.DESCRIPTOR.services_by_name["JudgeService"],
    add_to_server=judge_pb2_grpc.add_JudgeServiceServicer_to_server,
)

VERDICTS = Counter(
    "harmeval_judge_verdicts",
    "New verdicts (stored ones returned again are not counted), by status and reason.",
    ["judge", "status", "reason"],
)

_KINDS = {LISTWISE: judge_pb2.JUDGE_KIND_LISTWISE}
_STATUS = {
    "ok": common_pb2.JUDGMENT_STATUS_OK,
    "unscorable": common_pb2.JUDGMENT_STATUS_UNSCORABLE,
}


def build_panel(settings: JudgeSettings) -> list[Judge]:
    panel: list[Judge] = [RefusalMatcherJudge(), ProfanityClassifierJudge()]
    if settings.judge_llm_enabled:
        panel.append(OpenAIListwiseJudge(settings))
    return panel


def to_proto(
    judge: Judge, generation_id: int, v: Verdict | StoredJudgment, cached: bool
) -> common_pb2.Judgment:
    j = common_pb2.Judgment(
        generation_id=generation_id,
        judge=judge.name,
        protocol=judge.protocol,
        status=_STATUS[v.status],
        harmful=bool(v.harmful),
        value=v.value or 0.0,
        raw_output=v.raw_output,
        reason=v.reason,
        cached=cached,
    )
    if v.rank is not None:
        j.rank = v.rank
    return j


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer):
    def __init__(self, settings: JudgeSettings, panel: list[Judge] | None = None) -> None:
        self.settings = settings
        self.judges: dict[str, Judge] = {j.name: j for j in (panel or build_panel(settings))}
        self.records: dict[str, JudgeRecord] = {}
        self.repo: Repository | None = None

    async def startup(self, stack: AsyncExitStack) -> None:
        self.repo = await stack.enter_async_context(open_database(self.settings))
        for judge in self.judges.values():
            self.records[judge.name] = await self.repo.upsert_judge(
                judge.name, judge.family, judge.protocol, dict(judge.config())
            )
            if isinstance(judge, OpenAIListwiseJudge):
                stack.push_async_callback(judge.close)

    async def ListJudges(
        self, request: judge_pb2.ListJudgesRequest, context: Context
    ) -> judge_pb2.ListJudgesResponse:
        return judge_pb2.ListJudgesResponse(
            judges=[
                judge_pb2.JudgeInfo(
                    name=j.name,
                    family=j.family,
                    kind=_KINDS.get(j.kind, judge_pb2.JUDGE_KIND_POINTWISE),
                    protocol=j.protocol,
                    max_answers=j.max_answers,
                    settings=j.config(),
                )
                for j in self.judges.values()
            ]
        )

    async def _validate(self, request: judge_pb2.JudgeRequest, context: Context) -> Judge:
        judge = self.judges.get(request.judge)
        if judge is None:
            known = ", ".join(sorted(self.judges))
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"unknown judge {request.judge!r}; available: {known}"
            )
        assert judge is not None
        if not request.prompt.text.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "prompt.text: empty prompt text")
        if not request.answers:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "answers: no answers to judge")
        if len(request.answers) > judge.max_answers:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"answers: {len(request.answers)} answers exceed the limit of "
                f"{judge.max_answers} for judge {judge.name!r}",
            )
        limit = self.settings.judge_max_answer_chars
        for i, a in enumerate(request.answers):
            if len(a.text) > limit:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"answers[{i}].text: {len(a.text)} characters exceed the limit of {limit}",
                )
        return judge

    async def Judge(
        self, request: judge_pb2.JudgeRequest, context: Context
    ) -> judge_pb2.JudgeResponse:
        repo = await require_ready(self.repo, context, "judge database")
        judge = await self._validate(request, context)
        record = self.records[judge.name]
        ids = [a.generation_id for a in request.answers]
        stored_ids = [i for i in ids if i != 0]
        if len(set(stored_ids)) != len(stored_ids):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "answers: duplicate generation_id"
            )
        missing = set(stored_ids) - await repo.existing_generation_ids(stored_ids)
        if missing:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"answers: unknown generation_id {sorted(missing)}"
            )

        cached = await repo.find_judgments(record, stored_ids)
        # A listwise verdict is only valid for the whole set, so reuse needs every answer.
        if stored_ids and len(cached) == len(ids):
            return judge_pb2.JudgeResponse(
                judgments=[to_proto(judge, i, cached[i], cached=True) for i in ids]
            )
        try:
            verdicts = await judge.judge(request.prompt.text, [a.text for a in request.answers])
        except JudgeBackendError as exc:
            logger.warning("judge backend unavailable: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        to_store = [
            StoredJudgment(
                i, judge.protocol, v.status, v.harmful, v.value, v.rank, v.raw_output, v.reason
            )
            for i, v in zip(ids, verdicts, strict=True)
            if i != 0
        ]
        if to_store:
            await repo.store_judgments(record, to_store)
        for v in verdicts:
            # The reason's prefix ("duplicate_rank", not "duplicate_rank:2") keeps labels few.
            VERDICTS.labels(
                judge.name, v.status, v.reason.split(":", 1)[0] if v.status == "unscorable" else ""
            ).inc()
        return judge_pb2.JudgeResponse(
            judgments=[
                to_proto(judge, i, v, cached=False) for i, v in zip(ids, verdicts, strict=True)
            ]
        )
