"""The generator service alone, on its own database: with the scripted engine
(`tests.fakes.scripted_engine`, no model loads) or with the real Gemma 3 270M.

Test modules wrap these in fixtures of their own, e.g.::

    @pytest.fixture
    async def generator(database_url: str, tmp_path: Path) -> AsyncIterator[Generator]:
        async with scripted_generator(database_url, tmp_path) as g:
            yield g
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.server import RunningServer
from harmeval_generator.service import SPEC, GeneratorServicer
from harmeval_generator.settings import GeneratorSettings
from tests.fakes.scripted_engine import SCRIPTED, ScriptedEngine
from tests.integration.conftest import running

# The model name the scripted generator serves by default.
SCRIPTED_MODEL = "scripted-model"


@dataclass(frozen=True, kw_only=True)
class Generator:
    """A running generator service and a client of it."""

    client: GeneratorServiceStub
    servicer: GeneratorServicer
    server: RunningServer

    async def count_rows(self, table: str) -> int:
        repo = self.servicer.repo
        assert repo is not None
        return int(await repo.count_rows(table))

    def scripted(self, model: str = SCRIPTED_MODEL) -> ScriptedEngine:
        """The scripted engine serving `model` (to script replies or read its calls)."""
        engine = self.servicer.engines[model]
        assert isinstance(engine, ScriptedEngine)
        return engine


@asynccontextmanager
async def generator_with(settings: GeneratorSettings) -> AsyncIterator[Generator]:
    """The generator service on 127.0.0.1:0 with `settings`, started (engines open)."""
    servicer = GeneratorServicer(settings)
    async with running(SPEC, servicer, settings) as (server, channel):
        yield Generator(client=GeneratorServiceStub(channel), servicer=servicer, server=server)


@asynccontextmanager
async def scripted_generator(
    database_url: str, data_dir: Path, models: str | None = None
) -> AsyncIterator[Generator]:
    """The generator serving `models` (the body of a models file's `models:` list), by default
    one scripted model, SCRIPTED_MODEL, with a context of 512 tokens."""
    models_file = data_dir / "models.yaml"
    models_file.write_text(
        "models:\n"
        + (models or f"  - {{name: {SCRIPTED_MODEL}, backend: {SCRIPTED}, context_length: 512}}\n")
    )
    settings = GeneratorSettings(
        database_url=database_url, data_dir=data_dir, generator_models_file=models_file
    )
    async with generator_with(settings) as generator:
        yield generator


@asynccontextmanager
async def gemma_generator(
    database_url: str, data_dir: Path, model_path: Path
) -> AsyncIterator[Generator]:
    """The generator serving the real Gemma 3 270M (llama.cpp) as `gemma3-270m`, n_ctx 512."""
    settings = GeneratorSettings(
        database_url=database_url,
        data_dir=data_dir,
        generator_model_path=model_path,
        generator_n_ctx=512,
    )
    async with generator_with(settings) as generator:
        yield generator
