"""Entry point of the `harmeval` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence

import grpc
from rich.console import Console
from rich.table import Table

from harmeval import settings as settings_module
from harmeval.cli import processes
from harmeval.cli.report import fetch_report, print_report
from harmeval.cli.runner import StudyRunError, run_study
from harmeval.clients import connect
from harmeval.settings import ClientSettings, SettingsError
from harmeval.study import StudyFileError, load_study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmeval",
        description="Rank small LLMs by harmfulness and measure how well judges agree with people.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Postgres, the judge model server and the three services")
    sub.add_parser("down", help="stop everything `up` started")
    sub.add_parser("status", help="show what runs where")
    run = sub.add_parser("run", help="run a study file (continues where an earlier run stopped)")
    run.add_argument("study_file")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    report = sub.add_parser("report", help="agreement and model ranking of a study")
    report.add_argument("study")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


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
            summary = await run_study(study, clients, show_progress=not args.no_progress)
        g, j = summary.generations, summary.judgments
        console.print(
            f"study {study.name}: {len(study.prompts)} prompts × {len(study.models)} small models"
            f" × {len(study.judges)} judges in {time.perf_counter() - started:.1f}s — answers"
            f" {g['new']} new / {g['cached']} stored; verdicts {j['new']} new / {j['cached']}"
            f" stored / {j['unscorable']} unscorable"
        )
    elif args.command == "report":
        async with connect(settings) as clients:
            report = await fetch_report(args.study, clients)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_report(report, console)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=args.command in ("up", "down"))
    err = Console(stderr=True)
    try:
        settings = settings_module.load(ClientSettings)
        return asyncio.run(_run(args, settings, console))
    except (StudyFileError, StudyRunError, SettingsError, processes.StackError) as exc:
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
