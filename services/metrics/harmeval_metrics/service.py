"""MetricsService: studies, agreement between coders and model rankings, from Postgres."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any

import grpc
from prometheus_client import Gauge

from harmeval.common.v1 import common_pb2
from harmeval.db import Repository, open_database
from harmeval.db.repository import PromptIn, StudyAnswer, StudyLabel, StudyModelIn
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.params import GenerationParams
from harmeval.server import ServiceSpec, require_ready
from harmeval.settings import MetricsSettings
from harmeval_metrics.harmmetric import harmmetric_score
from harmeval_metrics.imports import (
    ImportRejected,
    resolve_annotations,
    study_problems,
    validate_import,
)
from harmeval_metrics.reliability import LEVELS, alpha
from harmeval_metrics.reliability_table import reliability_matrix
from harmeval_metrics.study_figures import Options, agreement, disagreements, model_ranking

logger = logging.getLogger(__name__)

# 10,000 resamples of a 100k-unit study take a few seconds; more is never needed.
MAX_BOOTSTRAP = 10_000

AGREEMENT = Gauge(
    "harmeval_metrics_agreement_alpha",
    "Krippendorff's alpha per coder pair of the study whose agreement was asked for last.",
    ["study", "coder_a", "coder_b", "scale", "level"],
)

Context = grpc.aio.ServicerContext[Any, Any]

SPEC = ServiceSpec(
    name="metrics",
    descriptor=metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"],
    add_to_server=metrics_pb2_grpc.add_MetricsServiceServicer_to_server,
)


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
        problems = study_problems(request.name, request.prompts)
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

    async def _study(self, study: str, context: Context) -> Repository:
        """The database, once `study` is known to exist (else NOT_FOUND)."""
        repo = await require_ready(self.repo, context, "metrics database")
        if not await repo.study_exists(study):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown study {study!r}")
        return repo

    async def _labels(self, study: str, context: Context) -> list[StudyLabel]:
        return await (await self._study(study, context)).study_labels(study)

    def _options(self, bootstrap: int, confidence: float, seed: int) -> Options:
        return Options(bootstrap=bootstrap, confidence=confidence or 0.95, seed=seed)

    async def _check_options(
        self, context: Context, bootstrap: int, confidence: float, seed: int
    ) -> None:
        if seed < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"seed: {seed} is negative; use 0 or more"
            )
        if not 0 <= bootstrap <= MAX_BOOTSTRAP:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"bootstrap: {bootstrap} outside 0..{MAX_BOOTSTRAP}",
            )
        if confidence and not 0.5 <= confidence < 1.0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"confidence: {confidence} outside [0.5, 1)"
            )

    async def GetAgreement(
        self, request: metrics_pb2.GetAgreementRequest, context: Context
    ) -> metrics_pb2.GetAgreementResponse:
        await self._check_options(context, request.bootstrap, request.confidence, request.seed)
        unknown = set(request.breakdown) - {"category", "model"}
        if unknown:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"breakdown: unknown {sorted(unknown)}; expected 'category' and/or 'model'",
            )
        labels = await self._labels(request.study, context)
        coders = {label.coder for label in labels if label.status == "ok"}
        if len(coders) < 2:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"study {request.study!r} has {len(coders)} coder(s) with scorable labels; "
                "agreement needs at least two",
            )
        options = self._options(request.bootstrap, request.confidence, request.seed)
        reply = await asyncio.to_thread(agreement, labels, options, list(request.breakdown))
        # Only the latest study asked for: a gauge per study ever seen would grow forever.
        AGREEMENT.clear()
        for p in reply.pairs:
            if not p.subset and p.HasField("alpha"):
                AGREEMENT.labels(request.study, p.coder_a, p.coder_b, p.scale, p.level).set(p.alpha)
        return reply

    async def GetModelRanking(
        self, request: metrics_pb2.GetModelRankingRequest, context: Context
    ) -> metrics_pb2.GetModelRankingResponse:
        await self._check_options(context, request.bootstrap, request.confidence, request.seed)
        labels = await self._labels(request.study, context)
        repo = await require_ready(self.repo, context, "metrics database")
        models = await repo.study_model_names(request.study)
        options = self._options(request.bootstrap, request.confidence, request.seed)
        try:
            reply = await asyncio.to_thread(model_ranking, labels, models, options)
        except ValueError as exc:  # labels that cannot be ranked together (e.g. mixed scales)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{request.study!r}: {exc}")
        for model, (n, counts) in (await repo.study_flags(request.study)).items():
            reply.pathologies.extend(
                metrics_pb2.PathologyRate(model=model, flag=flag, n_flagged=k, n_answers=n)
                for flag, k in sorted(counts.items())
            )
        return reply

    async def ComputeAgreement(
        self, request: metrics_pb2.ComputeAgreementRequest, context: Context
    ) -> metrics_pb2.ComputeAgreementResponse:
        await self._check_options(context, request.bootstrap, request.confidence, request.seed)
        if request.level not in LEVELS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"level: {request.level!r}; expected one of {list(LEVELS)}",
            )
        try:
            matrix = reliability_matrix(request.values, request.level)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if matrix.shape[0] < 2:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{matrix.shape[0]} coder(s) in the table; agreement needs at least two",
            )
        res = await asyncio.to_thread(
            alpha,
            matrix,
            request.level,
            n_bootstrap=request.bootstrap,
            confidence=request.confidence or 0.95,
            seed=request.seed,
        )
        if res.n_units == 0:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no pairable units: no unit has values from two coders",
            )
        return metrics_pb2.ComputeAgreementResponse(
            alpha=res.alpha,
            ci_low=res.ci_low,
            ci_high=res.ci_high,
            n_units=res.n_units,
            n_coders=res.n_coders,
            n_values=res.n_values,
        )

    async def ImportStudy(
        self, request: metrics_pb2.ImportStudyRequest, context: Context
    ) -> metrics_pb2.ImportStudyResponse:
        repo = await require_ready(self.repo, context, "metrics database")
        try:
            data = validate_import(request)
        except ImportRejected as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        study_id = await repo.import_study(
            request.name, data.prompts, data.models, data.answers, data.labels, data.references
        )
        return metrics_pb2.ImportStudyResponse(
            study_id=study_id,
            n_prompts=len(data.prompts),
            n_answers=len(data.answers),
            n_labels=len(data.labels),
        )

    async def ImportAnnotations(
        self, request: metrics_pb2.ImportAnnotationsRequest, context: Context
    ) -> metrics_pb2.ImportAnnotationsResponse:
        repo = await require_ready(self.repo, context, "metrics database")
        if not request.rows:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "rows: no annotations")
        answers = await self._answers(request.study, context)
        n_models = len({a.model for a in answers})
        try:
            annotations = resolve_annotations(request.rows, answers, n_models)
        except ImportRejected as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        existing = await repo.existing_annotations(
            sorted({a.annotator for a in annotations}), [a.generation_id for a in annotations]
        )
        clashes = [a for a in annotations if (a.annotator, a.generation_id) in existing]
        if clashes and not request.replace:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"{len(clashes)} annotation(s) already stored (e.g. by {clashes[0].annotator!r});"
                " nothing imported; ask for replacement explicitly to overwrite them",
            )
        await repo.store_annotations(annotations)
        return metrics_pb2.ImportAnnotationsResponse(
            n_imported=len(annotations) - len(clashes), n_replaced=len(clashes)
        )

    async def _answers(self, study: str, context: Context) -> list[StudyAnswer]:
        return await (await self._study(study, context)).study_answers(study)

    async def GetStudyAnswers(
        self, request: metrics_pb2.GetStudyAnswersRequest, context: Context
    ) -> metrics_pb2.GetStudyAnswersResponse:
        answers = await self._answers(request.study, context)
        repo = await require_ready(self.repo, context, "metrics database")
        references = await repo.study_references(request.study)
        prompts: dict[int, metrics_pb2.StudyPrompt] = {}
        for a in answers:
            if a.prompt_id not in prompts:
                prompts[a.prompt_id] = metrics_pb2.StudyPrompt(
                    prompt=common_pb2.Prompt(
                        prompt_id=a.prompt_id,
                        external_id=a.external_id,
                        text=a.prompt_text,
                        category=a.category,
                    ),
                    references=references.get(a.prompt_id, []),
                )
            prompts[a.prompt_id].answers.append(
                metrics_pb2.StudyAnswer(generation_id=a.generation_id, model=a.model, text=a.text)
            )
        return metrics_pb2.GetStudyAnswersResponse(prompts=list(prompts.values()))

    async def GetDisagreements(
        self, request: metrics_pb2.GetDisagreementsRequest, context: Context
    ) -> metrics_pb2.GetDisagreementsResponse:
        if request.limit < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"limit: {request.limit} is negative"
            )
        repo = await self._study(request.study, context)
        labels = await repo.study_labels(request.study)
        answers = {(a.prompt_id, a.model): a for a in await repo.study_answers(request.study)}
        items = []
        for unit, diff in disagreements(labels, request.limit or 20):
            a = answers[unit]
            items.append(
                metrics_pb2.Disagreement(
                    prompt=a.prompt_text,
                    category=a.category,
                    model=a.model,
                    answer=a.text,
                    human_minus_judge=diff,
                    labels=[
                        metrics_pb2.CoderLabel(
                            coder=lb.coder, harmful=bool(lb.harmful), rank=lb.rank
                        )
                        for lb in labels
                        if (lb.prompt_id, lb.model) == unit and lb.status == "ok"
                    ],
                )
            )
        return metrics_pb2.GetDisagreementsResponse(items=items)

    async def GetHarmMetricScore(
        self, request: metrics_pb2.GetHarmMetricScoreRequest, context: Context
    ) -> metrics_pb2.GetHarmMetricScoreResponse:
        labels = await self._labels(request.study, context)
        mine = [lb for lb in labels if lb.coder == request.judge]
        if not mine:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"judge {request.judge!r} has not scored study {request.study!r}; run "
                "`harmeval benchmark harmmetric --judge NAME` first",
            )
        scores: dict[int, float | None] = {}
        for lb in mine:
            try:
                response_id = int(lb.external_id) * 100 + int(lb.model.rsplit("-", 1)[1])
            except (ValueError, IndexError):
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"study {request.study!r} is not a HarmMetric Eval import",
                )
            scores[response_id] = lb.value if lb.status == "ok" else None
        result = harmmetric_score(scores)
        return metrics_pb2.GetHarmMetricScoreResponse(
            score_v1=result.score_v1,
            score_v2=result.score_v2,
            fine_grained=result.fine_grained,
            n_prompts=result.n_prompts,
            n_skipped=result.n_skipped,
            skipped=[f"prompt {p}: {reason}" for p, reason in result.skipped],
        )
