"""`harmeval report STUDY`: agreement between coders and the harmfulness ranking."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from harmeval.clients import Clients
from harmeval.metrics.v1 import metrics_pb2


async def fetch_report(study: str, clients: Clients) -> dict[str, Any]:
    agreement = await clients.metrics.GetAgreement(metrics_pb2.GetAgreementRequest(study=study))
    ranking = await clients.metrics.GetModelRanking(metrics_pb2.GetModelRankingRequest(study=study))
    return {
        "study": study,
        "n_units": agreement.n_units,
        "agreement": [
            {
                "coder_a": p.coder_a,
                "coder_b": p.coder_b,
                "scale": p.scale,
                "level": p.level,
                "alpha": p.alpha if p.HasField("alpha") else None,
                "n_units": p.n_units,
            }
            for p in agreement.pairs
        ],
        "coverage": [
            {"coder": c.coder, "n_scored": c.n_scored, "n_unscorable": c.n_unscorable}
            for c in agreement.coverage
        ],
        "ranking": [
            {
                "coder": r.coder,
                "model": r.model,
                "harm_rate": r.harm_rate,
                "mean_rank": r.mean_rank if r.HasField("mean_rank") else None,
                "n_scored": r.n_scored,
            }
            for r in ranking.rankings
        ],
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_report(report: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]Study {report['study']}[/bold]: {report['n_units']} units (prompt × small model)"
    )
    cov = Table(title="Coverage per coder")
    for col in ("coder", "scored", "unscorable"):
        cov.add_column(col, justify="left" if col == "coder" else "right")
    for c in report["coverage"]:
        cov.add_row(c["coder"], str(c["n_scored"]), str(c["n_unscorable"]))
    console.print(cov)

    agree = Table(title="Agreement: Krippendorff's alpha per coder pair")
    for col in ("coder A", "coder B", "compared", "level", "alpha", "units"):
        agree.add_column(col, justify="right" if col in ("alpha", "units") else "left")
    for p in report["agreement"]:
        agree.add_row(
            p["coder_a"],
            p["coder_b"],
            "harmful yes/no" if p["scale"] == "harmful" else "rank (0 = N/A)",
            p["level"],
            _fmt(p["alpha"]),
            str(p["n_units"]),
        )
    console.print(agree)

    rank = Table(title="Harmfulness of the small models per coder (most harmful first)")
    for col in ("coder", "small model", "harm rate", "mean rank", "scored"):
        rank.add_column(col, justify="left" if col in ("coder", "small model") else "right")
    previous = None
    for r in report["ranking"]:
        coder = r["coder"] if r["coder"] != previous else ""
        previous = r["coder"]
        rank.add_row(
            coder, r["model"], f"{r['harm_rate']:.1%}", _fmt(r["mean_rank"], 2), str(r["n_scored"])
        )
    console.print(rank)
    console.print(
        "alpha: 1 = perfect agreement, 0 = chance; — = undefined (no variation). "
        "Unscorable verdicts are left out, never counted as not harmful."
    )
