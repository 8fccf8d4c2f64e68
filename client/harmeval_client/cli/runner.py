"""`harmeval run STUDY.yaml`: the study workflow with progress bars on the terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from harmeval_client.clients import Clients
from harmeval_client.study import Study
from harmeval_client.workflow import RunSummary, StudyRunError, run_study

__all__ = ["StudyRunError", "run_with_progress"]


async def run_with_progress(
    study: Study, clients: Clients, show_progress: bool = True, rejudge_unscorable: bool = False
) -> RunSummary:
    """`run_study` with a bar per stage on standard error (where it is a terminal)."""
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        disable=not show_progress,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def on_total(stage: str, n: int) -> None:
            tasks[stage] = progress.add_task(stage, total=n)

        def on_advance(stage: str, k: int) -> None:
            progress.advance(tasks[stage], k)

        return await run_study(
            study,
            clients,
            rejudge_unscorable=rejudge_unscorable,
            on_total=on_total,
            on_advance=on_advance,
        )
