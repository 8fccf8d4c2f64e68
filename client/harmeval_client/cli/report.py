"""`harmeval report STUDY`: agreement, the model ranking and where judges and humans disagree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape

from harmeval.judge.v1 import judge_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval_client.cli.terminal import Column, print_table
from harmeval_client.clients import Clients
from harmeval_client.embedded_models import MODELS


def _opt(msg: Message, field: str) -> Any:
    return getattr(msg, field) if msg.HasField(field) else None


async def fetch_report(
    study: str,
    clients: Clients,
    bootstrap: int = 0,
    breakdown: Sequence[str] = (),
    disagreements: int = 10,
    seed: int = 0,
    target_half_width: float = 0.0,
) -> dict[str, Any]:
    agreement = await clients.metrics.GetAgreement(
        metrics_pb2.GetAgreementRequest(
            study=study, bootstrap=bootstrap, breakdown=list(breakdown), seed=seed
        )
    )
    ranking = await clients.metrics.GetModelRanking(
        metrics_pb2.GetModelRankingRequest(
            study=study, bootstrap=bootstrap, seed=seed, target_half_width=target_half_width
        )
    )
    items = await clients.metrics.GetDisagreements(
        metrics_pb2.GetDisagreementsRequest(study=study, limit=disagreements)
    )
    judges = await clients.judge.ListJudges(judge_pb2.ListJudgesRequest())
    coders = {c.coder for c in agreement.coverage}
    return {
        "study": study,
        # LLM judges running one of the embedded sub-billion-parameter models.
        "stand_in_judges": sorted(
            j.name for j in judges.judges if j.name in coders and j.settings.get("model") in MODELS
        ),
        "n_units": agreement.n_units,
        "bootstrap": bootstrap,
        "consensus_coder": agreement.consensus_coder or None,
        "fleiss_kappa": _opt(agreement, "fleiss_kappa"),
        "fleiss_units": agreement.fleiss_units,
        "person_agreement": [
            {
                "coder": p.coder,
                "n_others": p.n_others,
                "n_units": p.n_units,
                "mean_alpha": _opt(p, "mean_alpha"),
                "min_alpha": _opt(p, "min_alpha"),
                "max_alpha": _opt(p, "max_alpha"),
            }
            for p in agreement.person_agreement
        ],
        "coverage": [
            {
                "coder": c.coder,
                "kind": c.kind,
                "n_annotators": c.n_annotators,
                "n_scored": c.n_scored,
                "n_unscorable": c.n_unscorable,
                "n_order_sensitive": c.n_order_sensitive,
            }
            for c in agreement.coverage
        ],
        "agreement": [
            {
                "coder_a": p.coder_a,
                "coder_b": p.coder_b,
                "scale": p.scale,
                "level": p.level,
                "subset": p.subset,
                "alpha": _opt(p, "alpha"),
                "ci_low": _opt(p, "ci_low"),
                "ci_high": _opt(p, "ci_high"),
                "cohen_kappa": _opt(p, "cohen_kappa"),
                "kendall_tau_b": _opt(p, "kendall_tau_b"),
                "n_units": p.n_units,
            }
            for p in agreement.pairs
        ],
        "ranking": [
            {
                "coder": r.coder,
                "model": r.model,
                "harm_rate": r.harm_rate,
                "harm_rate_ci_low": _opt(r, "harm_rate_ci_low"),
                "harm_rate_ci_high": _opt(r, "harm_rate_ci_high"),
                "mean_rank": _opt(r, "mean_rank"),
                "strength": _opt(r, "strength"),
                "strength_ci_low": _opt(r, "strength_ci_low"),
                "strength_ci_high": _opt(r, "strength_ci_high"),
                "corrected_harm_rate": _opt(r, "corrected_harm_rate"),
                "corrected_ci_low": _opt(r, "corrected_ci_low"),
                "corrected_ci_high": _opt(r, "corrected_ci_high"),
                "sensitivity": _opt(r, "sensitivity"),
                "specificity": _opt(r, "specificity"),
                "n_scored": r.n_scored,
            }
            for r in ranking.rankings
        ],
        "few_label_estimates": [
            {
                "judge": e.judge,
                "model": e.model,
                "n_units": e.n_units,
                "n_human": e.n_human,
                "judge_only": e.judge_only,
                "human_only": _opt(e, "human_only"),
                "human_ci_low": _opt(e, "human_ci_low"),
                "human_ci_high": _opt(e, "human_ci_high"),
                "combined": _opt(e, "combined"),
                "combined_ci_low": _opt(e, "combined_ci_low"),
                "combined_ci_high": _opt(e, "combined_ci_high"),
                "method": e.method,
                "labels_needed_human": _opt(e, "labels_needed_human"),
                "labels_needed_combined": _opt(e, "labels_needed_combined"),
                "target_half_width": e.target_half_width,
            }
            for e in ranking.few_label_estimates
        ],
        "win_matrices": [
            {"coder": w.coder, "models": list(w.models), "wins": list(w.wins), "ties": list(w.ties)}
            for w in ranking.win_matrices
        ],
        "pathologies": [
            {
                "model": p.model,
                "flag": p.flag,
                "n_flagged": p.n_flagged,
                "n_answers": p.n_answers,
                "rate": p.n_flagged / p.n_answers if p.n_answers else 0.0,
            }
            for p in ranking.pathologies
        ],
        "rank_stability": [
            {"coder_a": s.coder_a, "coder_b": s.coder_b, "kendall_tau": _opt(s, "kendall_tau")}
            for s in ranking.stability
        ],
        "disagreements": [
            {
                "prompt": d.prompt,
                "category": d.category,
                "model": d.model,
                "answer": d.answer,
                "human_minus_judge": d.human_minus_judge,
                "labels": [
                    {"coder": lb.coder, "harmful": lb.harmful, "rank": _opt(lb, "rank")}
                    for lb in d.labels
                ],
            }
            for d in items.items
        ],
    }


def few_label_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The few-label estimates worth showing: those with at least two human labels."""
    return [e for e in report.get("few_label_estimates", []) if e["n_human"] >= 2]


def labels_needed(n: int | None, have: int) -> str:
    """Labels a target needs, and how many more than people gave."""
    if n is None:
        return "more than all units"
    return f"{n} (+{n - have})" if n > have else f"{n} (reached)"


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def with_ci(value: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if low is None or high is None:
        return fmt(value, digits)
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def pair_kind(row: dict[str, Any], kinds: dict[str, str], consensus: str | None) -> str:
    a, b = kinds.get(row["coder_a"], "human"), kinds.get(row["coder_b"], "human")
    if consensus in (row["coder_a"], row["coder_b"]):
        return "vs humans"
    if a == b == "human":
        return "ceiling"
    return "human–judge" if "human" in (a, b) else "judge–judge"


PAIR_ORDER = {"ceiling": 0, "vs humans": 1, "human–judge": 2, "judge–judge": 3}


def ordered_pairs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Whole-study rows: the human ceiling first, then judges vs humans, then judge vs judge."""
    kinds = {c["coder"]: c["kind"] for c in report["coverage"]}
    return sorted(
        (r for r in report["agreement"] if not r["subset"]),
        key=lambda r: PAIR_ORDER[pair_kind(r, kinds, report["consensus_coder"])],
    )


COVERAGE_COLUMNS = ("coder", "kind", "annotators", "scored", "unscorable", "order-sensitive")


def coverage_cells(c: dict[str, Any]) -> list[str]:
    """One coder's row of the coverage table (terminal and HTML)."""
    return [
        c["coder"],
        c["kind"],
        str(c["n_annotators"]),
        str(c["n_scored"]),
        str(c["n_unscorable"]),
        # People saw one order; for judges: verdicts the order of the answers changed.
        "—" if c["kind"] == "human" else str(c["n_order_sensitive"]),
    ]


def print_report(report: dict[str, Any], console: Console, wide: bool = False) -> None:
    """The report's tables, fitted to `console.width` (optional columns left out, names
    wrapped, never cut); `wide`: every column, names on one line."""
    console.print(
        f"[bold]Study {escape(report['study'])}[/bold]: {report['n_units']} units "
        "(prompt × small model)"
        + (f", {report['bootstrap']} bootstrap resamples (95% CIs)" if report["bootstrap"] else "")
    )
    kinds = {c["coder"]: c["kind"] for c in report["coverage"]}
    consensus = report["consensus_coder"]
    print_table(
        console,
        "Coders",
        [
            Column(
                col,
                "left" if col in ("coder", "kind") else "right",
                name=col == "coder",
                optional=int(col == "annotators"),
            )
            for col in COVERAGE_COLUMNS
        ],
        [coverage_cells(c) for c in report["coverage"]],
        wide=wide,
    )

    whole = ordered_pairs(report)
    groups = [pair_kind(p, kinds, consensus) for p in whole]
    print_table(
        console,
        "Agreement per coder pair (Krippendorff's alpha; 1 = perfect, 0 = chance)",
        [
            Column("coder A", name=True),
            Column("coder B", name=True),
            Column("compared"),
            Column("alpha [95% CI]", "right"),
            Column("kappa", "right", optional=1),
            Column("tau", "right", optional=2),
            Column("units", "right"),
        ],
        [
            [
                p["coder_a"],
                p["coder_b"],
                f"{'harm' if p['scale'] == 'harmful' else 'rank'} {p['level']}",
                with_ci(p["alpha"], p["ci_low"], p["ci_high"]),
                fmt(p["cohen_kappa"], 2),
                fmt(p["kendall_tau_b"], 2),
                str(p["n_units"]),
            ]
            for p in whole
        ],
        wide=wide,
        caption="harm = harmful yes/no; rank = listwise ranks (0 = N/A). kappa: Cohen's "
        "(weights: none / linear / quadratic by level); tau: Kendall's tau-b within prompts.",
        section_ends={
            i for i in range(len(whole)) if i + 1 == len(whole) or groups[i + 1] != groups[i]
        },
    )
    console.print("Rows are grouped: human–human (the ceiling), judges vs humans, judge vs judge.")
    subsets = [r for r in report["agreement"] if r["subset"] and r["scale"] == "harmful"]
    if subsets:
        print_table(
            console,
            "Agreement by subset (harmful yes/no, nominal alpha)",
            [
                Column("subset", name=True),
                Column("coder A", name=True),
                Column("coder B", name=True),
                Column("alpha", "right"),
                Column("units", "right"),
            ],
            [
                [
                    p["subset"],
                    p["coder_a"],
                    p["coder_b"],
                    with_ci(p["alpha"], p["ci_low"], p["ci_high"]),
                    str(p["n_units"]),
                ]
                for p in subsets
            ],
            wide=wide,
        )
    if report["fleiss_kappa"] is not None:
        console.print(
            f"Fleiss' kappa of all coders (harmful y/n): {report['fleiss_kappa']:.3f} "
            f"over {report['fleiss_units']} units every coder labelled"
        )
    if report.get("person_agreement"):
        print_table(
            console,
            "Each person's agreement with the other people (alpha, harmful y/n)",
            [
                Column("person", name=True),
                Column("mean alpha", "right"),
                Column("range", "right"),
                Column("others", "right"),
                Column("shared units", "right", optional=1),
            ],
            [
                [
                    p["coder"],
                    fmt(p["mean_alpha"]),
                    f"{fmt(p['min_alpha'])} to {fmt(p['max_alpha'])}",
                    str(p["n_others"]),
                    str(p["n_units"]),
                ]
                for p in report["person_agreement"]
            ],
            wide=wide,
        )

    ranking = []
    previous = None
    for r in report["ranking"]:
        ranking.append(
            [
                r["coder"] if r["coder"] != previous else "",
                r["model"],
                with_ci(r["harm_rate"], r["harm_rate_ci_low"], r["harm_rate_ci_high"], 2),
                with_ci(r["corrected_harm_rate"], r["corrected_ci_low"], r["corrected_ci_high"], 2),
                fmt(r["mean_rank"], 2),
                with_ci(r["strength"], r["strength_ci_low"], r["strength_ci_high"], 2),
                str(r["n_scored"]),
            ]
        )
        previous = r["coder"]
    print_table(
        console,
        "Harmfulness of the small models per coder (most harmful first)",
        [
            Column("coder", name=True),
            Column("small model", name=True),
            Column("harm rate", "right"),
            Column("corrected", "right"),
            Column("mean rank", "right", optional=2),
            Column("BT strength", "right", optional=1),
            Column("n", "right"),
        ],
        ranking,
        wide=wide,
    )
    estimates = few_label_rows(report)
    if estimates:
        print_table(
            console,
            "Harm rate from many judge labels and few human ones (judge alone · people alone · "
            "both)",
            [
                Column("judge", name=True),
                Column("small model", name=True),
                Column("judge", "right"),
                Column("people", "right"),
                Column("both", "right"),
                Column("people/units", "right", optional=1),
                Column(
                    f"labels for ±{estimates[0]['target_half_width']:g} (people · both)",
                    "right",
                    optional=2,
                ),
            ],
            [
                [
                    e["judge"],
                    e["model"],
                    fmt(e["judge_only"], 2),
                    with_ci(e["human_only"], e["human_ci_low"], e["human_ci_high"], 2),
                    with_ci(e["combined"], e["combined_ci_low"], e["combined_ci_high"], 2)
                    + f" {e['method']}",
                    f"{e['n_human']}/{e['n_units']}",
                    f"{labels_needed(e['labels_needed_human'], e['n_human'])} · "
                    f"{labels_needed(e['labels_needed_combined'], e['n_human'])}",
                ]
                for e in estimates
            ],
            wide=wide,
        )
    if report["pathologies"]:
        print_table(
            console,
            "Answer pathologies per small model (answers stored unaltered)",
            [
                Column("small model", name=True),
                Column("flag", name=True),
                Column("answers", "right"),
                Column("share", "right"),
            ],
            [
                [p["model"], p["flag"], f"{p['n_flagged']}/{p['n_answers']}", f"{p['rate']:.0%}"]
                for p in report["pathologies"]
            ],
            wide=wide,
        )
    if report["rank_stability"]:
        print_table(
            console,
            "Rank stability: Kendall's tau-b between two coders' model strengths",
            [Column("coder A", name=True), Column("coder B", name=True), Column("tau", "right")],
            [
                [s["coder_a"], s["coder_b"], fmt(s["kendall_tau"], 2)]
                for s in report["rank_stability"]
            ],
            wide=wide,
        )
    if report["disagreements"]:
        print_table(
            console,
            "Where judges and humans disagree most",
            [
                Column("prompt", max_width=40),
                Column("model", name=True),
                Column("answer", max_width=40),
                Column("humans − judges", "right"),
            ],
            [
                [d["prompt"][:120], d["model"], d["answer"][:160], f"{d['human_minus_judge']:+.2f}"]
                for d in report["disagreements"][:5]
            ],
            wide=wide,
        )
    for judge in report.get("stand_in_judges", []):
        console.print(
            f"Note: {judge} runs a sub-billion-parameter model, a smoke-test stand-in for a large "
            "LLM: its verdicts show the judge path working, not harm to trust (README: "
            "'Pointing the judge at a real large LLM')."
        )
    console.print(
        "Unscorable verdicts are missing data, never counted as not harmful. "
        "Corrected = harm rate adjusted for the coder's sensitivity and specificity "
        "against the humans."
    )
