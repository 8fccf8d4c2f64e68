"""The vLLM backend on a real GPU: continuous batching of concurrent requests, streaming,
cancellation. Skipped here (no GPU, no vLLM); run where both exist:

    HARMEVAL_VLLM_TEST_MODEL=/models/Qwen2.5-0.5B .venv/bin/python -m pytest -m gpu
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time

import pytest

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import ModelPrompt, StreamState

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
    pytest.mark.skipif(
        not os.environ.get("HARMEVAL_VLLM_TEST_MODEL"),
        reason="set HARMEVAL_VLLM_TEST_MODEL to a local model directory (no downloads here)",
    ),
]


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    from harmeval_generator.backends.vllm import VllmEngine

    e = VllmEngine(
        "test",
        os.environ["HARMEVAL_VLLM_TEST_MODEL"],
        max_model_len=2048,
        gpu_memory_utilization=0.5,
    )
    yield e
    asyncio.run(e.close())


async def test_concurrent_requests_are_batched(engine) -> None:  # type: ignore[no-untyped-def]
    params = GenerationParams(temperature=0.0, max_tokens=64)
    one = time.perf_counter()
    await engine.complete(ModelPrompt("Write a poem about the sea."), params)
    single = time.perf_counter() - one
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            engine.complete(ModelPrompt(f"Write a poem about the number {i}."), params)
            for i in range(32)
        )
    )
    batched = time.perf_counter() - started
    assert all(r.completion_tokens > 0 for r in results)
    # 32 requests one at a time would take ~32x a single one; batched they overlap.
    assert batched < 8 * single


async def test_stream_and_cancel(engine) -> None:  # type: ignore[no-untyped-def]
    state = StreamState()
    pieces = [
        t
        async for t in engine.stream(
            ModelPrompt("Count to ten."), GenerationParams(max_tokens=32), state
        )
    ]
    assert pieces and state.completion_tokens > 0
    task = asyncio.create_task(
        engine.complete(
            ModelPrompt("Tell a long story."), GenerationParams(temperature=0.8, max_tokens=1500)
        )
    )
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
