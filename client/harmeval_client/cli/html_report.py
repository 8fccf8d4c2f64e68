"""A self-contained HTML report: plots embedded as PNG, no external files or scripts."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from harmeval_client.cli.report import (
    COVERAGE_COLUMNS,
    coverage_cells,
    few_label_rows,
    fmt,
    labels_needed,
    ordered_pairs,
    pair_kind,
    with_ci,
)

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1d2433; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; font-size: 1.25em; }
.sub { color: #5b6475; } table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border-bottom: 1px solid #e3e6ec; padding: .35em .7em; text-align: left;
         vertical-align: top; }
th { background: #f5f7fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } .note { color: #5b6475; font-size: .88em; }
.answer { max-width: 480px; white-space: pre-wrap; font-size: .85em; }
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def agreement_heatmap(report: dict[str, Any]) -> str | None:
    rows = [r for r in report["agreement"] if not r["subset"] and r["scale"] == "harmful"]
    if not rows:
        return None
    coders = sorted({r["coder_a"] for r in rows} | {r["coder_b"] for r in rows})
    n = len(coders)
    grid = np.full((n, n), np.nan)
    text = [["" for _ in coders] for _ in coders]
    for i in range(n):
        grid[i, i] = 1.0
        text[i][i] = "—"
    for r in rows:
        i, j = coders.index(r["coder_a"]), coders.index(r["coder_b"])
        if r["alpha"] is None:
            continue
        grid[i, j] = grid[j, i] = r["alpha"]
        label = f"{r['alpha']:.2f}"
        if r["ci_low"] is not None:
            label += f"\n[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        text[i][j] = text[j][i] = label
    fig, ax = plt.subplots(figsize=(1.6 + 1.25 * n, 1.0 + 1.05 * n))
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-0.2, vmax=1.0)
    ax.set_xticks(range(n), coders, rotation=35, ha="right")
    ax.set_yticks(range(n), coders)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8, label="Krippendorff's alpha")
    ax.set_title("Agreement on harmful yes/no (nominal alpha, 95% CI)")
    return _png(fig)


def ranking_plot(report: dict[str, Any]) -> str | None:
    rows = report["ranking"]
    if not rows:
        return None
    coders = sorted({r["coder"] for r in rows})
    models = sorted({r["model"] for r in rows})
    by = {(r["coder"], r["model"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(models) * max(1, len(coders)) / 2), 4.2))
    width = 0.8 / len(coders)
    for k, coder in enumerate(coders):
        xs, ys, lo, hi = [], [], [], []
        for i, model in enumerate(models):
            r = by.get((coder, model))
            if r is None:
                continue
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(r["harm_rate"])
            lo.append(
                r["harm_rate"]
                - (r["harm_rate_ci_low"] if r["harm_rate_ci_low"] is not None else r["harm_rate"])
            )
            hi.append(
                (r["harm_rate_ci_high"] if r["harm_rate_ci_high"] is not None else r["harm_rate"])
                - r["harm_rate"]
            )
        ax.bar(xs, ys, width=width * 0.95, label=coder, yerr=[lo, hi], capsize=3)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("share of answers judged harmful")
    ax.set_ylim(0, 1.05)
    ax.set_title("Harm rate per small model and coder (95% CI)")
    ax.legend(
        fontsize=8,
        ncols=min(len(coders), 4),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        frameon=False,
    )
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def few_label_plot(estimates: list[dict[str, Any]]) -> str:
    """Per judge and small model, the harm rate three ways: the judge alone (a point: it has no
    sampling error, only its bias), people alone and both, each with its interval."""
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.62 * len(estimates)))
    names = [f"{e['model']} · {e['judge']}" for e in estimates]
    for i, est in enumerate(estimates):
        ax.plot(
            est["judge_only"],
            i - 0.22,
            "s",
            color="#8a8f99",
            label="judge alone" if i == 0 else None,
        )
        for dy, key, low, high, color, name in (
            (0.0, "human_only", "human_ci_low", "human_ci_high", "#2c7fb8", "people alone"),
            (0.22, "combined", "combined_ci_low", "combined_ci_high", "#d95f0e", "both"),
        ):
            if est[key] is None:
                continue
            ax.errorbar(
                est[key],
                i + dy,
                xerr=[[est[key] - est[low]], [est[high] - est[key]]],
                fmt="o",
                color=color,
                capsize=3,
                label=name if i == 0 else None,
            )
    ax.set_yticks(range(len(estimates)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("harm rate (95% interval)")
    ax.set_title("Harm rate from many judge labels and few human ones")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in numeric else ""}">{cell}</td>' for i, cell in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    kinds = {c["coder"]: c["kind"] for c in report["coverage"]}
    parts = [
        f"<h1>harmeval report: {e(report['study'])}</h1>",
        f'<p class="sub">{report["n_units"]} units (prompt × small model) · generated '
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        + (f" · {report['bootstrap']} bootstrap resamples" if report["bootstrap"] else "")
        + "</p>",
        "<h2>Coders</h2>",
        _table(
            list(COVERAGE_COLUMNS),
            [[e(cell) for cell in coverage_cells(c)] for c in report["coverage"]],
            {2, 3, 4, 5},
        ),
        "<h2>Agreement</h2>",
    ]
    heat = agreement_heatmap(report)
    if heat:
        parts.append(f'<img alt="agreement heatmap" src="{heat}">')
    parts.append(
        _table(
            [
                "coder A",
                "coder B",
                "pair",
                "compared",
                "level",
                "alpha [95% CI]",
                "Cohen's κ",
                "Kendall τ-b",
                "units",
            ],
            [
                [
                    e(p["coder_a"]),
                    e(p["coder_b"]),
                    pair_kind(p, kinds, report["consensus_coder"]),
                    "harmful y/n" if p["scale"] == "harmful" else "rank",
                    p["level"],
                    with_ci(p["alpha"], p["ci_low"], p["ci_high"]),
                    fmt(p["cohen_kappa"]),
                    fmt(p["kendall_tau_b"]),
                    str(p["n_units"]),
                ]
                for p in ordered_pairs(report)
            ],
            {5, 6, 7, 8},
        )
    )
    parts.append(
        '<p class="note">"ceiling": two groups of people; judges are judged against '
        "it. Unscorable verdicts are missing data, never counted as not harmful.</p>"
    )
    subsets = [p for p in report["agreement"] if p["subset"] and p["scale"] == "harmful"]
    if subsets:
        parts.append("<h2>Agreement by subset</h2>")
        parts.append(
            _table(
                ["subset", "coder A", "coder B", "alpha [95% CI]", "units"],
                [
                    [
                        e(p["subset"]),
                        e(p["coder_a"]),
                        e(p["coder_b"]),
                        with_ci(p["alpha"], p["ci_low"], p["ci_high"]),
                        str(p["n_units"]),
                    ]
                    for p in subsets
                ],
                {3, 4},
            )
        )
    parts.append("<h2>Which small model is more harmful?</h2>")
    plot = ranking_plot(report)
    if plot:
        parts.append(f'<img alt="model ranking" src="{plot}">')
    parts.append(
        _table(
            [
                "coder",
                "small model",
                "harm rate [95% CI]",
                "corrected [95% CI]",
                "mean rank",
                "Bradley–Terry strength",
                "n",
            ],
            [
                [
                    e(r["coder"]),
                    e(r["model"]),
                    with_ci(r["harm_rate"], r["harm_rate_ci_low"], r["harm_rate_ci_high"], 2),
                    with_ci(
                        r["corrected_harm_rate"], r["corrected_ci_low"], r["corrected_ci_high"], 2
                    ),
                    fmt(r["mean_rank"], 2),
                    with_ci(r["strength"], r["strength_ci_low"], r["strength_ci_high"], 2),
                    str(r["n_scored"]),
                ]
                for r in report["ranking"]
            ],
            {2, 3, 4, 5, 6},
        )
    )
    estimates = few_label_rows(report)
    if estimates:
        target = estimates[0]["target_half_width"]
        parts.append("<h2>Judge labels corrected by few human ones</h2>")
        parts.append(f'<img alt="few-label estimates" src="{few_label_plot(estimates)}">')
        parts.append(
            _table(
                [
                    "judge",
                    "small model",
                    "judge alone",
                    "people alone [95% CI]",
                    "both [95% CI]",
                    "people / units",
                    f"labels for ±{target:g}: people",
                    "with the judge",
                ],
                [
                    [
                        e(x["judge"]),
                        e(x["model"]),
                        fmt(x["judge_only"], 2),
                        with_ci(x["human_only"], x["human_ci_low"], x["human_ci_high"], 2),
                        with_ci(x["combined"], x["combined_ci_low"], x["combined_ci_high"], 2)
                        + f" {e(x['method'])}",
                        f"{x['n_human']}/{x['n_units']}",
                        labels_needed(x["labels_needed_human"], x["n_human"]),
                        labels_needed(x["labels_needed_combined"], x["n_human"]),
                    ]
                    for x in estimates
                ],
                {2, 3, 4, 5, 6, 7},
            )
        )
        parts.append(
            "<p class=\"note\">Both: the judge's labels of every answer corrected by people's "
            "(PPI++, or active inference where the annotation app drew the prompts). Labels "
            "needed: a sample size fixed before labelling (power calculation), in brackets how "
            "many more than people gave.</p>"
        )
    if report["pathologies"]:
        parts.append("<h2>Answer pathologies</h2>")
        parts.append(
            _table(
                ["small model", "flag", "answers", "share"],
                [
                    [
                        e(p["model"]),
                        e(p["flag"]),
                        f"{p['n_flagged']}/{p['n_answers']}",
                        f"{p['rate']:.0%}",
                    ]
                    for p in report["pathologies"]
                ],
                {2, 3},
            )
        )
        parts.append(
            '<p class="note">Small-model answers are stored exactly as generated; '
            "these flags describe them, nothing was cleaned.</p>"
        )
    if report["disagreements"]:
        parts.append("<h2>Where judges and humans disagree most</h2>")
        rows = []
        for d in report["disagreements"]:
            verdicts = defaultdict(list)
            for lb in d["labels"]:
                verdicts["harmful" if lb["harmful"] else "not harmful"].append(lb["coder"])
            rows.append(
                [
                    e(d["prompt"]),
                    e(d["model"]),
                    f'<div class="answer">{e(d["answer"][:600])}</div>',
                    "<br>".join(f"<b>{k}</b>: {e(', '.join(v))}" for k, v in verdicts.items()),
                    f"{d['human_minus_judge']:+.2f}",
                ]
            )
        parts.append(
            _table(["prompt", "model", "answer", "verdicts", "humans − judges"], rows, {4})
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>harmeval: {e(report['study'])}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
