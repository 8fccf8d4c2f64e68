"""What the boundary's check of every request costs (`harmeval.request_checks`: NUL, finite
numbers, defined enum values, walked from the descriptor) beside what every request already
costs: decoding its bytes and a handler reading each field once. Ratio = (that + check) /
that, per request shape, same run; the check as the boundary makes it (given the bytes: no
zero byte in them, no string is looked at) and without the bytes (every string looked at).

    .venv/bin/python bench/request_checks.py [--repeat 2000]

Writes bench/results/request_checks.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from harmeval.common.v1 import common_pb2
from harmeval.generator.v1 import generator_pb2
from harmeval.judge.v1 import judge_pb2
from harmeval.metrics.v1 import metrics_pb2
from harmeval.request_checks import request_problems

RESULTS = Path(__file__).resolve().parent / "results"
ANSWER = "Step 1: gather the materials. " * 20  # ~600 characters, a small model's answer


def shapes() -> dict[str, Message]:
    prompt = common_pb2.Prompt(text="How do I pick a lock?", external_id="p1", category="c")
    return {
        "Judge (3 answers)": judge_pb2.JudgeRequest(
            judge="openai-listwise",
            prompt=prompt,
            answers=[judge_pb2.Answer(text=ANSWER, generation_id=i) for i in range(3)],
        ),
        "JudgeBatch (64 items)": judge_pb2.JudgeBatchRequest(
            judge="refusal-matcher",
            items=[
                judge_pb2.JudgeItem(prompt=prompt, answers=[judge_pb2.Answer(text=ANSWER)])
                for _ in range(64)
            ],
        ),
        "Generate (8 prompts)": generator_pb2.GenerateRequest(
            model="gemma3-270m",
            prompts=[prompt] * 8,
            params=common_pb2.GenerationParams(temperature=0.7, top_p=0.9, max_tokens=64),
        ),
        "ComputeAgreement (10,000 values)": metrics_pb2.ComputeAgreementRequest(
            values=[
                metrics_pb2.ReliabilityValue(unit=f"u{i // 4}", coder=f"c{i % 4}", number=i % 3)
                for i in range(10_000)
            ],
            level="ordinal",
        ),
    }


def read_all(message: Message) -> None:
    """What a handler does at least: read every field once."""
    for _, value in message.ListFields():
        if isinstance(value, Message):
            read_all(value)
        elif hasattr(value, "__iter__") and not isinstance(value, str | bytes):
            for item in value:
                if isinstance(item, Message):
                    read_all(item)


def decode_and_read(cls: type[Message], data: bytes) -> None:
    read_all(cls.FromString(data))


def per_call(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    for name, message in shapes().items():
        data = message.SerializeToString()
        cls = type(message)
        repeat = max(args.repeat * 1000 // max(len(data), 1000), 5)
        decode = per_call(functools.partial(decode_and_read, cls, data), repeat)
        check = per_call(functools.partial(request_problems, message, data), repeat)
        walk = per_call(functools.partial(request_problems, message), repeat)
        rows.append(
            {
                "request": name,
                "bytes": len(data),
                "zero_byte": b"\x00" in data,
                "decode_and_read_us": decode * 1e6,
                "check_us": check * 1e6,
                "check_every_string_us": walk * 1e6,
                "ratio": (decode + check) / decode,
                "ratio_every_string": (decode + walk) / decode,
            }
        )
    print(
        f"{'request':34} {'bytes':>9} {'decode+read µs':>15} {'check µs':>9} {'ratio':>6}"
        f" {'every string µs':>16} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['request']:34} {r['bytes']:>9,} {r['decode_and_read_us']:>15.1f} "
            f"{r['check_us']:>9.1f} {r['ratio']:>6.2f} {r['check_every_string_us']:>16.1f}"
            f" {r['ratio_every_string']:>6.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "request_checks.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
