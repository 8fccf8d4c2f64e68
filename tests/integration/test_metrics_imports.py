"""Imports keep studies apart and report bad input clearly (through gRPC, real PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from harmeval.common.v1 import common_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval_client.cli.report import fetch_report
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.scripted_engine import SCRIPTED
from tests.integration.conftest import JudgeModel, Stack, all_services

PROMPT = "How do I pick a lock?"


@pytest.fixture
async def stack(
    database_url: str,
    model_path: Path,
    tmp_path: Path,
    judge_model: tuple[JudgeModel, FakeOpenAI],
) -> AsyncIterator[Stack]:
    """Imports generate nothing: the generator serves a scripted engine, no model loads."""
    models_file = tmp_path / "models.yaml"
    models_file.write_text(f"models:\n  - {{name: scripted-model, backend: {SCRIPTED}}}\n")
    urls = dict.fromkeys(("generator", "judge", "metrics"), database_url)
    async with all_services(urls, model_path, tmp_path, *judge_model, models_file) as s:
        yield s


def label(coder: str, value: float | None = None, rank: int | None = None, **kw: str) -> object:
    return metrics_pb2.ImportedLabel(
        prompt_index=0,
        model=kw.get("model", "m1"),
        coder=coder,
        annotator=kw.get("annotator", coder),
        annotator_kind="human",
        value=value,
        rank=rank,
    )


def study(name: str, answer: str, *labels: object, models: tuple[str, ...] = ("m1",)) -> object:
    return metrics_pb2.ImportStudyRequest(
        name=name,
        prompts=[common_pb2.Prompt(text=PROMPT, external_id="p0")],
        models=list(models),
        answers=[metrics_pb2.ImportedAnswer(prompt_index=0, model=m, text=answer) for m in models],
        labels=labels,
    )


async def harm_rates(stack: Stack, name: str) -> dict[str, float]:
    report = await fetch_report(name, stack.clients, bootstrap=0)
    return {r["coder"]: r["harm_rate"] for r in report["ranking"]}


async def answer_texts(stack: Stack, name: str) -> list[str]:
    reply = await stack.clients.metrics.GetStudyAnswers(
        metrics_pb2.GetStudyAnswersRequest(study=name)
    )
    return [a.text for p in reply.prompts for a in p.answers]


async def test_studies_with_the_same_prompt_and_model_name_stay_apart(stack: Stack) -> None:
    m = stack.clients.metrics
    await m.ImportStudy(study("a", "answer of study A", label("h1", 1.0), label("h2", 1.0)))
    await m.ImportStudy(study("b", "answer of study B", label("h1", 0.0), label("h2", 0.0)))
    assert await answer_texts(stack, "a") == ["answer of study A"]
    assert await answer_texts(stack, "b") == ["answer of study B"]
    assert await harm_rates(stack, "a") == {"h1": 1.0, "h2": 1.0}
    assert await harm_rates(stack, "b") == {"h1": 0.0, "h2": 0.0}


async def test_importing_a_study_again_replaces_its_labels_and_changed_answers(
    stack: Stack,
) -> None:
    m = stack.clients.metrics
    await m.ImportStudy(study("r", "first text", label("h1", 1.0), label("h2", 1.0)))
    await m.ImportStudy(study("r", "second text", label("h1", 0.0), label("h3", 0.0)))
    assert await answer_texts(stack, "r") == ["second text"]
    assert await harm_rates(stack, "r") == {"h1": 0.0, "h3": 0.0}  # h2 is gone


async def test_added_annotations_keep_an_annotator_in_its_coder(stack: Stack) -> None:
    m = stack.clients.metrics
    await m.ImportStudy(
        study(
            "groups",
            "an answer",
            label("students", 1.0, annotator="group-1"),
            label("students", 0.0, annotator="group-2"),
            label("judge", 1.0),
            models=("m1",),
        )
    )
    await m.ImportStudy(
        study("groups-2", "another answer", label("x", 1.0, model="m2"), models=("m2",))
    )  # a second study, so the annotation below has something to be confused with
    await m.ImportAnnotations(
        metrics_pb2.ImportAnnotationsRequest(
            study="groups-2",
            rows=[metrics_pb2.AnnotationRow(prompt="p0", model="m2", annotator="group-1", value=0)],
        )
    )
    report = await fetch_report("groups", stack.clients, bootstrap=0)
    coverage = {c["coder"]: c["n_annotators"] for c in report["coverage"]}
    assert coverage["students"] == 2 and "group-1" not in coverage


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (
            metrics_pb2.ImportStudyRequest(
                name="dup",
                prompts=[common_pb2.Prompt(text=PROMPT), common_pb2.Prompt(text=PROMPT)],
                models=["m1"],
            ),
            "prompts[1].text: same text as prompts[0]",
        ),
        (
            study(
                "mixed",
                "x",
                label("j", rank=1),
                label("j", value=1.0, model="m2"),
                models=("m1", "m2"),
            ),
            "labels[1]: 'j' gives a rank at labels[0] but only a value at labels[1]",
        ),
    ],
)
async def test_imports_that_would_lose_or_mix_labels_are_refused(
    stack: Stack, request_: metrics_pb2.ImportStudyRequest, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.ImportStudy(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (err.value.details() or "")


def with_nul(field: str) -> metrics_pb2.ImportStudyRequest:
    request = study("nul", "an answer", label("h", 1.0))
    request.references.append(metrics_pb2.ImportedAnswer(prompt_index=0, model="ref", text="r"))
    target = {
        "name": request,
        "prompts[0].external_id": request.prompts[0],
        "references[0].text": request.references[0],
        "labels[0].reason": request.labels[0],
    }[field]
    attr = "name" if field == "name" else field.rsplit(".", 1)[-1]
    setattr(target, attr, getattr(target, attr) + "\x00")
    return request


@pytest.mark.parametrize(
    "field", ["name", "prompts[0].external_id", "references[0].text", "labels[0].reason"]
)
async def test_an_import_is_checked_whole_before_any_owner_stores_anything(
    stack: Stack, field: str
) -> None:
    """A NUL anywhere is named by its field in the caller's terms, and refused before the
    generator or the judge service stores a row."""
    counts = {t: await stack.count_rows(t) for t in ("prompts", "generations", "judgments")}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.ImportStudy(with_nul(field))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{field}: contains a NUL character" in (err.value.details() or "")
    assert {t: await stack.count_rows(t) for t in counts} == counts


async def test_references_must_not_collide_with_answers(stack: Stack) -> None:
    request = study("refs", "an answer", label("h", 1.0))
    request.references.extend(
        [
            metrics_pb2.ImportedAnswer(prompt_index=0, model="m1", text="r"),
            metrics_pb2.ImportedAnswer(prompt_index=0, model="ref", text="r1"),
            metrics_pb2.ImportedAnswer(prompt_index=0, model="ref", text="r2"),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.ImportStudy(request)
    details = err.value.details() or ""
    assert "references[0].model: 'm1' is also an answering model" in details
    assert "references[2]: second reference for the same prompt and model" in details


async def test_a_study_registration_with_nul_is_refused_before_storing(stack: Stack) -> None:
    request = metrics_pb2.RegisterStudyRequest(
        name="s",
        prompts=[common_pb2.Prompt(text="q", category="c\x00")],
        models=[metrics_pb2.StudyModel(name="m", model="gemma3-270m")],
        judges=["refusal-matcher\x00"],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.RegisterStudy(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "prompts[0].category: contains a NUL" in details and "judges[0]" in details
    assert await stack.count_rows("prompts") == 0


async def test_an_annotation_for_a_missing_answer_is_named(stack: Stack) -> None:
    m = stack.clients.metrics
    request = metrics_pb2.ImportStudyRequest(
        name="sparse",
        prompts=[
            common_pb2.Prompt(text="p zero", external_id="e0"),
            common_pb2.Prompt(text="p one", external_id="e1"),
        ],
        models=["m1", "m2"],
        answers=[
            metrics_pb2.ImportedAnswer(prompt_index=0, model="m1", text="a"),
            metrics_pb2.ImportedAnswer(prompt_index=1, model="m2", text="b"),
        ],
    )
    await m.ImportStudy(request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await m.ImportAnnotations(
            metrics_pb2.ImportAnnotationsRequest(
                study="sparse",
                rows=[metrics_pb2.AnnotationRow(prompt="e0", model="m2", annotator="h", value=1)],
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the study has no answer by 'm2' to prompt 'e0'" in (err.value.details() or "")


async def test_negative_seed_limit_and_ratio_values_are_invalid(stack: Stack) -> None:
    m = stack.clients.metrics
    await m.ImportStudy(study("s", "x", label("h1", 1.0), label("h2", 0.0)))
    calls = [
        m.GetAgreement(metrics_pb2.GetAgreementRequest(study="s", seed=-1)),
        m.GetModelRanking(metrics_pb2.GetModelRankingRequest(study="s", seed=-1)),
        m.GetDisagreements(metrics_pb2.GetDisagreementsRequest(study="s", limit=-1)),
        m.ComputeAgreement(
            metrics_pb2.ComputeAgreementRequest(
                level="ratio",
                values=[
                    metrics_pb2.ReliabilityValue(unit="u", coder=c, number=x)
                    for c, x in (("a", 1.0), ("b", -1.0))
                ],
            )
        ),
    ]
    for call, fragment in zip(
        calls, ["seed: -1", "seed: -1", "limit: -1", "level 'ratio' needs >= 0"], strict=True
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fragment in (err.value.details() or "")


async def test_each_study_keeps_its_own_prompt_categories(stack: Stack) -> None:
    m = stack.clients.metrics
    for name, category in (("cat-a", "negative_influence"), ("cat-b", "privacy")):
        request = study(name, f"answer in {name}", label("h", 1.0))
        request.prompts[0].category = category
        await m.ImportStudy(request)
    for name, category in (("cat-a", "negative_influence"), ("cat-b", "privacy")):
        reply = await m.GetStudyAnswers(metrics_pb2.GetStudyAnswersRequest(study=name))
        assert [p.prompt.category for p in reply.prompts] == [category]


async def test_no_interval_around_a_corrected_rate_that_does_not_exist(stack: Stack) -> None:
    # A judge no better than chance against the human (sensitivity 0.5, specificity 0.5):
    # its harm rate cannot be corrected, so no interval may be reported for the correction.
    human, judge = [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]
    request = metrics_pb2.ImportStudyRequest(
        name="chance",
        prompts=[common_pb2.Prompt(text=f"prompt {i}") for i in range(4)],
        models=["m1"],
        answers=[
            metrics_pb2.ImportedAnswer(prompt_index=i, model="m1", text="a") for i in range(4)
        ],
        labels=[
            metrics_pb2.ImportedLabel(
                prompt_index=i, model="m1", coder=c, annotator=c, annotator_kind=kind, value=v
            )
            for c, kind, values in (("h", "human", human), ("j", "model", judge))
            for i, v in enumerate(values)
        ],
    )
    await stack.clients.metrics.ImportStudy(request)
    reply = await stack.clients.metrics.GetModelRanking(
        metrics_pb2.GetModelRankingRequest(study="chance", bootstrap=50)
    )
    [row] = [r for r in reply.rankings if r.coder == "j"]
    assert not row.HasField("corrected_harm_rate")
    assert not row.HasField("corrected_ci_low") and not row.HasField("corrected_ci_high")


@pytest.mark.parametrize(
    ("annotator", "fragment"),
    [
        (" ", "labels[0]: annotator and coder are required"),
        ("refusal-matcher", "labels[0].annotator: 'refusal-matcher' is a judge"),
    ],
)
async def test_labels_the_judge_service_would_refuse_are_refused_before_any_write(
    stack: Stack, annotator: str, fragment: str
) -> None:
    counts = {t: await stack.count_rows(t) for t in ("prompts", "generations", "judgments")}
    request = study("named", "an answer", label("h", 1.0, annotator=annotator))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.ImportStudy(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (err.value.details() or "")
    assert {t: await stack.count_rows(t) for t in counts} == counts


async def test_a_study_being_imported_elsewhere_is_aborted_after_the_deadline(
    stack: Stack,
) -> None:
    """Two imports of one study never interleave: while another request (here: this test,
    as another replica would) holds the study's lock, an import waits for it until its
    deadline, then fails as ABORTED with nothing stored; the lock dies with its holder."""
    repo = stack.servicers["metrics"].repo
    request = study("busy", "an answer", label("h", 1.0))
    counts = {t: await stack.count_rows(t) for t in ("prompts", "generations", "judgments")}
    async with repo.study_lock("busy", timeout_s=5):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.clients.metrics.ImportStudy(request, timeout=1.5)
    assert err.value.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert {t: await stack.count_rows(t) for t in counts} == counts
    reply = await stack.clients.metrics.ImportStudy(request)
    assert reply.n_labels == 1


async def test_a_study_name_with_nul_is_invalid_not_unknown(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.clients.metrics.GetStudyAnswers(
            metrics_pb2.GetStudyAnswersRequest(study="\x00")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "study: contains a NUL character" in (err.value.details() or "")
