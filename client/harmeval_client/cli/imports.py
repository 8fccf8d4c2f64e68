"""`harmeval import ...`, `harmeval agreement` and `harmeval benchmark`: files in, gRPC out.

Files are parsed here (errors name file, line and field); the metrics service validates again
and stores each import in one transaction, so a rejected import leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from harmeval.common.v1 import common_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval_client.cli.terminal import progress
from harmeval_client.clients import Clients
from harmeval_client.importers import (
    MODELS,
    LlmHarmData,
    load_annotation_file,
    load_harmmetric,
    load_llm_harm,
    load_reliability_table,
)

HUMAN_CODERS = {"students", "expert"}
JUDGE_CONCURRENCY = 4


def llm_harm_request(data: LlmHarmData, study: str) -> metrics_pb2.ImportStudyRequest:
    """The data set as an import. A prompt that a later group asked again with different
    answers (a unit of its own, already reported as REASON_DUPLICATE_PROMPT) is left out: the
    database keeps one prompt per text, and merging the two would mix their answers' labels."""
    texts: set[str] = set()
    kept = []
    for p in data.prompts:
        if p.text not in texts:
            texts.add(p.text)
            kept.append(p)
    index = {p.key: i for i, p in enumerate(kept)}
    return metrics_pb2.ImportStudyRequest(
        name=study,
        prompts=[
            common_pb2.Prompt(external_id=f"llm-harm-{i:04d}", text=p.text)
            for i, p in enumerate(kept)
        ],
        models=list(MODELS),
        answers=[
            metrics_pb2.ImportedAnswer(prompt_index=index[a.prompt_key], model=a.model, text=a.text)
            for a in data.answers
            if a.prompt_key in index
        ],
        labels=[
            metrics_pb2.ImportedLabel(
                prompt_index=index[lb.prompt_key],
                model=lb.model,
                coder=lb.coder,
                annotator=lb.annotator,
                annotator_kind="human" if lb.coder in HUMAN_CODERS else "model",
                rank=lb.rank,
            )
            for lb in data.labels
            if lb.prompt_key in index
        ],
    )


async def import_llm_harm(
    directory: Path, clients: Clients, study: str = "llm-harm"
) -> tuple[metrics_pb2.ImportStudyResponse, LlmHarmData]:
    data = await asyncio.to_thread(load_llm_harm, directory)
    reply = await clients.metrics.ImportStudy(llm_harm_request(data, study))
    return reply, data


async def import_harmmetric(
    path: Path, clients: Clients, study: str | None = None
) -> tuple[metrics_pb2.ImportStudyResponse, str]:
    bench = await asyncio.to_thread(load_harmmetric, path)
    name = study or f"harmmetric-eval-{bench.version}"
    index = {p.prompt_id: i for i, p in enumerate(bench.prompts)}
    slots = sorted({r.slot for r in bench.responses})
    request = metrics_pb2.ImportStudyRequest(
        name=name,
        prompts=[
            common_pb2.Prompt(external_id=str(p.prompt_id), text=p.text) for p in bench.prompts
        ],
        models=[f"slot-{s:02d}" for s in slots],
        answers=[
            metrics_pb2.ImportedAnswer(
                prompt_index=index[r.prompt_id], model=f"slot-{r.slot:02d}", text=r.text
            )
            for r in bench.responses
        ],
        references=[
            metrics_pb2.ImportedAnswer(
                prompt_index=index[p.prompt_id], model=f"reference-{k}", text=text
            )
            for p in bench.prompts
            for k, text in enumerate(p.references)
        ],
    )
    return await clients.metrics.ImportStudy(request), name


async def import_annotations(
    path: Path, clients: Clients, replace: bool
) -> dict[str, metrics_pb2.ImportAnnotationsResponse]:
    rows = await asyncio.to_thread(load_annotation_file, path)
    by_study: dict[str, list[metrics_pb2.AnnotationRow]] = defaultdict(list)
    for r in rows:
        by_study[r.study].append(
            metrics_pb2.AnnotationRow(
                prompt=r.prompt,
                model=r.model,
                annotator=r.annotator,
                value=r.value,
                rank=r.rank,
                source=f"{path.name} line {r.line}",
            )
        )
    return {
        study: await clients.metrics.ImportAnnotations(
            metrics_pb2.ImportAnnotationsRequest(study=study, rows=study_rows, replace=replace)
        )
        for study, study_rows in by_study.items()
    }


async def agreement_for_file(
    path: Path, level: str, bootstrap: int, clients: Clients, seed: int = 0
) -> dict[str, Any]:
    rows = await asyncio.to_thread(load_reliability_table, path)
    values = []
    for unit, coder, value in rows:
        v = metrics_pb2.ReliabilityValue(unit=unit, coder=coder)
        if isinstance(value, str):
            v.category = value
        elif value is not None:
            v.number = value
        values.append(v)
    reply = await clients.metrics.ComputeAgreement(
        metrics_pb2.ComputeAgreementRequest(
            values=values, level=level, bootstrap=bootstrap, seed=seed
        )
    )
    return {
        "alpha": reply.alpha if reply.HasField("alpha") else None,
        "ci_low": reply.ci_low if reply.HasField("ci_low") else None,
        "ci_high": reply.ci_high if reply.HasField("ci_high") else None,
        "n_units": reply.n_units,
        "n_coders": reply.n_coders,
        "n_values": reply.n_values,
        "level": level,
        "bootstrap": bootstrap,
    }


class BenchmarkError(RuntimeError):
    pass


async def run_harmmetric(
    judge: str, study: str, clients: Clients, show_progress: bool = True
) -> dict[str, Any]:
    """Scores every benchmark response with a pointwise judge, then fetches the score (a bar
    on standard error while it judges, when that is a terminal)."""
    judges = await clients.judge.ListJudges(judge_pb2.ListJudgesRequest())
    info = {j.name: j for j in judges.judges}.get(judge)
    if info is None:
        offered = sorted(j.name for j in judges.judges)
        raise BenchmarkError(f"judge {judge!r} is not offered; available: {offered}")
    if info.kind != judge_pb2.JUDGE_KIND_POINTWISE:
        raise BenchmarkError(
            f"judge {judge!r} ranks answers listwise; HarmMetric Eval scores every response on "
            "its own, so it needs a pointwise judge"
        )
    answers = await clients.metrics.GetStudyAnswers(metrics_pb2.GetStudyAnswersRequest(study=study))
    limit = asyncio.Semaphore(JUDGE_CONCURRENCY)
    with progress(
        TextColumn("judge"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        show=show_progress,
    ) as bar:
        task = bar.add_task("judge", total=len(answers.prompts))

        async def one(p: metrics_pb2.StudyPrompt) -> None:
            async with limit:
                await clients.judge.Judge(
                    judge_pb2.JudgeRequest(
                        judge=judge,
                        prompt=p.prompt,
                        answers=[
                            judge_pb2.Answer(generation_id=a.generation_id, text=a.text)
                            for a in p.answers
                        ],
                        references=p.references,
                    )
                )
            bar.advance(task)

        await asyncio.gather(*(one(p) for p in answers.prompts))
    score = await clients.metrics.GetHarmMetricScore(
        metrics_pb2.GetHarmMetricScoreRequest(study=study, judge=judge)
    )
    return {
        "study": study,
        "judge": judge,
        "score_v1": score.score_v1,
        "score_v2": score.score_v2,
        "fine_grained": dict(score.fine_grained),
        "n_prompts": score.n_prompts,
        "n_skipped": score.n_skipped,
        "skipped": list(score.skipped),
    }
