"""Import time of the seed study's data, and the time to compute its full report.

Parses ../shared/datasets/llm-harm, imports it through the metrics service over gRPC (which
stores answers through the generator and labels through the judge service) into a fresh
embedded PostgreSQL, imports it again (idempotent: nothing new stored), then computes
agreement and ranking with 1,000 bootstrap resamples. Writes bench/results/import_llm_harm.json.

    .venv/bin/python bench/import_llm_harm.py [DATASET_DIR]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import grpc
from bench_auth import bench_auth

from harmeval.clients import raw_channel
from harmeval.generator.v1.generator_pb2_grpc import GeneratorServiceStub
from harmeval.judge.v1.judge_pb2_grpc import JudgeServiceStub
from harmeval.metrics.v1.metrics_pb2_grpc import MetricsServiceStub
from harmeval.server import Servicer, ServiceSpec, create_server
from harmeval.settings import CommonSettings
from harmeval_client.cli.imports import llm_harm_request
from harmeval_client.cli.report import fetch_report
from harmeval_client.clients import Clients
from harmeval_client.importers import load_llm_harm
from harmeval_generator.service import SPEC as GENERATOR_SPEC
from harmeval_generator.service import GeneratorServicer
from harmeval_generator.settings import GeneratorSettings
from harmeval_judge.service import SPEC as JUDGE_SPEC
from harmeval_judge.service import JudgeServicer
from harmeval_judge.settings import JudgeSettings
from harmeval_metrics.service import SPEC, MetricsServicer
from harmeval_metrics.settings import MetricsSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


@asynccontextmanager
async def serving(
    spec: ServiceSpec, servicer: Servicer, settings: CommonSettings
) -> AsyncIterator[tuple[int, grpc.aio.Channel]]:
    """A started server on a free port with its resources open, and a channel to it with the
    server's own token (settings made with BenchAuth.secured)."""
    srv = await create_server(spec, servicer, "127.0.0.1:0", settings)
    await srv.start()
    limit = settings.max_message_bytes
    async with (
        AsyncExitStack() as stack,
        raw_channel(
            f"127.0.0.1:{srv.port}",
            settings,
            [
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        ) as channel,
    ):
        await servicer.startup(stack)
        yield srv.port, channel
    await srv.stop(0)


async def main(directory: Path) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    timings: dict[str, float] = {}
    started = time.perf_counter()
    data = load_llm_harm(directory)
    timings["parse_s"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="hb-", dir="/tmp") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        auth = bench_auth(Path(tmp))
        common = {"database_url": pg.get_uri(), "data_dir": Path(tmp)}
        # The import stores answers through the generator and labels through the judge service.
        gen_settings = auth.secured(GeneratorSettings(**common))
        judge_settings = auth.secured(JudgeSettings(**common, judge_llm_enabled=False))
        async with (
            serving(GENERATOR_SPEC, GeneratorServicer(gen_settings), gen_settings) as (g_port, g),
            serving(JUDGE_SPEC, JudgeServicer(judge_settings), judge_settings) as (j_port, j),
        ):
            settings = auth.secured(
                MetricsSettings(
                    **common,
                    metrics_generator_target=f"127.0.0.1:{g_port}",
                    metrics_judge_target=f"127.0.0.1:{j_port}",
                )
            )
            async with serving(SPEC, MetricsServicer(settings), settings) as (_, channel):
                metrics = MetricsServiceStub(channel)
                request = llm_harm_request(data, "llm-harm")
                timings["request_mb"] = request.ByteSize() / 1e6
                for key in ("import_s", "reimport_s"):
                    started = time.perf_counter()
                    reply = await metrics.ImportStudy(request)
                    timings[key] = time.perf_counter() - started
                timings["labels"] = reply.n_labels
                # The report needs no runner.
                clients = Clients(GeneratorServiceStub(g), JudgeServiceStub(j), metrics, None)  # type: ignore[arg-type]
                started = time.perf_counter()
                await fetch_report("llm-harm", clients, bootstrap=1000)
                timings["report_with_1000_bootstrap_s"] = time.perf_counter() - started
        pg.cleanup()
    return timings


if __name__ == "__main__":
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/datasets/llm-harm"
    result = asyncio.run(main(directory))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "import_llm_harm.json").write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        print(f"{key:<30} {value:10.3f}")
