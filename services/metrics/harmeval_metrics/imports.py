"""Validation of imported studies and human annotations before anything is stored.

Every problem is collected and reported together, naming the row, so a user fixes a file in
one pass; nothing is written unless the whole request is valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harmeval.common.v1 import common_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.validation import MAX_LISTED, listed, name_problems
from harmeval.verdicts import OK, UNSCORABLE
from harmeval_metrics.records import Annotation, ImportAnswer, ImportLabel, PromptIn, StudyAnswer


class ImportRejected(ValueError):
    """The request is invalid; `str()` lists the problems."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(listed(problems))
        self.problems = list(problems)


class AnnotationConflict(ValueError):
    """Annotations already stored and replacement was not asked for."""


def harmful_of(value: float | None, rank: int | None) -> bool:
    return rank > 0 if rank is not None else (value or 0.0) >= 0.5


@dataclass(frozen=True, kw_only=True)
class ValidatedImport:
    prompts: list[PromptIn]
    models: list[str]
    answers: list[ImportAnswer]
    labels: list[ImportLabel]
    references: list[ImportAnswer]


def study_problems(name: str, prompts: Sequence[common_pb2.Prompt]) -> list[str]:
    """What every new study needs: a name and non-empty prompts."""
    problems = [] if name.strip() else ["name: empty study name"]
    problems += name_problems([("name", name)])
    if not prompts:
        problems.append("prompts: empty prompt list")
    problems += [
        f"prompts[{i}].text: empty prompt text" for i, p in enumerate(prompts) if not p.text.strip()
    ]
    # Prompts are stored once per text: two with one text would silently become one.
    first: dict[str, int] = {}
    for i, p in enumerate(prompts):
        if p.text.strip() and first.setdefault(p.text, i) != i:
            problems.append(f"prompts[{i}].text: same text as prompts[{first[p.text]}]")
    return problems


class _LabelKinds:
    """Whether each coder gives ranks or only values: one coder cannot do both (its ranking
    would mix two scales)."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, bool], str] = {}

    def check(self, coder: str, ranked: bool, where: str) -> str | None:
        self.first.setdefault((coder, ranked), where)
        other = self.first.get((coder, not ranked))
        if other is None:
            return None
        ranked_at, valued_at = (where, other) if ranked else (other, where)
        return (
            f"{where}: {coder!r} gives a rank at {ranked_at} but only a value at {valued_at}; "
            "one coder's labels must all be ranks or all be values"
        )


def validate_import(request: metrics_pb2.ImportStudyRequest) -> ValidatedImport:
    problems = study_problems(request.name, request.prompts)
    models = list(request.models)
    if not models or len(set(models)) != len(models) or not all(models):
        problems.append("models: expected a non-empty list of distinct names")
    problems += name_problems((f"models[{i}]", m) for i, m in enumerate(models))
    n = len(request.prompts)

    def check_ref(where: str, index: int, model: str, allowed: set[str] | None) -> None:
        if not 0 <= index < n:
            problems.append(f"{where}.prompt_index: {index} is not a prompt index (0..{n - 1})")
        if allowed is not None and model not in allowed:
            problems.append(f"{where}.model: unknown model {model!r}")

    known = set(models)
    answered: set[tuple[int, str]] = set()
    for i, a in enumerate(request.answers):
        check_ref(f"answers[{i}]", a.prompt_index, a.model, known)
        if (a.prompt_index, a.model) in answered:
            problems.append(f"answers[{i}]: second answer for the same prompt and model")
        answered.add((a.prompt_index, a.model))
    referenced: set[tuple[int, str]] = set()
    for i, r in enumerate(request.references):
        check_ref(f"references[{i}]", r.prompt_index, r.model, None)
        if r.model in known:
            # Stored like answers, under the study's model names: one would replace the other.
            problems.append(f"references[{i}].model: {r.model!r} is also an answering model")
        if (r.prompt_index, r.model) in referenced:
            problems.append(f"references[{i}]: second reference for the same prompt and model")
        referenced.add((r.prompt_index, r.model))
    labelled: set[tuple[int, str, str]] = set()
    kinds = _LabelKinds()
    labels: list[ImportLabel] = []
    for i, lb in enumerate(request.labels):
        where = f"labels[{i}]"
        check_ref(where, lb.prompt_index, lb.model, known)
        if (lb.prompt_index, lb.model) not in answered:
            problems.append(f"{where}: no answer for prompt {lb.prompt_index} and {lb.model!r}")
        if not lb.annotator.strip() or not lb.coder.strip():
            problems.append(f"{where}: annotator and coder are required")
        if lb.annotator_kind not in ("human", "model"):
            problems.append(f"{where}.annotator_kind: expected 'human' or 'model'")
        key = (lb.prompt_index, lb.model, lb.annotator)
        if key in labelled:
            problems.append(f"{where}: duplicate label by {lb.annotator!r}")
        labelled.add(key)
        rank = lb.rank if lb.HasField("rank") else None
        value = lb.value if lb.HasField("value") else None
        if rank is not None and not 0 <= rank <= len(models):
            problems.append(f"{where}.rank: {rank} outside 0..{len(models)}")
        if value is not None and not 0.0 <= value <= 1.0:
            problems.append(f"{where}.value: {value} outside [0, 1]")
        if not lb.unscorable and rank is None and value is None:
            problems.append(f"{where}: a scorable label needs a value or a rank")
        elif not lb.unscorable and (mixed := kinds.check(lb.coder, rank is not None, where)):
            problems.append(mixed)
        labels.append(
            ImportLabel(
                prompt_index=lb.prompt_index,
                model=lb.model,
                coder=lb.coder,
                annotator=lb.annotator,
                annotator_kind=lb.annotator_kind,
                status=UNSCORABLE if lb.unscorable else OK,
                harmful=None if lb.unscorable else harmful_of(value, rank),
                value=None if lb.unscorable else value,
                rank=None if lb.unscorable else rank,
                raw_output=lb.raw_output,
                reason=lb.reason,
            )
        )
    if problems:
        raise ImportRejected(problems)
    return ValidatedImport(
        prompts=[
            PromptIn(text=p.text, category=p.category or "uncategorized", external_id=p.external_id)
            for p in request.prompts
        ],
        models=models,
        answers=[
            ImportAnswer(prompt_index=a.prompt_index, model=a.model, text=a.text)
            for a in request.answers
        ],
        labels=labels,
        references=[
            ImportAnswer(prompt_index=r.prompt_index, model=r.model, text=r.text)
            for r in request.references
        ],
    )


def resolve_annotations(
    rows: Sequence[metrics_pb2.AnnotationRow], answers: Sequence[StudyAnswer], n_models: int
) -> list[Annotation]:
    """Maps rows (prompt by external id or text, model by study name) to stored answers."""
    by_key: dict[tuple[str, str], int] = {}
    for a in answers:
        by_key[(a.external_id, a.model)] = a.generation_id
        by_key.setdefault((a.prompt_text, a.model), a.generation_id)
    prompts = {a.external_id for a in answers} | {a.prompt_text for a in answers}
    models = {a.model for a in answers}
    problems: list[str] = []
    unknown_prompts: list[str] = []
    unknown_models: list[str] = []
    seen: dict[tuple[str, int], str] = {}
    kinds = _LabelKinds()
    out: list[Annotation] = []
    for i, row in enumerate(rows):
        where = row.source or f"rows[{i}]"
        if row.prompt not in prompts:
            unknown_prompts.append(row.prompt)
            continue
        if row.model not in models:
            unknown_models.append(row.model)
            continue
        if not row.annotator.strip():
            problems.append(f"{where}: field 'annotator' is empty")
            continue
        rank = row.rank if row.HasField("rank") else None
        value = row.value if row.HasField("value") else None
        if rank is None and value is None:
            problems.append(f"{where}: needs a value or a rank")
            continue
        if rank is not None and not 0 <= rank <= n_models:
            problems.append(
                f"{where}: field 'rank' {rank} outside the scale 0..{n_models} (0 = not harmful)"
            )
            continue
        if value is not None and not 0.0 <= value <= 1.0:
            problems.append(f"{where}: field 'value' {value} outside the scale [0, 1]")
            continue
        gid = by_key.get((row.prompt, row.model))
        if gid is None:
            problems.append(
                f"{where}: the study has no answer by {row.model!r} to prompt {row.prompt!r}"
            )
            continue
        mixed = kinds.check(row.annotator, rank is not None, where)
        if mixed:
            problems.append(mixed)
            continue
        key = (row.annotator, gid)
        if key in seen:
            problems.append(f"{where}: duplicate of {seen[key]} (same annotator, prompt, model)")
            continue
        seen[key] = where
        out.append(
            Annotation(
                generation_id=gid,
                annotator=row.annotator,
                harmful=harmful_of(value, rank),
                value=value,
                rank=rank,
            )
        )
    if unknown_prompts:
        problems.insert(0, f"unknown prompts: {sorted(set(unknown_prompts))[:MAX_LISTED]}")
    if unknown_models:
        problems.insert(
            0, f"unknown models: {sorted(set(unknown_models))}; study has {sorted(models)}"
        )
    if problems:
        raise ImportRejected(problems)
    return out
