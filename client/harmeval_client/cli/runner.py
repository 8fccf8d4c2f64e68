"""`harmeval run STUDY.yaml` and `harmeval runs`: the runner service's runs on the terminal.

The run lives in the service: the bars follow WatchRun, and Ctrl-C only stops watching.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from harmeval.runner.v1 import runner_pb2
from harmeval_client.cli import terminal
from harmeval_client.clients import Clients
from harmeval_client.study import Study
from harmeval_client.workflow import RunSummary, StudyRunError, run_study

__all__ = ["StudyRunError", "cancel_run", "detached_message", "print_runs", "run_with_progress"]

_STAGE = {runner_pb2.STAGE_GENERATE: "generate", runner_pb2.STAGE_JUDGE: "judge"}


def state_name(state: int) -> str:
    return runner_pb2.RunState.Name(state).removeprefix("RUN_STATE_").lower()


async def run_with_progress(
    study: Study, clients: Clients, show_progress: bool = True, rejudge_unscorable: bool = False
) -> RunSummary:
    """`run_study` with a bar per stage and model or judge on standard error, when that is a
    terminal."""
    with terminal.progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        show=show_progress,
    ) as progress:
        bars: dict[tuple[int, str], TaskID] = {}

        def on_run(run: runner_pb2.Run) -> None:
            for s in run.progress.stages:
                key = (s.stage, s.subject)
                if key not in bars:
                    label = f"{_STAGE.get(s.stage, '?')} {s.subject}"
                    bars[key] = progress.add_task(label[:28], total=s.total, note="")
                note = f"{s.cached} stored" if s.cached else ""
                if s.unscorable:
                    note += f" {s.unscorable} unscorable"
                if s.failed:
                    note += f" {s.failed} failed"
                progress.update(bars[key], completed=s.done + s.failed, note=note.strip())

        return await run_study(study, clients, rejudge_unscorable=rejudge_unscorable, on_run=on_run)


async def cancel_run(study: str, clients: Clients) -> runner_pb2.Run | None:
    """Cancels the study's run if it is running; returns the run (None: the study has none)."""
    reply = await clients.runner.ListRuns(runner_pb2.ListRunsRequest(study=study, page_size=1))
    if not reply.runs:
        return None
    run: runner_pb2.Run = reply.runs[0]
    if run.done:
        return run
    cancelled = await clients.runner.CancelRun(runner_pb2.CancelRunRequest(name=run.name))
    result: runner_pb2.Run = cancelled.run
    return result


async def print_runs(clients: Clients, console: Console) -> None:
    reply = await clients.runner.ListRuns(runner_pb2.ListRunsRequest(page_size=100))
    table = Table(title="study runs")
    for col in ("run", "study", "state", "attempt", "answers", "verdicts", "failed", "started"):
        table.add_column(col)
    for run in reply.runs:
        done = {runner_pb2.STAGE_GENERATE: [0, 0], runner_pb2.STAGE_JUDGE: [0, 0]}
        failed = 0
        for s in run.progress.stages:
            done[s.stage][0] += s.done
            done[s.stage][1] += s.total
            failed += s.failed
        g, j = done[runner_pb2.STAGE_GENERATE], done[runner_pb2.STAGE_JUDGE]
        table.add_row(
            run.name,
            run.study,
            state_name(run.state),
            str(run.attempt),
            f"{g[0]}/{g[1]}",
            f"{j[0]}/{j[1]}",
            str(failed),
            run.start_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


def detached_message(study: Study, study_file: str) -> str:
    return (
        f"stopped watching: the run of study {study.name!r} goes on in the runner service "
        f"('harmeval runs' lists runs; 'harmeval run {study_file} --cancel' stops it)"
    )
