"""`harmeval down` signals only the processes `up` started (a pid may have been reused)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harmeval_client.cli.processes import _pid_file, _start_time, down, run_dir
from harmeval_client.settings import ClientSettings


@pytest.fixture
def sleepers() -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    procs = (subprocess.Popen(["sleep", "30"]), subprocess.Popen(["sleep", "30"]))
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


async def test_down_leaves_a_process_that_reused_a_recorded_pid_alone(
    tmp_path: Path, sleepers: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]
) -> None:
    stranger, ours = sleepers
    settings = ClientSettings(data_dir=tmp_path)
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    started = _start_time(stranger.pid)
    assert started is not None
    # The generator's pid file names the stranger's pid but another start time: the generator
    # is gone and the pid now belongs to someone else.
    _pid_file(settings, "generator").write_text(
        json.dumps({"pid": stranger.pid, "started": started - 1, "address": "x"})
    )
    _pid_file(settings, "judge").write_text(
        json.dumps({"pid": ours.pid, "started": _start_time(ours.pid), "address": "y"})
    )
    said: list[str] = []
    await down(settings, said.append, stop_postgres=False)
    assert said == [f"judge: stopped (pid {ours.pid})"]
    assert ours.poll() is not None
    assert stranger.poll() is None, "an unrelated process was signalled"
    assert not _pid_file(settings, "generator").exists()
