"""Generator overhead: tokens/s through the gRPC service vs. llama.cpp called directly.

Both paths use the same in-process llama.cpp engine (Gemma 3 270M) in the same run; rounds
alternate between them so machine drift hits both. Every round uses fresh seeds so nothing
comes from the answer cache; both paths get the same prompts and seeds, so the engine
does identical work. Also measures time to first token (engine.stream vs the
GenerateStream RPC) and service throughput at 1, 2, 4 and 8 concurrent requests (llama.cpp runs
one generation at a time, so throughput should stay flat rather than grow).
Writes bench/results/generator_overhead.json.

    .venv/bin/python bench/generator_overhead.py [--rounds 6] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import warnings
from contextlib import AsyncExitStack
from pathlib import Path

from bench_auth import bench_auth

from harmeval.clients import raw_channel
from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc
from harmeval.params import GenerationParams
from harmeval.server import create_server
from harmeval_client.prompts import load_builtin_prompts
from harmeval_generator.backends.base import ModelPrompt, StreamState
from harmeval_generator.service import SPEC, GeneratorServicer
from harmeval_generator.settings import GeneratorSettings

RESULTS = Path(__file__).resolve().parent / "results"


async def main(rounds: int, max_tokens: int, per_round: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    prompts = [p.text for p in load_builtin_prompts()][:per_round]
    with tempfile.TemporaryDirectory(prefix="hb-", dir="/tmp") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        settings = bench_auth(Path(tmp)).secured(
            GeneratorSettings(database_url=pg.get_uri(), data_dir=Path(tmp))
        )
        servicer = GeneratorServicer(settings)
        srv = await create_server(SPEC, servicer, "127.0.0.1:0", settings)
        await srv.start()
        async with (
            AsyncExitStack() as stack,
            raw_channel(f"127.0.0.1:{srv.port}", settings) as channel,
        ):
            await servicer.startup(stack)
            engine = servicer.engines[settings.generator_model_name]
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            seed = 1000
            direct: list[float] = []
            service: list[float] = []
            await engine.complete(ModelPrompt("warm up"), GenerationParams(max_tokens=8))
            for _ in range(rounds):
                params = [
                    GenerationParams(temperature=0.8, max_tokens=max_tokens, seed=seed + i)
                    for i in range(len(prompts))
                ]
                seed += len(prompts)
                started, tokens = time.perf_counter(), 0
                for text, p in zip(prompts, params, strict=True):
                    tokens += (await engine.complete(ModelPrompt(text), p)).completion_tokens
                direct.append(tokens / (time.perf_counter() - started))

                # The same prompts and seeds: identical work for the engine on both paths (the
                # direct path stores nothing, so the service finds nothing cached).
                started, tokens = time.perf_counter(), 0
                for text, p in zip(prompts, params, strict=True):
                    reply = await stub.Generate(
                        generator_pb2.GenerateRequest(
                            model=settings.generator_model_name,
                            prompts=[common_pb2.Prompt(text=text)],
                            params=p.to_proto(),
                        )
                    )
                    assert not reply.generations[0].cached
                    tokens += reply.generations[0].completion_tokens
                service.append(tokens / (time.perf_counter() - started))

            # Time to first token: engine.stream directly vs GenerateStream over gRPC.
            ttft_direct: list[float] = []
            ttft_service: list[float] = []
            for text in prompts:
                p = GenerationParams(temperature=0.8, max_tokens=8, seed=seed)
                seed += 1
                started = time.perf_counter()
                async for _ in engine.stream(ModelPrompt(text), p, StreamState()):
                    ttft_direct.append(time.perf_counter() - started)
                    break
                p = GenerationParams(temperature=0.8, max_tokens=8, seed=seed)
                seed += 1
                started = time.perf_counter()
                call = stub.GenerateStream(
                    generator_pb2.GenerateStreamRequest(
                        model=settings.generator_model_name,
                        prompt=common_pb2.Prompt(text=text),
                        params=p.to_proto(),
                    )
                )
                async for _ in call:
                    ttft_service.append(time.perf_counter() - started)
                    break
                call.cancel()

            # Throughput at 1, 2, 4, 8 concurrent requests through the service.
            concurrency: dict[str, float] = {}
            for k in (1, 2, 4, 8):
                started, tokens = time.perf_counter(), 0
                replies = await asyncio.gather(
                    *(
                        stub.Generate(
                            generator_pb2.GenerateRequest(
                                model=settings.generator_model_name,
                                prompts=[common_pb2.Prompt(text=prompts[i % len(prompts)])],
                                params=GenerationParams(
                                    temperature=0.8, max_tokens=max_tokens, seed=seed + i
                                ).to_proto(),
                            )
                        )
                        for i in range(2 * k)
                    )
                )
                seed += 2 * k
                tokens = sum(r.generations[0].completion_tokens for r in replies)
                concurrency[f"tokens_per_s_at_{k}_concurrent"] = tokens / (
                    time.perf_counter() - started
                )
        await srv.stop(0)
        pg.cleanup()
    result = {
        "direct_tokens_per_s": statistics.median(direct),
        "service_tokens_per_s": statistics.median(service),
        "rounds": rounds,
        "requests_per_round": len(prompts),
        "max_tokens": max_tokens,
    }
    result["service_over_direct"] = result["service_tokens_per_s"] / result["direct_tokens_per_s"]
    result["overhead_pct"] = 100 * (1 - result["service_over_direct"])
    result["ttft_direct_s"] = statistics.median(ttft_direct)
    result["ttft_service_s"] = statistics.median(ttft_service)
    result["ttft_overhead_ms"] = 1000 * (result["ttft_service_s"] - result["ttft_direct_s"])
    result.update(concurrency)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--per-round", type=int, default=8)
    args = parser.parse_args()
    res = asyncio.run(main(args.rounds, args.max_tokens, args.per_round))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generator_overhead.json").write_text(json.dumps(res, indent=2))
    print(f"llama.cpp direct : {res['direct_tokens_per_s']:7.1f} tokens/s (median of rounds)")
    print(f"through service  : {res['service_tokens_per_s']:7.1f} tokens/s")
    print(
        f"ratio            : {res['service_over_direct']:.3f} (overhead {res['overhead_pct']:.1f}%)"
    )
    print(
        f"time to first token: direct {1000 * res['ttft_direct_s']:.1f} ms, "
        f"GenerateStream {1000 * res['ttft_service_s']:.1f} ms"
    )
    for k in (1, 2, 4, 8):
        print(f"{k} concurrent requests: {res[f'tokens_per_s_at_{k}_concurrent']:.1f} tokens/s")
