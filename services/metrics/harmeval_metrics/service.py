"""MetricsService: studies, agreement between coders and model rankings, from Postgres."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import grpc
from prometheus_client import Gauge

from harmeval.clients import OWNER_DEADLINE_S, call_owner, channel
from harmeval.common.v1 import common_pb2
from harmeval.db import missing_views
from harmeval.generator.v1 import generator_pb2
from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.judge.v1 import judge_pb2
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.params import GenerationParams
from harmeval.server import Servicer, ServiceSpec, require_ready
from harmeval.validation import listed, name_problems
from harmeval.verdicts import OK, UNSCORABLE
from harmeval_metrics import labelling_plan, labelling_progress
from harmeval_metrics.harmmetric import harmmetric_score
from harmeval_metrics.imports import (
    ImportRejected,
    ValidatedImport,
    resolve_annotations,
    study_problems,
    validate_import,
)
from harmeval_metrics.records import (
    IMPORTED_PROTOCOL,
    PromptIn,
    StudyAnswer,
    StudyLabel,
    StudyModelIn,
    imported_model,
)
from harmeval_metrics.reliability import LEVELS, alpha
from harmeval_metrics.reliability_table import reliability_matrix
from harmeval_metrics.responses import (
    agreement_response,
    disagreements_response,
    ranking_response,
    to_proto,
)
from harmeval_metrics.settings import MetricsSettings
from harmeval_metrics.store import PUBLISHED_VIEWS, SCHEMA, MetricsStore, StudyBusy
from harmeval_metrics.study_figures import DISAGREEMENT_LIMIT, Options, Study

logger = logging.getLogger(__name__)

# 10,000 resamples of a 100k-unit study take a few seconds; more is never needed.
MAX_BOOTSTRAP = 10_000

AGREEMENT = Gauge(
    "harmeval_metrics_agreement_alpha",
    "Krippendorff's alpha per coder pair of the study whose agreement was asked for last.",
    ["study", "coder_a", "coder_b", "scale", "level"],
)

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")

_KINDS = {"human": judge_pb2.ANNOTATOR_KIND_HUMAN, "model": judge_pb2.ANNOTATOR_KIND_MODEL}


def _owner_deadline(context: Context) -> float:
    remaining = context.time_remaining()
    return OWNER_DEADLINE_S if remaining is None else min(remaining, OWNER_DEADLINE_S)


SPEC = ServiceSpec(
    name="metrics",
    descriptor=metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"],
    add_to_server=metrics_pb2_grpc.add_MetricsServiceServicer_to_server,
)


# What one ComputeAgreement may ask for: the coders x units matrix and the values x values
# coincidence matrix are built whole (300,000 distinct coders and units would be 671 GiB).
MAX_TABLE_CELLS = 20_000_000
MAX_DISTINCT_VALUES = 10_000


def _table_too_large(values: Sequence[metrics_pb2.ReliabilityValue]) -> str:
    coders = {v.coder for v in values}
    units = {v.unit for v in values}
    distinct = {v.category if v.HasField("category") else v.number for v in values}
    if len(coders) * len(units) > MAX_TABLE_CELLS:
        return (
            f"{len(coders)} coders x {len(units)} units is more than {MAX_TABLE_CELLS:,} "
            "cells; split the table"
        )
    if len(distinct) > MAX_DISTINCT_VALUES:
        return f"{len(distinct)} distinct values; at most {MAX_DISTINCT_VALUES:,} are supported"
    return ""


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer, Servicer):
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.repo: MetricsStore | None = None
        self.generator: GeneratorServiceStub | None = None
        self.judge: JudgeServiceStub | None = None

    async def startup(self, stack: AsyncExitStack) -> None:
        self.repo = MetricsStore(await self.database(stack, self.settings, SCHEMA))
        # Prompts, answers and labels belong to the generator and the judge service: imports
        # store them through those services' RPCs.
        generator = channel(self.settings.metrics_generator_target, self.settings)
        stack.push_async_callback(generator.close, None)
        judge = channel(self.settings.metrics_judge_target, self.settings)
        stack.push_async_callback(judge.close, None)
        self.generator = GeneratorServiceStub(generator)
        self.judge = JudgeServiceStub(judge)

    async def _owner(
        self, method: Callable[..., Awaitable[T]], request: Any, owner: str, context: Context
    ) -> T:
        return await call_owner(method, request, owner, context)

    @asynccontextmanager
    async def _study_lock(
        self, repo: MetricsStore, study: str, context: Context
    ) -> AsyncIterator[None]:
        """The study's lock for a write that spans services; ABORTED when another request
        keeps it past this one's deadline."""
        try:
            async with repo.study_lock(study, _owner_deadline(context)):
                yield
        except StudyBusy as exc:
            await context.abort(grpc.StatusCode.ABORTED, f"{exc}; retry when it has finished")

    async def _store_answers(
        self,
        prompts: Sequence[common_pb2.Prompt],
        context: Context,
        answers: Sequence[generator_pb2.ImportedGeneration] = (),
    ) -> generator_pb2.ImportGenerationsResponse:
        """Prompts (and answers made elsewhere) stored by their owner, the generator."""
        generator = await require_ready(self.generator, context, "generator client")
        return await self._owner(
            generator.ImportGenerations,
            generator_pb2.ImportGenerationsRequest(prompts=prompts, generations=answers),
            "generator",
            context,
        )

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
        if len(set(request.judges)) != len(request.judges):
            problems.append("judges: a judge is listed more than once")
        problems += name_problems(
            [(f"models[{i}].name", m.name) for i, m in enumerate(request.models)]
            + [(f"models[{i}].model", m.model) for i, m in enumerate(request.models)]
            + [(f"judges[{i}]", j) for i, j in enumerate(request.judges)]
        )
        for i, m in enumerate(request.models):
            if not m.name or not m.model:
                problems.append(f"models[{i}]: name and model are required")
            problems += [
                f"models[{i}].params: {p}" for p in GenerationParams.from_proto(m.params).validate()
            ]
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        async with self._study_lock(repo, request.name, context):
            stored = await self._store_answers(
                [common_pb2.Prompt(text=p.text, category=p.category) for p in request.prompts],
                context,
            )
            study_id = await self._register(repo, request, list(stored.prompt_ids))
        return metrics_pb2.RegisterStudyResponse(
            study_id=study_id,
            prompts=[
                common_pb2.Prompt(
                    prompt_id=pid, external_id=p.external_id, text=p.text, category=p.category
                )
                for pid, p in zip(stored.prompt_ids, request.prompts, strict=True)
            ],
        )

    async def GetStudy(
        self, request: metrics_pb2.GetStudyRequest, context: Context
    ) -> metrics_pb2.GetStudyResponse:
        repo = await require_ready(self.repo, context, "metrics database")
        found = await repo.study_definition(request.name)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no study named {request.name!r}")
        assert found is not None
        prompts, models, judges = found
        return metrics_pb2.GetStudyResponse(
            name=request.name,
            prompts=[
                common_pb2.Prompt(
                    prompt_id=pid, external_id=p.external_id, text=p.text, category=p.category
                )
                for pid, p in prompts
            ],
            models=[
                metrics_pb2.StudyModel(name=m.name, model=m.model_name, params=m.params.to_proto())
                for m in models
            ],
            judges=judges,
        )

    async def _register(
        self, repo: MetricsStore, request: metrics_pb2.RegisterStudyRequest, prompt_ids: list[int]
    ) -> int:
        return await repo.register_study(
            request.name,
            prompt_ids,
            [
                PromptIn(
                    text=p.text, category=p.category or "uncategorized", external_id=p.external_id
                )
                for p in request.prompts
            ],
            [
                StudyModelIn(
                    name=m.name, model_name=m.model, params=GenerationParams.from_proto(m.params)
                )
                for m in request.models
            ],
            list(request.judges),
        )

    async def _study(self, study: str, context: Context) -> MetricsStore:
        """The database, once `study` is known to exist (else NOT_FOUND)."""
        repo = await require_ready(self.repo, context, "metrics database")
        if not await repo.study_exists(study):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown study {study!r}")
        missing = await missing_views(repo.pool, PUBLISHED_VIEWS)
        if missing:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{', '.join(missing)} missing: the services that publish them (generator, "
                "judge) have not started against this database yet",
            )
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
        if unknown or len(request.breakdown) != len(set(request.breakdown)):
            # Repeats too: 200,000 "category" would mean 200,000 times the same work.
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "breakdown: expected 'category' and/or 'model', each at most once; got "
                f"{len(request.breakdown)} entries",
            )
        labels = await self._labels(request.study, context)
        coders = {label.coder for label in labels if label.status == OK}
        if len(coders) < 2:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"study {request.study!r} has {len(coders)} coder(s) with scorable labels; "
                "agreement needs at least two",
            )
        study = Study(
            labels=labels,
            options=self._options(request.bootstrap, request.confidence, request.seed),
            breakdown=list(request.breakdown),
        )
        reply = agreement_response(await asyncio.to_thread(study.report, "agreement"))
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
        target = request.target_half_width or 0.05
        if not 0.0 < target <= 0.5:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"target_half_width: {target} is not in (0, 0.5]",
            )
        labels = await self._labels(request.study, context)
        repo = await require_ready(self.repo, context, "metrics database")
        inclusion, app_labelled = await repo.study_inclusion(request.study)
        options = self._options(request.bootstrap, request.confidence, request.seed)
        study = Study(
            labels=labels,
            options=replace(options, target_half_width=target),
            models=await repo.study_model_names(request.study),
            flags=await repo.study_flags(request.study),
            inclusion=inclusion,
            app_labelled=app_labelled,
        )
        try:
            results = await asyncio.to_thread(study.report, "ranking")
        except ValueError as exc:  # labels that cannot be ranked together (e.g. mixed scales)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{request.study!r}: {exc}")
        return ranking_response(results)

    async def ComputeAgreement(
        self, request: metrics_pb2.ComputeAgreementRequest, context: Context
    ) -> metrics_pb2.ComputeAgreementResponse:
        await self._check_options(context, request.bootstrap, request.confidence, request.seed)
        if request.level not in LEVELS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"level: {request.level!r}; expected one of {list(LEVELS)}",
            )
        # Off the event loop, like everything below: 300,000 values take half a second.
        if problem := await asyncio.to_thread(_table_too_large, request.values):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, problem)
        try:
            matrix = await asyncio.to_thread(reliability_matrix, request.values, request.level)
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
        # An import spans three services: two of the same study (on any replicas) must not
        # interleave one's labels with the other's membership.
        async with self._study_lock(repo, request.name, context):
            return await self._import_study(repo, request, data, context)

    async def _import_study(
        self,
        repo: MetricsStore,
        request: metrics_pb2.ImportStudyRequest,
        data: ValidatedImport,
        context: Context,
    ) -> metrics_pb2.ImportStudyResponse:
        judge = await require_ready(self.judge, context, "judge client")
        # The judge service refuses labels under its judges' names; asked first, so that such
        # an import is refused before any owner has stored a row of it.
        offered = await self._owner(
            judge.ListJudges,
            judge_pb2.ListJudgesRequest(),
            "judge",
            context,
        )
        judges = {j.name for j in offered.judges}
        taken = [
            f"labels[{i}].annotator: {lb.annotator!r} is a judge of the judge service (its "
            "verdicts come only from judging); name the data set's coder otherwise"
            for i, lb in enumerate(data.labels)
            if lb.annotator in judges
        ]
        if taken:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, listed(taken))
        # Owner by owner, each step idempotent: a retry after a failure converges.
        answers = [*data.answers, *data.references]
        stored = await self._store_answers(
            [common_pb2.Prompt(text=p.text, category=p.category) for p in data.prompts],
            context,
            [
                generator_pb2.ImportedGeneration(
                    prompt_index=a.prompt_index,
                    model=imported_model(request.name, a.model),
                    text=a.text,
                )
                for a in answers
            ],
        )
        prompt_ids = list(stored.prompt_ids)
        answer_ids = list(stored.generation_ids[: len(data.answers)])
        reference_ids = list(stored.generation_ids[len(data.answers) :])
        generation_of = {
            (a.prompt_index, a.model): gid for a, gid in zip(data.answers, answer_ids, strict=True)
        }
        if answer_ids:
            await self._owner(
                judge.ImportJudgments,
                judge_pb2.ImportJudgmentsRequest(
                    judgments=[
                        judge_pb2.ImportedJudgment(
                            generation_id=generation_of[(lb.prompt_index, lb.model)],
                            annotator=lb.annotator,
                            annotator_kind=_KINDS[lb.annotator_kind],
                            coder=lb.coder,
                            protocol=IMPORTED_PROTOCOL,
                            unscorable=lb.status == UNSCORABLE,
                            harmful=lb.harmful,
                            value=lb.value,
                            rank=lb.rank,
                            raw_output=lb.raw_output,
                            reason=lb.reason,
                        )
                        for lb in data.labels
                    ],
                    replace_generation_ids=answer_ids,
                    replace_protocol=IMPORTED_PROTOCOL,
                    overwrite=True,
                ),
                "judge",
                context,
            )
        study_id = await repo.register_study(
            request.name,
            prompt_ids,
            data.prompts,
            [
                StudyModelIn(
                    name=m, model_name=imported_model(request.name, m), params=GenerationParams()
                )
                for m in data.models
            ],
            sorted({label.coder for label in data.labels}),
            source="import",
            references=[
                (prompt_ids[r.prompt_index], gid)
                for r, gid in zip(data.references, reference_ids, strict=True)
            ],
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
        judge = await require_ready(self.judge, context, "judge client")
        if not request.rows:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "rows: no annotations")
        answers = await self._answers(request.study, context)
        n_models = len({a.model for a in answers})
        try:
            annotations = resolve_annotations(request.rows, answers, n_models)
        except ImportRejected as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        reply = await self._owner(
            judge.ImportJudgments,
            judge_pb2.ImportJudgmentsRequest(
                judgments=[
                    judge_pb2.ImportedJudgment(
                        generation_id=a.generation_id,
                        annotator=a.annotator,
                        annotator_kind=judge_pb2.ANNOTATOR_KIND_HUMAN,
                        protocol="human",
                        harmful=a.harmful,
                        value=a.value,
                        rank=a.rank,
                    )
                    for a in annotations
                ],
                overwrite=request.replace,
            ),
            "judge",
            context,
        )
        return metrics_pb2.ImportAnnotationsResponse(
            n_imported=reply.n_imported, n_replaced=reply.n_replaced
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

    async def PlanLabelling(
        self, request: metrics_pb2.PlanLabellingRequest, context: Context
    ) -> metrics_pb2.PlanLabellingResponse:
        designs = {
            metrics_pb2.LABELLING_DESIGN_UNIFORM: labelling_plan.UNIFORM,
            metrics_pb2.LABELLING_DESIGN_ACTIVE: labelling_plan.ACTIVE,
        }
        design = designs.get(request.design)
        if design is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "design: UNIFORM or ACTIVE")
        if request.seed < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"seed: {request.seed} is negative"
            )
        if not 0.0 <= request.uniform_share <= 1.0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"uniform_share: {request.uniform_share} is not in [0, 1]",
            )
        repo = await self._study(request.study, context)
        answers = await repo.study_answers(request.study)
        labels = await repo.study_labels(request.study)
        prompts, disagreement, judges = await asyncio.to_thread(
            labelling_plan.prompt_disagreement, answers, labels
        )
        if not 1 <= request.budget <= len(prompts):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"budget: {request.budget}; expected 1 to {len(prompts)} (the study's prompts "
                "with answers)",
            )
        planned = labelling_plan.plan(
            prompts,
            disagreement,
            budget=request.budget,
            design=design,
            uniform_share=request.uniform_share or labelling_plan.DEFAULT_UNIFORM_SHARE,
            seed=request.seed,
        )
        return metrics_pb2.PlanLabellingResponse(
            prompts=[
                metrics_pb2.PlannedPrompt(
                    prompt_id=p.prompt_id,
                    external_id=p.external_id,
                    position=p.position,
                    inclusion_probability=p.inclusion_probability,
                    selected=p.selected,
                    judge_disagreement=p.judge_disagreement,
                )
                for p in planned
            ],
            judges=judges if design == labelling_plan.ACTIVE else [],
        )

    async def GetLabellingProgress(
        self, request: metrics_pb2.GetLabellingProgressRequest, context: Context
    ) -> metrics_pb2.GetLabellingProgressResponse:
        await self._check_options(context, 0, request.confidence, 0)
        if request.half_width and not 0.0 < request.half_width <= 0.5:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"half_width: {request.half_width} is not in (0, 0.5]",
            )
        repo = await self._study(request.study, context)
        labels = await repo.study_labels(request.study)
        study = Study(
            labels=labels,
            options=self._options(0, request.confidence, 0),
            models=await repo.study_model_names(request.study),
        )
        # The judge first: the annotation app checks a stopping rule's judge before its queue.
        judges = {lb.coder for lb in labels if lb.coder_kind != "human"}
        if request.judge and request.judge not in judges:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"{request.judge!r} is not a judge of study {request.study!r}",
            )
        queue = await repo.labelling_queue(request.study)
        answers = await repo.study_units(request.study)
        if queue is None:
            if request.judge:
                # No queue yet: the judge must have judged every answer the queue may hold.
                try:
                    labelling_progress.require_judged(study, request.judge, answers, "the study's")
                except labelling_progress.JudgeIncomplete as exc:
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"study {request.study!r} has no annotation queue (harmeval annotate open)",
            )
        # Unset: the queue's own rule (what the app stops on), else 0.05 and people alone. The
        # bets are tuned for the queue's rule whatever threshold is asked.
        half_width = (
            request.half_width or queue.stop_half_width or labelling_progress.DEFAULT_HALF_WIDTH
        )
        judge = request.judge or (queue.stop_judge if not request.half_width else "")
        run, waiting = labelling_progress.labelled_run(queue.order)
        try:
            models = await asyncio.to_thread(
                labelling_progress.labelling_progress,
                study,
                run,
                inclusion=queue.queued,
                answers={u for u in answers if u[0] in queue.queued},
                judge=judge,
                half_width=half_width,
                tune_width=queue.stop_half_width,
                design=queue.design,
            )
        except (labelling_progress.NotUniform, labelling_progress.JudgeIncomplete) as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return metrics_pb2.GetLabellingProgressResponse(
            models=[to_proto(m, metrics_pb2.ModelLabellingProgress()) for m in models],
            enough=bool(models) and all(m.enough for m in models),
            half_width=half_width,
            confidence=study.options.confidence,
            judge=judge,
            n_waiting=waiting,
        )

    async def GetDisagreements(
        self, request: metrics_pb2.GetDisagreementsRequest, context: Context
    ) -> metrics_pb2.GetDisagreementsResponse:
        if request.limit < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"limit: {request.limit} is negative"
            )
        repo = await self._study(request.study, context)
        study = Study(
            labels=await repo.study_labels(request.study),
            answers=await repo.study_answers(request.study),
            limit=request.limit or DISAGREEMENT_LIMIT,
        )
        return disagreements_response(study.report("disagreements"))

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
            scores[response_id] = lb.value if lb.status == OK else None
        result = harmmetric_score(scores)
        return metrics_pb2.GetHarmMetricScoreResponse(
            score_v1=result.score_v1,
            score_v2=result.score_v2,
            fine_grained=result.fine_grained,
            n_prompts=result.n_prompts,
            n_skipped=result.n_skipped,
            skipped=[f"prompt {p}: {reason}" for p, reason in result.skipped],
        )
