"""Re-judging stored answers with an unchanged judge: backend calls and items/s, first run vs
fully cached re-run, through the judge service.

The fixed-delay OpenAI-compatible server and the judge service run as in
bench/judge_service_throughput.py; N answers are stored as generations in Postgres first (as
the generator stores them), then judged twice with one JudgeBatch each. The LLM server's own
request count is the number of backend calls; the re-run must make none and return every
verdict from Postgres. Writes bench/results/judge_cache_rerun.json.

    .venv/bin/python bench/judge_cache_rerun.py [--items 2048] [--delay-ms 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from judge_service_throughput import RESULTS, JudgeStack, judge_stack

from harmeval.common.v1 import common_pb2
from harmeval.db import open_database
from harmeval.judge.v1 import judge_pb2
from harmeval.params import GenerationParams
from harmeval.settings import CommonSettings
from harmeval_generator.store import SCHEMA, GeneratorStore, NewGeneration, PromptIn


async def store_answers(db_url: str, tmp: Path, n: int) -> list[judge_pb2.JudgeItem]:
    settings = CommonSettings(database_url=db_url, data_dir=tmp)
    # Answers are stored as the generator stores them (its store, its schema).
    async with open_database(settings, SCHEMA) as pool:
        repo = GeneratorStore(pool)
        prompts = [
            PromptIn(text=f"bench prompt {i}", category="negative_influence") for i in range(n)
        ]
        prompt_ids = await repo.upsert_prompts(prompts)
        model_id = await repo.register_served_model("bench-model", "bench", {}, {})
        items = []
        for i, prompt_id in enumerate(prompt_ids):
            text = f"bench answer {i}"
            g = await repo.insert_generation(
                NewGeneration(
                    prompt_id=prompt_id,
                    model_id=model_id,
                    params=GenerationParams(),
                    text=text,
                    prompt_tokens=5,
                    completion_tokens=5,
                    latency_seconds=0.1,
                    finish_reason="stop",
                )
            )
            items.append(
                judge_pb2.JudgeItem(
                    prompt=common_pb2.Prompt(text=prompts[i].text),
                    answers=[judge_pb2.Answer(generation_id=g.id, text=text)],
                )
            )
        return items


async def judge_all(js: JudgeStack, items: list[judge_pb2.JudgeItem]) -> dict[str, Any]:
    calls_before = await js.backend_requests()
    started = time.perf_counter()
    request = judge_pb2.JudgeBatchRequest(judge=js.judge, items=items)
    replies = [r async for r in js.stub.JudgeBatch(request)]
    elapsed = time.perf_counter() - started
    judgments = [r.judgments[0] for r in replies]
    assert len(judgments) == len(items)
    return {
        "seconds": elapsed,
        "items_per_s": len(items) / elapsed,
        "backend_calls": await js.backend_requests() - calls_before,
        "cached": sum(j.cached for j in judgments),
        "ok": sum(j.status == common_pb2.JUDGMENT_STATUS_OK for j in judgments),
    }


async def main(n: int, delay_s: float) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    with tempfile.TemporaryDirectory(prefix="hc-", dir="/tmp") as tmp:
        pg = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            items = await store_answers(pg.get_uri(), Path(tmp), n)
            async with judge_stack(256, delay_s, "openai-sdk", pg.get_uri(), Path(tmp)) as js:
                first = await judge_all(js, items)
                rerun = await judge_all(js, items)
        finally:
            pg.cleanup()
    return {
        "items": n,
        "llm_delay_s": delay_s,
        "concurrency": 256,
        "first_run": first,
        "cached_rerun": rerun,
        "rerun_speedup": rerun["items_per_s"] / first["items_per_s"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2048)
    parser.add_argument("--delay-ms", type=float, default=500.0)
    args = parser.parse_args()
    res = asyncio.run(main(args.items, args.delay_ms / 1000))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge_cache_rerun.json").write_text(json.dumps(res, indent=2))
    for label in ("first_run", "cached_rerun"):
        r = res[label]
        print(
            f"{label:<13} {r['items_per_s']:8.1f} items/s  backend calls {r['backend_calls']:>5}"
            f"  cached {r['cached']:>5}/{res['items']}  ok {r['ok']:>5}"
        )
    print(f"re-run speed-up {res['rerun_speedup']:.1f}x")
