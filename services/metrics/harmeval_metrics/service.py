"""MetricsService: studies, agreement between coders and model rankings, from Postgres."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import grpc

from harmeval.common.v1 import common_pb2
from harmeval.db import Repository, open_database
from harmeval.db.repository import PromptIn, StudyLabel, StudyModelIn
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.params import GenerationParams
from harmeval.server import ServiceSpec, require_ready
from harmeval.settings import MetricsSettings
from harmeval_metrics.agreement import LEVELS, pairwise_agreement
from harmeval_metrics.ranking import CoderJudgment, rank_models

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

SPEC = ServiceSpec(
    name="metrics",
    descriptor=metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"],
    add_to_server=metrics_pb2_grpc.add_MetricsServiceServicer_to_server,
)

Unit = tuple[int, str]


def agreement_pairs(labels: Sequence[StudyLabel]) -> list[metrics_pb2.PairAgreement]:
    """Alpha for every coder pair: on harmful yes/no for all, and on ranks where both rank."""
    harmful: dict[str, dict[Unit, float]] = defaultdict(dict)
    ranks: dict[str, dict[Unit, float]] = defaultdict(dict)
    for label in labels:
        if label.status != "ok" or label.harmful is None:
            continue  # unscorable: missing, never "not harmful"
        unit = (label.prompt_id, label.model)
        harmful[label.coder][unit] = float(label.harmful)
        if label.rank is not None:
            ranks[label.coder][unit] = float(label.rank)
    return [
        metrics_pb2.PairAgreement(
            coder_a=p.coder_a,
            coder_b=p.coder_b,
            level=p.level,
            alpha=p.alpha,
            n_units=p.n_units,
            scale=scale,
        )
        for scale, by_coder, levels in (
            ("harmful", harmful, ("nominal",)),
            ("rank", ranks, LEVELS),
        )
        for p in pairwise_agreement(by_coder, levels=levels)
    ]


def coverage(labels: Sequence[StudyLabel]) -> list[metrics_pb2.CoderCoverage]:
    scored: dict[str, int] = defaultdict(int)
    unscorable: dict[str, int] = defaultdict(int)
    for label in labels:
        if label.status == "ok":
            scored[label.coder] += 1
        else:
            unscorable[label.coder] += 1
    return [
        metrics_pb2.CoderCoverage(coder=c, n_scored=scored[c], n_unscorable=unscorable[c])
        for c in sorted(set(scored) | set(unscorable))
    ]


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.repo: Repository | None = None

    async def startup(self, stack: AsyncExitStack) -> None:
        self.repo = await stack.enter_async_context(open_database(self.settings))

    async def RegisterStudy(
        self, request: metrics_pb2.RegisterStudyRequest, context: Context
    ) -> metrics_pb2.RegisterStudyResponse:
        repo = await require_ready(self.repo, context, "metrics database")
        problems: list[str] = []
        if not request.name.strip():
            problems.append("name: empty study name")
        if not request.prompts:
            problems.append("prompts: empty prompt list")
        problems += [
            f"prompts[{i}].text: empty prompt text"
            for i, p in enumerate(request.prompts)
            if not p.text.strip()
        ]
        if not request.models:
            problems.append("models: no small models")
        names = [m.name for m in request.models]
        if len(set(names)) != len(names):
            problems.append("models: duplicate model names")
        for i, m in enumerate(request.models):
            if not m.name or not m.model:
                problems.append(f"models[{i}]: name and model are required")
            problems += [
                f"models[{i}].params: {p}" for p in GenerationParams.from_proto(m.params).validate()
            ]
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        study_id, prompt_ids = await repo.register_study(
            request.name,
            [
                PromptIn(p.text, p.category or "uncategorized", p.external_id)
                for p in request.prompts
            ],
            [
                StudyModelIn(m.name, m.model, GenerationParams.from_proto(m.params))
                for m in request.models
            ],
            list(request.judges),
        )
        return metrics_pb2.RegisterStudyResponse(
            study_id=study_id,
            prompts=[
                common_pb2.Prompt(
                    prompt_id=pid, external_id=p.external_id, text=p.text, category=p.category
                )
                for pid, p in zip(prompt_ids, request.prompts, strict=True)
            ],
        )

    async def _labels(self, study: str, context: Context) -> list[StudyLabel]:
        repo = await require_ready(self.repo, context, "metrics database")
        if not await repo.study_exists(study):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown study {study!r}")
        return await repo.study_labels(study)

    async def GetAgreement(
        self, request: metrics_pb2.GetAgreementRequest, context: Context
    ) -> metrics_pb2.GetAgreementResponse:
        labels = await self._labels(request.study, context)
        coders = {label.coder for label in labels}
        if len(coders) < 2:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"study {request.study!r} has {len(coders)} coder(s) with labels; agreement "
                "needs at least two",
            )
        return metrics_pb2.GetAgreementResponse(
            pairs=agreement_pairs(labels),
            coverage=coverage(labels),
            n_units=len({(label.prompt_id, label.model) for label in labels}),
        )

    async def GetModelRanking(
        self, request: metrics_pb2.GetModelRankingRequest, context: Context
    ) -> metrics_pb2.GetModelRankingResponse:
        labels = await self._labels(request.study, context)
        rows = rank_models(
            CoderJudgment(
                label.coder, label.model, str(label.prompt_id), bool(label.harmful), label.rank
            )
            for label in labels
            if label.status == "ok"
        )
        out = []
        for r in rows:
            m = metrics_pb2.ModelHarm(
                coder=r.coder, model=r.model, harm_rate=r.harm_rate, n_scored=r.n_scored
            )
            if r.mean_rank is not None:
                m.mean_rank = r.mean_rank
            out.append(m)
        return metrics_pb2.GetModelRankingResponse(rankings=out)
