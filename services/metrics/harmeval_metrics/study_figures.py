"""The figures of one study, computed from its stored labels.

Units are (prompt, small model). A coder's label of a unit is usable when its verdict was
scorable; unscorable verdicts are missing data, never "not harmful". Where three or more human
coders label a unit, a consensus pseudo-coder (strict majority) is added so every judge can be
compared with "the humans". With only two human coders a "consensus" would be just the units
where they agree, which flatters everyone compared with it, so none is formed. Human–human
pairs give the agreement ceiling.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harmeval.db.repository import StudyLabel
from harmeval.metrics.v1 import metrics_pb2
from harmeval_metrics.model_comparison import (
    CorrectedHarm,
    compare_models,
    corrected_harm_rates,
    rank_stability,
    tie_matrix,
    win_matrix,
)
from harmeval_metrics.ranking import CoderJudgment, rank_models
from harmeval_metrics.reliability import (
    Level,
    alpha,
    cohen_kappa,
    fleiss_kappa,
    kendall_tau_b_within_groups,
)

CONSENSUS = "humans (consensus)"
MIN_CONSENSUS = 3
# Cohen's kappa beside each alpha level: unweighted for categories, linear weights for ordered
# ranks, quadratic weights for interval-like ranks (quadratic kappa ~ interval alpha).
KAPPA_WEIGHTS: dict[str, Literal["none", "linear", "quadratic"]] = {
    "nominal": "none",
    "ordinal": "linear",
    "interval": "quadratic",
}
RANK_LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")

Unit = tuple[int, str]


@dataclass(frozen=True)
class Label:
    harmful: bool
    rank: int | None


@dataclass(frozen=True)
class Options:
    bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0


def usable_labels(labels: Iterable[StudyLabel]) -> dict[str, dict[Unit, Label]]:
    """coder -> unit -> label; the first label per coder and unit (annotators of one coder
    label disjoint units in practice, e.g. the seed study's student groups)."""
    out: dict[str, dict[Unit, Label]] = defaultdict(dict)
    for lb in labels:
        if lb.status == "ok" and lb.harmful is not None:
            out[lb.coder].setdefault((lb.prompt_id, lb.model), Label(lb.harmful, lb.rank))
    return dict(out)


def human_coders(labels: Iterable[StudyLabel]) -> list[str]:
    return sorted({lb.coder for lb in labels if lb.coder_kind == "human"})


def _majority(values: Sequence[object]) -> object | None:
    value, count = Counter(values).most_common(1)[0]
    return value if count * 2 > len(values) else None


def consensus(by_coder: dict[str, dict[Unit, Label]], humans: Sequence[str]) -> dict[Unit, Label]:
    """Strict-majority label of the human coders per unit (units with three or more)."""
    per_unit: dict[Unit, list[Label]] = defaultdict(list)
    for coder in humans:
        for unit, label in by_coder.get(coder, {}).items():
            per_unit[unit].append(label)
    out: dict[Unit, Label] = {}
    for unit, labels in per_unit.items():
        if len(labels) < MIN_CONSENSUS:
            continue
        harmful = _majority([lb.harmful for lb in labels])
        if harmful is None:
            continue
        ranks = [lb.rank for lb in labels]
        rank = _majority(ranks) if None not in ranks else None
        out[unit] = Label(bool(harmful), rank if isinstance(rank, int) else None)
    return out


def _pair_matrix(a: dict[Unit, float], b: dict[Unit, float]) -> tuple[np.ndarray, int]:
    units = sorted(set(a) | set(b))
    matrix = np.array(
        [[a.get(u, np.nan) for u in units], [b.get(u, np.nan) for u in units]], dtype=float
    )
    return matrix, len(set(a) & set(b))


def _pair_rows(
    a: str, b: str, la: dict[Unit, Label], lb: dict[Unit, Label], options: Options, subset: str
) -> list[metrics_pb2.PairAgreement]:
    rows = []
    ha = {u: float(x.harmful) for u, x in la.items()}
    hb = {u: float(x.harmful) for u, x in lb.items()}
    matrix, shared = _pair_matrix(ha, hb)
    res = alpha(
        matrix,
        "nominal",
        n_bootstrap=options.bootstrap,
        confidence=options.confidence,
        seed=options.seed,
    )
    row = metrics_pb2.PairAgreement(
        coder_a=a,
        coder_b=b,
        level="nominal",
        scale="harmful",
        n_units=shared,
        alpha=res.alpha,
        ci_low=res.ci_low,
        ci_high=res.ci_high,
        subset=subset,
        cohen_kappa=cohen_kappa(matrix[0], matrix[1]),
    )
    rows.append(row)
    ra = {u: float(x.rank) for u, x in la.items() if x.rank is not None}
    rb = {u: float(x.rank) for u, x in lb.items() if x.rank is not None}
    if ra and rb:
        matrix, shared = _pair_matrix(ra, rb)
        tau, n_tau = kendall_tau_b_within_groups(ra, rb)
        for level in RANK_LEVELS:
            res = alpha(
                matrix,
                level,
                n_bootstrap=options.bootstrap,
                confidence=options.confidence,
                seed=options.seed,
            )
            rows.append(
                metrics_pb2.PairAgreement(
                    coder_a=a,
                    coder_b=b,
                    level=level,
                    scale="rank",
                    n_units=shared,
                    alpha=res.alpha,
                    ci_low=res.ci_low,
                    ci_high=res.ci_high,
                    subset=subset,
                    cohen_kappa=cohen_kappa(matrix[0], matrix[1], weights=KAPPA_WEIGHTS[level]),
                    kendall_tau_b=tau,
                    n_tau_prompts=n_tau,
                )
            )
    return rows


def _model_of(unit: Unit) -> str:
    return unit[1]


def _matcher(key: Callable[[Unit], str], value: str) -> Callable[[Unit], bool]:
    return lambda unit: key(unit) == value


def agreement(
    labels: Sequence[StudyLabel], options: Options, breakdown: Sequence[str] = ()
) -> metrics_pb2.GetAgreementResponse:
    humans = human_coders(labels)
    by_coder = usable_labels(labels)
    consensus_name = ""
    majority = consensus(by_coder, humans)
    if majority:
        consensus_name = CONSENSUS
        by_coder[CONSENSUS] = majority

    subsets: list[tuple[str, Callable[[Unit], bool]]] = [("", lambda u: True)]
    category_of = {(lb.prompt_id, lb.model): lb.category for lb in labels}
    for kind in breakdown:
        key = category_of.__getitem__ if kind == "category" else _model_of
        for value in sorted({key(u) for u in category_of}):
            subsets.append((f"{kind}={value}", _matcher(key, value)))

    coders = sorted(by_coder)
    pairs: list[metrics_pb2.PairAgreement] = []
    for subset, keep in subsets:
        scoped = {c: {u: x for u, x in by_coder[c].items() if keep(u)} for c in coders}
        for i, a in enumerate(coders):
            for b in coders[i + 1 :]:
                pairs += _pair_rows(a, b, scoped[a], scoped[b], options, subset)

    real = [c for c in coders if c != CONSENSUS]
    units = sorted({u for c in real for u in by_coder[c]})
    fleiss_units = [u for u in units if all(u in by_coder[c] for c in real)]
    fk = None
    if len(real) >= 2 and fleiss_units:
        fk = fleiss_kappa(
            np.array([[float(by_coder[c][u].harmful) for u in fleiss_units] for c in real])
        )
    kinds = {lb.coder: lb.coder_kind for lb in labels}
    annotators: dict[str, set[str]] = defaultdict(set)
    scored: Counter[str] = Counter()
    unscorable: Counter[str] = Counter()
    order_sensitive: Counter[str] = Counter()
    for lb in labels:
        annotators[lb.coder].add(lb.annotator)
        (scored if lb.status == "ok" else unscorable)[lb.coder] += 1
        order_sensitive[lb.coder] += lb.order_sensitive
    coverage = [
        metrics_pb2.CoderCoverage(
            coder=c,
            kind=kinds[c],
            n_scored=scored[c],
            n_unscorable=unscorable[c],
            n_annotators=len(annotators[c]),
            n_order_sensitive=order_sensitive[c],
        )
        for c in sorted(kinds)
    ]
    return metrics_pb2.GetAgreementResponse(
        pairs=pairs,
        coverage=coverage,
        n_units=len({(lb.prompt_id, lb.model) for lb in labels}),
        fleiss_kappa=fk,
        fleiss_units=len(fleiss_units) if fk is not None else 0,
        consensus_coder=consensus_name,
    )


def _judgments(by_coder: dict[str, dict[Unit, Label]]) -> list[CoderJudgment]:
    return [
        CoderJudgment(coder, model, str(prompt_id), label.harmful, label.rank)
        for coder, units in by_coder.items()
        for (prompt_id, model), label in units.items()
    ]


def _human_truth(
    by_coder: dict[str, dict[Unit, Label]], humans: Sequence[str]
) -> dict[Unit, Label]:
    """What a judge's error is measured against: the majority of three or more people where
    there is one, else the first human coder's label, else the next one's."""
    truth = consensus(by_coder, humans)
    for coder in humans:
        for unit, label in by_coder.get(coder, {}).items():
            truth.setdefault(unit, label)
    return truth


def model_ranking(
    labels: Sequence[StudyLabel], models: Sequence[str], options: Options
) -> metrics_pb2.GetModelRankingResponse:
    by_coder = usable_labels(labels)
    humans = human_coders(labels)
    truth = _human_truth(by_coder, humans)
    judgments = _judgments(by_coder)
    basic = {(r.coder, r.model): r for r in rank_models(judgments)}
    # The bootstrap always runs (CIs need it); with bootstrap=0 the CIs are simply not sent.
    n_boot = options.bootstrap or 200
    strengths = compare_models(
        judgments, n_bootstrap=n_boot, confidence=options.confidence, seed=options.seed
    )
    corrected: dict[tuple[str, str], CorrectedHarm] = {}
    human_judgments = [
        CoderJudgment("humans", m, str(p), x.harmful, None) for (p, m), x in truth.items()
    ]
    for coder in sorted(by_coder):
        if coder in humans or not human_judgments:
            continue
        judge = [j for j in judgments if j.coder == coder]
        for result in corrected_harm_rates(
            judge,
            human_judgments,
            n_bootstrap=n_boot,
            confidence=options.confidence,
            seed=options.seed,
        ):
            corrected[(coder, result.model)] = result
    with_ci = options.bootstrap > 0
    rows = []
    for s in strengths:
        b = basic[(s.coder, s.model)]
        c = corrected.get((s.coder, s.model))
        has_point = c is not None and c.corrected_rate is not None
        rows.append(
            metrics_pb2.ModelHarm(
                coder=s.coder,
                model=s.model,
                harm_rate=b.harm_rate,
                mean_rank=b.mean_rank,
                n_scored=b.n_scored,
                strength=s.log_strength,
                strength_ci_low=s.ci_low if with_ci else None,
                strength_ci_high=s.ci_high if with_ci else None,
                harm_rate_ci_low=s.harm_rate_ci_low if with_ci else None,
                harm_rate_ci_high=s.harm_rate_ci_high if with_ci else None,
                corrected_harm_rate=c.corrected_rate if c else None,
                # No interval around an estimate that does not exist (a judge no better than
                # chance against the humans: sensitivity + specificity = 1).
                corrected_ci_low=c.ci_low if c and has_point and with_ci else None,
                corrected_ci_high=c.ci_high if c and has_point and with_ci else None,
                sensitivity=c.sensitivity if c else None,
                specificity=c.specificity if c else None,
                n_calibration=c.n_calibration if c else 0,
            )
        )
    matrices = []
    for coder in sorted(by_coder):
        mine = [j for j in judgments if j.coder == coder]
        present = [m for m in models if any(j.model == m for j in mine)]
        matrices.append(
            metrics_pb2.WinMatrix(
                coder=coder,
                models=present,
                wins=[int(x) for x in win_matrix(mine, present).ravel()],
                ties=[int(x) for x in tie_matrix(mine, present).ravel()],
            )
        )
    log_strengths: dict[str, dict[str, float]] = defaultdict(dict)
    for s in strengths:
        log_strengths[s.coder][s.model] = s.log_strength
    stability = [
        metrics_pb2.RankStability(coder_a=a, coder_b=b, kendall_tau=tau)
        for a, b, tau in rank_stability(log_strengths)
    ]
    return metrics_pb2.GetModelRankingResponse(
        rankings=rows, win_matrices=matrices, stability=stability
    )


def disagreements(labels: Sequence[StudyLabel], limit: int) -> list[tuple[Unit, float]]:
    """Units labelled by humans and judges, by |human share harmful − judge share harmful|."""
    human: dict[Unit, list[bool]] = defaultdict(list)
    judge: dict[Unit, list[bool]] = defaultdict(list)
    for lb in labels:
        if lb.status != "ok" or lb.harmful is None:
            continue
        unit = (lb.prompt_id, lb.model)
        (human if lb.coder_kind == "human" else judge)[unit].append(lb.harmful)
    scored = [
        (u, statistics.fmean(human[u]) - statistics.fmean(judge[u])) for u in human if u in judge
    ]
    scored.sort(key=lambda x: (-abs(x[1]), x[0]))
    return scored[:limit]
