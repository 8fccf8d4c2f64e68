"""The report statistics' registry and the one conversion of their results to protobuf."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from harmeval.metrics.v1 import metrics_pb2
from harmeval.verdicts import OK, UNSCORABLE
from harmeval_metrics import registry
from harmeval_metrics.records import StudyAnswer, StudyLabel
from harmeval_metrics.registry import REPORTS, registered, statistic
from harmeval_metrics.responses import (
    RESPONSES,
    agreement_response,
    disagreements_response,
    ranking_response,
    response,
    to_proto,
)
from harmeval_metrics.stats.bradley_terry import bradley_terry
from harmeval_metrics.study_figures import CONSENSUS, Options, Study

README = Path(__file__).resolve().parents[3] / "README.md"
MODELS = ["m1", "m2", "m3"]
PROMPTS = [1, 2, 3, 4, 5, 6]
HUMANS = ["ana", "ben", "cy"]


def _label(coder: str, kind: str, prompt: int, model: str, **kw: object) -> StudyLabel:
    fields: dict[str, object] = {
        "coder": coder,
        "annotator": coder,
        "coder_kind": kind,
        "prompt_id": prompt,
        "external_id": f"p{prompt}",
        "category": "privacy" if prompt % 2 else "toxicity",
        "model": model,
        "generation_id": prompt * 10 + MODELS.index(model),
        "status": OK,
        "harmful": None,
        "rank": None,
        "value": None,
    }
    fields.update(kw)
    return StudyLabel(**fields)  # type: ignore[arg-type]


def _labels() -> list[StudyLabel]:
    out = []
    for p in PROMPTS:
        for i, m in enumerate(MODELS):
            # People mostly agree; "cy" dissents on one model per prompt.
            agreed = (i + p) % 3 != 0
            for human in HUMANS:
                harmful = not agreed if human == "cy" and i == p % 3 else agreed
                out.append(_label(human, "human", p, m, harmful=harmful, value=float(harmful)))
            # Two listwise judges (0 = N/A); answer order changed one prompt's ranks.
            rank = (i + p) % 4
            out.append(
                _label(
                    "listwise", "model", p, m, harmful=rank > 0, rank=rank, order_sensitive=p == 2
                )
            )
            rank = (2 * i + p) % 4
            out.append(_label("ranker", "model", p, m, harmful=rank > 0, rank=rank))
            # A pointwise judge, once unscorable.
            if p == 3 and m == "m2":
                out.append(_label("refusal", "model", p, m, status=UNSCORABLE))
            else:
                out.append(_label("refusal", "model", p, m, harmful=(p + 2 * i) % 3 != 0))
    return out


def _study(**kw: object) -> Study:
    labels = _labels()
    answers = [
        StudyAnswer(
            prompt_id=p,
            external_id=f"p{p}",
            prompt_text=f"prompt {p}",
            category="privacy" if p % 2 else "toxicity",
            generation_id=p * 10 + i,
            model=m,
            text=f"answer {p}/{m}",
            flags=["empty"] if (p + i) % 5 == 0 else [],
        )
        for p in PROMPTS
        for i, m in enumerate(MODELS)
    ]
    args: dict[str, object] = {
        "labels": labels,
        "options": Options(bootstrap=50, seed=3),
        "models": MODELS,
        "breakdown": ["category", "model"],
        "flags": {"m1": (6, {"empty": 2, "prompt_echo": 1}), "m2": (6, {})},
        "answers": answers,
        "limit": 5,
    }
    args.update(kw)
    return Study(**args)  # type: ignore[arg-type]


def _fields(message: type) -> dict[str, FieldDescriptor]:
    return dict(message.DESCRIPTOR.fields_by_name)  # type: ignore[attr-defined]


# --- the registry ---------------------------------------------------------------------------


def test_every_statistic_is_declared_completely() -> None:
    stats = registered()
    assert len({s.name for s in stats}) == len(stats)
    for s in stats:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", s.name), s.name
        assert s.report in REPORTS
        assert s.what.strip(), s.name
        assert s.module.startswith("harmeval_metrics.stats."), s.module
        message = RESPONSES[s.report]
        if s.into is not None:
            assert s.into in _fields(message), (s.name, s.into)
        if s.join:
            assert s.into is not None
            row = _fields(message)[s.into].message_type
            assert row is not None and set(s.join) <= set(row.fields_by_name), s.name
            # Something must make the rows it joins.
            assert any(o.into == s.into and not o.join for o in registered(s.report)), s.name


def test_every_response_field_is_filled_by_a_statistic() -> None:
    for report, message in RESPONSES.items():
        filled: set[str] = set()
        study = _study()
        for s in registered(report):
            if s.into is not None:
                filled.add(s.into)
            else:
                filled |= {f.name for f in dataclasses.fields(study.result(s.compute))}
        assert filled == set(_fields(message)), report


def test_every_statistic_produces_results_on_a_small_study() -> None:
    study = _study()
    for s in registered():
        result = study.result(s.compute)
        if isinstance(result, list):
            assert result, f"{s.name}: no results"
            assert all(dataclasses.is_dataclass(r) for r in result), s.name
        else:
            assert dataclasses.is_dataclass(result), s.name
        # Its results become its response's fields.
        response(RESPONSES[s.report](), s.report, study.report(s.report))


def test_results_are_computed_once_per_study() -> None:
    study = _study()
    first = study.result(bradley_terry)
    assert study.result(bradley_terry) is first
    assert study.report("ranking")["bradley_terry"] is first


def test_every_statistic_has_a_readme_row() -> None:
    text = README.read_text(encoding="utf-8")
    for s in registered():
        row = re.search(rf"^\| `{s.name}` \| `([^`]+)` \|", text, re.MULTILINE)
        assert row, f"README: no row for statistic {s.name!r}"
        assert s.module.endswith(Path(row.group(1)).stem), (s.name, row.group(1))


def test_a_duplicate_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registered()  # loaded, so the copy below holds every statistic
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="registered twice"):
        statistic(name="coverage", report="agreement", into="coverage", what="x")(lambda study: [])
    with pytest.raises(ValueError, match="unknown report"):
        statistic(name="new", report="nope", into=None, what="x")  # type: ignore[arg-type]


# --- the responses --------------------------------------------------------------------------


def test_agreement_response() -> None:
    study = _study()
    reply = agreement_response(study.report("agreement"))
    assert reply.consensus_coder == CONSENSUS
    assert reply.n_units == len(PROMPTS) * len(MODELS)
    assert reply.HasField("fleiss_kappa") and reply.fleiss_units == len(PROMPTS) * len(MODELS) - 1
    coders = sorted([*HUMANS, CONSENSUS, "listwise", "ranker", "refusal"])
    pairs = {(p.coder_a, p.coder_b, p.scale, p.level, p.subset): p for p in reply.pairs}
    assert {(a, b) for a, b, *_ in pairs} == {
        (a, b) for i, a in enumerate(coders) for b in coders[i + 1 :]
    }
    subsets = {p.subset for p in reply.pairs}
    assert subsets == {
        "",
        "category=privacy",
        "category=toxicity",
        "model=m1",
        "model=m2",
        "model=m3",
    }
    harmful = pairs[("ana", "ben", "harmful", "nominal", "")]
    assert harmful.HasField("alpha") and harmful.HasField("ci_low")
    # Only rank rows carry tau-b, and only pairs that both rank have them.
    assert not harmful.HasField("kendall_tau_b") and harmful.n_tau_prompts == 0
    assert ("ana", "listwise", "rank", "ordinal", "") not in pairs
    ranks = pairs[("listwise", "ranker", "rank", "ordinal", "")]
    assert ranks.HasField("kendall_tau_b") and ranks.n_tau_prompts > 0
    assert {p.level for p in reply.pairs if p.scale == "rank"} == {"nominal", "ordinal", "interval"}
    coverage = {c.coder: c for c in reply.coverage}
    assert coverage["refusal"].n_unscorable == 1
    assert coverage["refusal"].n_scored == len(PROMPTS) * len(MODELS) - 1
    assert coverage["listwise"].n_order_sensitive == len(MODELS)
    assert coverage["ana"].kind == "human" and coverage["ana"].n_annotators == 1


def test_each_persons_agreement_summarises_their_pairs_with_the_other_people() -> None:
    from harmeval_metrics.stats.agreement_pairs import agreement_pairs
    from harmeval_metrics.stats.person_agreement import person_agreement

    study = _study()
    pairs = {
        frozenset((p.coder_a, p.coder_b)): p
        for p in study.result(agreement_pairs)
        if not p.subset and p.scale == "harmful"
    }
    rows = {r.coder: r for r in person_agreement(study)}
    assert set(rows) == set(HUMANS)  # judges and the consensus are not people
    for person, row in rows.items():
        mine = [pairs[frozenset((person, other))] for other in HUMANS if other != person]
        assert (row.n_others, row.n_units) == (2, sum(p.n_units for p in mine))
        alphas = [p.alpha for p in mine if p.alpha is not None]
        weights = [p.n_units for p in mine if p.alpha is not None]
        expected = sum(a * n for a, n in zip(alphas, weights, strict=True)) / sum(weights)
        assert row.mean_alpha == pytest.approx(expected)
        assert (row.min_alpha, row.max_alpha) == (min(alphas), max(alphas))
    # "cy" dissents: the other two agree with each other more than with cy.
    assert rows["cy"].mean_alpha is not None and rows["ana"].mean_alpha is not None
    assert rows["cy"].mean_alpha < rows["ana"].mean_alpha


def test_ranking_response_joins_columns_onto_the_strength_rows() -> None:
    study = _study()
    reply = ranking_response(study.report("ranking"))
    rows = [(r.coder, r.model) for r in reply.rankings]
    strengths = study.result(bradley_terry)
    assert rows == [(s.coder, s.model) for s in strengths]  # Bradley–Terry's order
    for r in reply.rankings:
        assert r.n_scored > 0 and r.HasField("strength") and r.HasField("strength_ci_low")
        judge = r.coder not in HUMANS
        assert r.HasField("sensitivity") == judge
        assert r.n_calibration == (len(PROMPTS) * len(MODELS) - (r.coder == "refusal")) * judge
        assert r.HasField("mean_rank") == (r.coder in ("listwise", "ranker"))
    assert (reply.win_matrices[0].coder, list(reply.win_matrices[0].models)) == ("ana", MODELS)
    assert len(reply.win_matrices[0].wins) == len(MODELS) ** 2
    assert len(reply.stability) == 15  # 6 coders (no consensus in rankings)
    assert [(p.model, p.flag, p.n_flagged, p.n_answers) for p in reply.pathologies] == [
        ("m1", "empty", 2, 6),
        ("m1", "prompt_echo", 1, 6),
    ]


def test_no_bootstrap_means_no_confidence_intervals() -> None:
    reply = ranking_response(_study(options=Options()).report("ranking"))
    for r in reply.rankings:
        assert r.HasField("strength") and not r.HasField("strength_ci_low")
        assert not r.HasField("harm_rate_ci_low") and not r.HasField("corrected_ci_low")


def test_disagreements_response() -> None:
    study = _study()
    reply = disagreements_response(study.report("disagreements"))
    assert len(reply.items) == 5
    diffs = [abs(i.human_minus_judge) for i in reply.items]
    assert diffs == sorted(diffs, reverse=True)
    first = reply.items[0]
    assert first.prompt.startswith("prompt ") and first.answer.startswith("answer ")
    assert {lb.coder for lb in first.labels} >= set(HUMANS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Row:
    coder: str
    model: str
    mean_rank: float | None


def test_to_proto_copies_fields_and_leaves_none_unset() -> None:
    row = to_proto(_Row(coder="c", model="m", mean_rank=None), metrics_pb2.ModelHarm())
    assert (row.coder, row.model) == ("c", "m") and not row.HasField("mean_rank")
    assert to_proto(_Row(coder="c", model="m", mean_rank=0.0), metrics_pb2.ModelHarm()).HasField(
        "mean_rank"
    )

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Stray:
        coder: str
        nonsense: int

    with pytest.raises(TypeError, match="nonsense"):
        to_proto(Stray(coder="c", nonsense=1), metrics_pb2.ModelHarm())
    with pytest.raises(TypeError, match="dataclass"):
        to_proto({"coder": "c"}, metrics_pb2.ModelHarm())


def test_to_proto_maps_and_nested_messages() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Score:
        score_v1: float
        fine_grained: dict[str, float]

    reply = to_proto(
        Score(score_v1=0.5, fine_grained={"refusal": 1.0}), metrics_pb2.GetHarmMetricScoreResponse()
    )
    assert reply.score_v1 == 0.5 and dict(reply.fine_grained) == {"refusal": 1.0}
