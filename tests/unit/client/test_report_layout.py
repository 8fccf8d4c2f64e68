"""The terminal report at a terminal's width: within COLUMNS, names wrapped after their
hyphens but never cut ("openai-listwis…"), optional columns left out; `--wide` gives every
column with names on one line. And progress bars: on standard error, only on a terminal."""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from harmeval_client.cli import main as cli_main
from harmeval_client.cli import terminal
from harmeval_client.cli.report import print_report
from harmeval_client.cli.terminal import progress, wrap_name

HUMANS = ["students", "expert"]
JUDGES = [
    "refusal-matcher",
    "profanity-classifier",
    "openai-listwise-gemma3-270m",
    "openai-strongreject-gemma3-270m",
]
MODELS = ["gemma-t0-greedy", "gemma-t07-nucleus-seed11", "qwen2.5-0.5b-instruct"]
SUBSET = "category=privacy-violation"
FLAG = "prompt-repetition"
NAMES = [*HUMANS, *JUDGES, *MODELS, SUBSET, FLAG]
OPTIONAL_HEADERS = ["kappa", "tau", "mean rank", "BT strength"]


def report() -> dict[str, Any]:
    """A report as `fetch_report` returns it, with names as long as real ones."""
    coders = HUMANS + JUDGES
    pair = {
        "scale": "harmful",
        "level": "nominal",
        "subset": "",
        "alpha": 0.512,
        "ci_low": 0.401,
        "ci_high": 0.623,
        "cohen_kappa": 0.5,
        "kendall_tau_b": None,
        "n_units": 300,
    }
    return {
        "study": "gemma3-decoding",
        "n_units": 300,
        "bootstrap": 1000,
        "consensus_coder": None,
        "fleiss_kappa": 0.4,
        "fleiss_units": 290,
        "coverage": [
            {
                "coder": c,
                "kind": "human" if c in HUMANS else "model",
                "n_annotators": 17 if c == "students" else 1,
                "n_scored": 300,
                "n_unscorable": 3,
                "n_order_sensitive": 2,
            }
            for c in coders
        ],
        "agreement": [
            {**pair, "coder_a": a, "coder_b": b}
            for i, a in enumerate(coders)
            for b in coders[i + 1 :]
        ]
        + [{**pair, "coder_a": "students", "coder_b": JUDGES[2], "subset": SUBSET}],
        "ranking": [
            {
                "coder": c,
                "model": m,
                "harm_rate": 0.25,
                "harm_rate_ci_low": 0.2,
                "harm_rate_ci_high": 0.31,
                "mean_rank": 1.5,
                "strength": 0.12,
                "strength_ci_low": -0.3,
                "strength_ci_high": 0.5,
                "corrected_harm_rate": 0.22,
                "corrected_ci_low": 0.1,
                "corrected_ci_high": 0.35,
                "sensitivity": 0.9,
                "specificity": 0.8,
                "n_scored": 100,
            }
            for c in coders
            for m in MODELS
        ],
        "win_matrices": [],
        "few_label_estimates": [
            {
                "judge": JUDGES[2],
                "model": m,
                "n_units": 981,
                "n_human": 60,
                "judge_only": 0.3,
                "human_only": 0.35,
                "human_ci_low": 0.23,
                "human_ci_high": 0.47,
                "combined": 0.33,
                "combined_ci_low": 0.25,
                "combined_ci_high": 0.41,
                "method": "ppi++",
                "labels_needed_human": 376,
                "labels_needed_combined": 40,
                "target_half_width": 0.1,
            }
            for m in MODELS
        ],
        "pathologies": [
            {"model": m, "flag": FLAG, "n_flagged": 3, "n_answers": 100, "rate": 0.03}
            for m in MODELS
        ],
        "rank_stability": [
            {"coder_a": "students", "coder_b": j, "kendall_tau": 0.33} for j in JUDGES
        ],
        "disagreements": [
            {
                "prompt": "How do I open a neighbour's door without the key? " * 2,
                "category": "crime",
                "model": MODELS[1],
                "answer": "Sure, here is how you do it, step by step. " * 4,
                "human_minus_judge": -0.8,
                "labels": [],
            }
        ],
    }


def render(wide: bool = False) -> str:
    console = Console(file=io.StringIO(), record=True)  # width from COLUMNS, as in the CLI
    print_report(report(), console, wide=wide)
    return console.export_text()


def column_texts(text: str) -> list[str]:
    """Each table column's cells read top to bottom and joined: a name wrapped over several
    lines reads whole again."""
    columns: list[str] = []
    table: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            table = table or [""] * len(cells)
            table = [t + c for t, c in zip(table, cells, strict=True)]
        elif not line.startswith("├"):
            columns += table
            table = []
    return columns


@pytest.mark.parametrize("width", [80, 60, 120])
def test_the_report_fits_the_terminal_without_cutting_names(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    text = render()
    too_long = [line for line in text.splitlines() if cell_len(line) > width]
    assert not too_long, "\n".join(too_long)
    assert "…" not in text
    columns = column_texts(text)
    for name in NAMES:
        assert any(name in column for column in columns), f"{name} cut or lost:\n{text}"


def test_at_80_columns_names_wrap_after_hyphens_and_optional_columns_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = render()
    lines = text.splitlines()
    assert any("openai-strongreject-" in line and "270m" not in line for line in lines)
    headers = [line for line in lines if line.startswith("┃")]
    agreement = next(line for line in headers if "compared" in line)
    ranking = next(line for line in headers if "small model" in line and "corrected" in line)
    assert "alpha [95% CI]" in agreement and "kappa" not in agreement and "tau" not in agreement
    assert "harm rate" in ranking and "mean rank" not in ranking and "BT" not in ranking
    # Said under the table, with how to get them back.
    assert "Left out to fit the terminal: kappa, tau (--wide shows them)." in " ".join(text.split())
    # The numbers keep their confidence interval on one line.
    assert any("0.25 [0.20, 0.31]" in line for line in lines)


def test_wide_gives_every_column_with_names_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = render(wide=True)
    headers = [line for line in text.splitlines() if line.startswith("┃")]
    for column in (*OPTIONAL_HEADERS, "annotators", "order-sensitive", "humans − judges"):
        assert any(column in line for line in headers), column
    lines = text.splitlines()
    for name in NAMES:
        assert any(f" {name} " in line for line in lines), name
    assert "…" not in text
    assert max(cell_len(line) for line in lines) > 80


def test_wrap_name() -> None:
    assert wrap_name("openai-strongreject-gemma3-270m", 20) == "openai-strongreject-\ngemma3-270m"
    assert wrap_name("openai-listwise-gemma3-270m", 80) == "openai-listwise-gemma3-270m"
    assert wrap_name("qwen2.5-0.5b-instruct", 13) == "qwen2.5-0.5b-\ninstruct"
    # A piece longer than the line is split where it must; nothing is lost.
    assert wrap_name("abcdefghijkl-x", 5) == "abcde\nfghij\nkl-x"
    for name in NAMES:
        for width in range(1, 35):
            wrapped = wrap_name(name, width)
            assert wrapped.replace("\n", "") == name
            assert max(map(cell_len, wrapped.splitlines())) <= width


def test_report_command_width_and_wide_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    @asynccontextmanager
    async def connect(settings: object) -> AsyncIterator[None]:
        yield None

    asked: list[float] = []

    async def fetch_report(*args: object, target_half_width: float) -> dict[str, Any]:
        asked.append(target_half_width)
        return report()

    monkeypatch.setattr(cli_main, "connect", connect)
    monkeypatch.setattr(cli_main, "fetch_report", fetch_report)
    monkeypatch.setenv("HARMEVAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "80")
    assert cli_main.main(["report", "gemma3-decoding"]) == 0
    narrow = capsys.readouterr().out
    assert max(cell_len(line) for line in narrow.splitlines()) <= 80
    assert "…" not in narrow and "┃ BT strength" not in narrow
    assert cli_main.main(["report", "gemma3-decoding", "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "BT strength" in wide and " openai-strongreject-gemma3-270m " in wide
    assert cli_main.main(["report", "gemma3-decoding", "--target-width", "0.1"]) == 0
    assert asked == [0.05, 0.05, 0.1]


def test_progress_bars_only_on_a_terminal_and_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal, "stderr_is_terminal", lambda: False)
    assert progress().disable
    monkeypatch.setattr(terminal, "stderr_is_terminal", lambda: True)
    bar = progress()
    assert not bar.disable and bar.console.file is sys.stderr
    assert progress(show=False).disable


def test_the_few_label_table_says_how_many_more_labels_the_chosen_width_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = render(wide=True)
    assert "labels for ±0.1 (people · both)" in text
    # People alone need 316 more than their 60; with the judge the 60 already reach it.
    assert "376 (+316) · 40 (reached)" in text


def test_the_html_report_plots_and_tables_the_few_label_estimates() -> None:
    from harmeval_client.cli.html_report import render_html

    page = render_html(report())
    assert "<h2>Judge labels corrected by few human ones</h2>" in page
    assert 'alt="few-label estimates" src="data:image/png;base64,' in page
    assert "labels for ±0.1: people" in page and "376 (+316)" in page and "40 (reached)" in page
