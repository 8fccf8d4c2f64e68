"""Entry point of the `harmeval` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from harmeval import settings as settings_module
from harmeval.settings import SettingsError
from harmeval_client.cli import annotate, processes, tokens
from harmeval_client.cli.html_report import render_html
from harmeval_client.cli.imports import (
    BenchmarkError,
    agreement_for_file,
    import_annotations,
    import_harmmetric,
    import_llm_harm,
    run_harmmetric,
)
from harmeval_client.cli.report import fetch_report, print_report
from harmeval_client.cli.runner import (
    StudyRunError,
    cancel_run,
    detached_message,
    print_runs,
    run_with_progress,
    state_name,
)
from harmeval_client.clients import connect
from harmeval_client.importers import TableFileError
from harmeval_client.settings import ClientSettings
from harmeval_client.study import StudyFileError, load_study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmeval",
        description="Rank small LLMs by harmfulness and measure how well judges agree with people.",
    )
    credentials = parser.add_argument_group(
        "credentials (default: the token `harmeval up` made for the data dir)"
    )
    credentials.add_argument("--token", help="bearer token (or HARMEVAL_TOKEN)")
    credentials.add_argument(
        "--ca", type=Path, help="CA certificate of the services: use TLS (HARMEVAL_TLS_CA_FILE)"
    )
    credentials.add_argument("--cert", type=Path, help="client certificate for mutual TLS")
    credentials.add_argument("--key", type=Path, help="the client certificate's key")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up", help="start Postgres, the judge model server, the services and the annotation app"
    )
    sub.add_parser("down", help="stop everything `up` started")
    sub.add_parser("status", help="show what runs where")
    run = sub.add_parser(
        "run",
        help="start (or resume) a study file's run in the runner service and follow it; "
        "Ctrl-C stops following, not the run",
    )
    run.add_argument("study_file")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--cancel", action="store_true", help="cancel the study's run instead")
    run.add_argument(
        "--rejudge-unscorable",
        action="store_true",
        help="ask the judges again where their stored verdict is unscorable",
    )
    sub.add_parser("runs", help="list study runs: state and progress")
    report = sub.add_parser("report", help="agreement and model ranking of a study")
    report.add_argument("study")
    report.add_argument(
        "--json", action="store_true", help="machine-readable output (only JSON on stdout)"
    )
    report.add_argument(
        "--wide",
        action="store_true",
        help="every column, names on one line, however wide the terminal (default: tables "
        "fit the terminal's width, or COLUMNS)",
    )
    report.add_argument("--html", type=Path, metavar="PATH", help="also write an HTML report")
    report.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples for confidence intervals (0 = none)",
    )
    report.add_argument(
        "--target-width",
        type=float,
        default=0.05,
        metavar="HALF_WIDTH",
        help="the harm-rate interval half-width the few-label estimates' labels-needed aim at",
    )
    report.add_argument(
        "--by",
        default="",
        metavar="category,model",
        help="also break agreement down by harm category and/or small model",
    )

    imp = sub.add_parser("import", help="import published data or your own annotations")
    kinds = imp.add_subparsers(dest="kind", required=True)
    llm = kinds.add_parser("llm-harm", help="the seed study's released data (a directory)")
    llm.add_argument("path", type=Path)
    llm.add_argument("--study", default="llm-harm")
    hm = kinds.add_parser("harmmetric-eval", help="HarmMetric Eval (v1 or v2 .jsonl)")
    hm.add_argument("path", type=Path)
    hm.add_argument("--study", default=None, help="default: harmmetric-eval-<version>")
    ann = kinds.add_parser(
        "annotations",
        help="human annotations (CSV/JSONL: study, prompt, model, annotator, value and/or rank)",
    )
    ann.add_argument("path", type=Path)
    ann.add_argument(
        "--replace",
        action="store_true",
        help="replace annotations already stored instead of rejecting the file",
    )

    agree = sub.add_parser("agreement", help="Krippendorff's alpha of a unit,coder,value table")
    agree.add_argument("path", type=Path)
    agree.add_argument(
        "--level", required=True, choices=["nominal", "ordinal", "interval", "ratio"]
    )
    agree.add_argument("--bootstrap", type=int, default=0)
    agree.add_argument("--json", action="store_true", help="machine-readable output")

    bench = sub.add_parser("benchmark", help="score a judge on a benchmark")
    bench.add_argument("benchmark", choices=["harmmetric"])
    bench.add_argument("--judge", required=True)
    bench.add_argument(
        "--study",
        default="harmmetric-eval-v2",
        help="the imported benchmark study (default: harmmetric-eval-v2)",
    )
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is drawn on stderr only when that is a terminal)",
    )
    tokens.add_parser(sub)
    annotate.add_parser(sub)
    return parser


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def print_json(value: Any) -> None:
    """`value` as the only thing on standard output, strict JSON: an undefined number (NaN,
    e.g. a benchmark score over no scorable prompt) is null, which jq and every JSON parser
    read, where `NaN` is not JSON."""
    sys.stdout.write(json.dumps(_finite(value), indent=2, allow_nan=False) + "\n")


def client_settings(args: argparse.Namespace) -> ClientSettings:
    """Settings from the environment, with the command line's credentials on top."""
    given = {
        "token": args.token,
        "tls_ca_file": args.ca,
        "tls_client_cert_file": args.cert,
        "tls_client_key_file": args.key,
    }
    settings = settings_module.load(
        ClientSettings, **{k: v for k, v in given.items() if v is not None}
    )
    return tokens.with_local_token(settings)


async def _run(args: argparse.Namespace, settings: ClientSettings, console: Console) -> int:
    if args.command == "up":
        started = time.perf_counter()
        await processes.up(settings, say=console.print)
        console.print(f"stack ready in {time.perf_counter() - started:.1f}s")
    elif args.command == "down":
        await processes.down(settings, say=console.print)
    elif args.command == "status":
        table = Table(title=f"harmeval stack ({settings.data_dir.resolve()})")
        for col in ("component", "pid", "address", "state"):
            table.add_column(col)
        for row in await processes.status(settings):
            table.add_row(row["component"], row["pid"], row["address"], row["state"])
        console.print(table)
    elif args.command == "run":
        study = load_study(args.study_file)
        started = time.perf_counter()
        async with connect(settings) as clients:
            if args.cancel:
                cancelled = await cancel_run(study.name, clients)
                if cancelled is None:
                    console.print(f"study {study.name} has no run")
                else:
                    console.print(
                        f"run {cancelled.name} of study {study.name}: {state_name(cancelled.state)}"
                    )
                return 0
            summary = await run_with_progress(
                study,
                clients,
                show_progress=not args.no_progress,
                rejudge_unscorable=args.rejudge_unscorable,
            )
        g, j = summary.generations, summary.judgments
        console.print(
            f"study {study.name}: {len(study.prompts)} prompts × {len(study.models)} small models"
            f" × {len(study.judges)} judges in {time.perf_counter() - started:.1f}s — answers"
            f" {g['new']} new / {g['cached']} stored; verdicts {j['new']} new / {j['cached']}"
            f" stored / {j['unscorable']} unscorable"
        )
    elif args.command == "runs":
        async with connect(settings) as clients:
            await print_runs(clients, console)
    elif args.command == "report":
        breakdown = [b for b in args.by.split(",") if b]
        async with connect(settings) as clients:
            report = await fetch_report(
                args.study,
                clients,
                args.bootstrap,
                breakdown,
                target_half_width=args.target_width,
            )
        if args.json:
            print_json(report)
        else:
            print_report(report, console, wide=args.wide)
        if args.html:
            args.html.write_text(render_html(report), encoding="utf-8")
            Console(stderr=True).print(f"HTML report written to {args.html}")
    elif args.command == "import":
        await _import(args, settings, console)
    elif args.command == "token":
        tokens.run(args, settings, console)
    elif args.command == "annotate":
        await annotate.run(args, settings, console)
    elif args.command == "agreement":
        async with connect(settings) as clients:
            result = await agreement_for_file(args.path, args.level, args.bootstrap, clients)
        if args.json:
            print_json(result)
        else:
            ci = (
                f" (95% CI {result['ci_low']:.3f} to {result['ci_high']:.3f})"
                if result["ci_low"] is not None
                else ""
            )
            value = "undefined" if result["alpha"] is None else f"{result['alpha']:.4f}"
            console.print(
                f"Krippendorff's alpha ({args.level}) = {value}{ci} over "
                f"{result['n_units']} units, {result['n_coders']} coders, "
                f"{result['n_values']} values"
            )
    elif args.command == "benchmark":
        async with connect(settings) as clients:
            score = await run_harmmetric(
                args.judge, args.study, clients, show_progress=not args.no_progress
            )
        if args.json:
            print_json(score)
        else:
            table = Table(title=f"HarmMetric Eval: {args.judge} on {args.study}")
            table.add_column("score")
            table.add_column("value", justify="right")
            for key in ("score_v1", "score_v2"):
                table.add_row(key, f"{score[key]:.4f}")
            for key, value in score["fine_grained"].items():
                table.add_row(f"  {key}", f"{value:.4f}")
            table.add_row(
                "prompts scored / skipped", f"{score['n_prompts']} / {score['n_skipped']}"
            )
            console.print(table)
    return 0


async def _import(args: argparse.Namespace, settings: ClientSettings, console: Console) -> None:
    started = time.perf_counter()
    async with connect(settings) as clients:
        if args.kind == "llm-harm":
            reply, data = await import_llm_harm(args.path, clients, args.study)
            console.print(
                f"imported study {args.study}: {reply.n_prompts} prompts, {reply.n_answers} "
                f"answers, {reply.n_labels} labels in {time.perf_counter() - started:.1f}s"
            )
            per_coder = ", ".join(f"{c} {n}" for c, n in sorted(data.labels_per_coder().items()))
            console.print(f"labels per coder: {per_coder}")
            if data.problems:
                reasons = ", ".join(
                    f"{r}: {n}" for r, n in sorted(data.problems_by_reason().items())
                )
                console.print(
                    f"{len(data.problems)} rows not imported (reported, not guessed): {reasons}"
                )
                for p in data.problems[:15]:
                    console.print(
                        f"  {p.file} line {p.line}, field {p.field!r}: {p.reason} ({p.raw[:60]!r})",
                        markup=False,
                    )
                if len(data.problems) > 15:
                    console.print(f"  … and {len(data.problems) - 15} more")
        elif args.kind == "harmmetric-eval":
            reply, name = await import_harmmetric(args.path, clients, args.study)
            console.print(
                f"imported study {name}: {reply.n_prompts} prompts, {reply.n_answers} responses "
                f"in {time.perf_counter() - started:.1f}s"
            )
        else:
            results = await import_annotations(args.path, clients, args.replace)
            for study, r in results.items():
                console.print(
                    f"study {study}: {r.n_imported} annotations imported, {r.n_replaced} replaced"
                )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=args.command in ("up", "down"))
    err = Console(stderr=True)
    try:
        settings = client_settings(args)
        return asyncio.run(_run(args, settings, console))
    except KeyboardInterrupt:
        if args.command != "run" or args.cancel:
            raise
        # The run is the service's: leaving the terminal leaves it running.
        err.print(detached_message(load_study(args.study_file), args.study_file))
        return 130
    except (
        StudyFileError,
        StudyRunError,
        SettingsError,
        processes.StackError,
        BenchmarkError,
        TableFileError,  # every import file error: names file, line and field
        tokens.TokenError,
        annotate.AnnotateError,
        FileNotFoundError,
    ) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    except grpc.aio.AioRpcError as exc:
        hint = ""
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            hint = " (is the stack running? try `harmeval up`)"
        err.print(f"[red]error:[/red] {exc.code().name}: {exc.details()}{hint}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
