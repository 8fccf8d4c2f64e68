"""The embedded LLM judge, measured: which embedded model the local stack serves as its judge,
and whether its replies can be read, as verdict lines or as JSON under the protocol's schema.

A sub-billion-parameter judge is a smoke-test stand-in for a large LLM: it exercises every part
of the judge path (prompt, fences, request, parser, unscorable reasons, storage) on a laptop.
These figures choose the stand-in; they say nothing good about trusting one.

Each candidate (Gemma 3 270M, a base model behind llama-cpp-python's "gemma" chat format;
SmolLM2-135M-Instruct, behind its own chat template) runs in llama-cpp-python's real
OpenAI-compatible server, started with the command `harmeval up` uses, and is measured on:

1. **The default study, a sample.** Every 48/N-th built-in prompt (the four harm categories in
   turn) is answered by the default study's four small models (examples/default-study.yaml:
   Gemma and SmolLM2, greedy and sampled, 64 tokens) in process, through the generator's
   llama.cpp engine. Each prompt's four answers are ranked by the listwise judge in each output
   mode (`none`: the seed study's verdict lines; `json_object`: one JSON object, the schema sent
   as llama-cpp-python's server takes it). Figures: unscorable share and its reasons, the share
   of scored answers called harmful (a judge calling nothing or everything harmful is
   readable, and useless), seconds per call.
2. **HarmMetric Eval v2, a subset.** Every 274/M-th prompt of dataset_v2.jsonl with its 12
   scored responses, judged by the pointwise binary judge in JSON mode; the benchmark's score
   (services/metrics harmmetric_score, what `harmeval benchmark harmmetric` reports), its
   unscorable share and how many distinct values the judge gave (1: a constant judge).

Writes bench/results/embedded_judge.json. About 5 minutes on 2 cores with the defaults.

    .venv/bin/python bench/embedded_judge.py [--prompts 8] [--hm-prompts 3]
        [--candidates gemma3-270m,smollm2-135m-instruct] [--modes none,json_object]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import socket
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from harmeval.params import GenerationParams
from harmeval.verdicts import OK
from harmeval_client import embedded_models
from harmeval_client.cli.processes import components
from harmeval_client.embedded_models import MODELS
from harmeval_client.importers.harmmetric import load_harmmetric
from harmeval_client.prompts import load_builtin_prompts
from harmeval_client.settings import ClientSettings
from harmeval_generator.backends.base import ModelPrompt
from harmeval_generator.backends.llamacpp import LlamaCppEngine
from harmeval_judge.families.llm import LlmListwiseJudge, LlmPointwiseJudge
from harmeval_judge.judges import JudgeInput, LlmSettings
from harmeval_judge.limits import Budget, Prices
from harmeval_judge.llm_client import LlmEndpoint
from harmeval_judge.settings import JudgeSettings
from harmeval_metrics.harmmetric import harmmetric_score

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STUDY = ROOT / "examples" / "default-study.yaml"
HARMMETRIC = ROOT.parent / "shared" / "datasets" / "harmmetric-eval" / "dataset_v2.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def every(items: list[Any], n: int) -> list[Any]:
    """n items spread evenly over the list (its order: the built-in set's categories in turn)."""
    step = max(1, len(items) // n)
    return items[::step][:n]


async def default_study_answers(
    data_dir: Path, n_prompts: int
) -> tuple[list[tuple[str, list[str]]], dict[str, float]]:
    """(prompt, the four small models' answers) for a sample of the default study's prompts,
    made as the generator makes them; and tokens/s per small model."""
    study = yaml.safe_load(STUDY.read_text())
    prompts = every(load_builtin_prompts(), n_prompts)
    answers: dict[str, list[str]] = {p.text: [] for p in prompts}
    rates: dict[str, float] = {}
    for served in dict.fromkeys(m["model"] for m in study["models"]):
        model = MODELS[served]
        engine = LlamaCppEngine(
            served,
            embedded_models.fetch(model, data_dir),
            n_ctx=2048,
            prompt_format=model.prompt_format,
        )
        try:
            for small in (m for m in study["models"] if m["model"] == served):
                params = GenerationParams(
                    temperature=float(small["temperature"]),
                    top_p=float(small.get("top_p", 1.0)),
                    max_tokens=int(small["max_tokens"]),
                    seed=int(small.get("seed", 0)),
                )
                started, tokens = time.perf_counter(), 0
                for p in prompts:
                    done = await engine.complete(ModelPrompt(prompt=p.text), params)
                    answers[p.text].append(done.text)
                    tokens += done.completion_tokens
                rates[small["name"]] = tokens / (time.perf_counter() - started)
        finally:
            await engine.close()
    return list(answers.items()), rates


@contextmanager
def judge_server(name: str, path: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server over `path`, as `harmeval up` starts it."""
    settings = ClientSettings(llm_server_port=free_port(), llm_server_model=name)
    [server] = [c for c in components(settings, path) if c.name == "llm-server"]
    proc = subprocess.Popen(server.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(server.address, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server for {name} did not start") from None
                time.sleep(0.3)
        yield server.address.removesuffix("/models")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def listwise_figures(
    llm: LlmSettings, mode: str, items: list[tuple[str, list[str]]]
) -> dict[str, Any]:
    judge = LlmListwiseJudge("bench-listwise", llm, structured_output=mode)
    reasons: collections.Counter[str] = collections.Counter()
    seconds: list[float] = []
    tokens: list[int] = []
    harmful = scored = 0
    for prompt, answers in items:
        started = time.perf_counter()
        verdicts = await judge.judge(JudgeInput(prompt, answers))
        seconds.append(time.perf_counter() - started)
        tokens.append(sum(v.completion_tokens for v in verdicts))
        for v in verdicts:
            reasons["ok" if v.status == OK else v.reason] += 1
            if v.status == OK:
                scored += 1
                harmful += bool(v.harmful)
    total = sum(reasons.values())
    return {
        "verdicts": total,
        "unscorable_share": 1 - reasons["ok"] / total,
        "reasons": dict(reasons.most_common()),
        "harmful_share_of_scored": harmful / scored if scored else None,
        "seconds_per_call": statistics.fmean(seconds),
        "reply_tokens_per_call": statistics.fmean(tokens),
    }


async def harmmetric_figures(llm: LlmSettings, n_prompts: int) -> dict[str, Any]:
    bench = load_harmmetric(HARMMETRIC)
    chosen = {p.prompt_id: p.text for p in every(bench.prompts, n_prompts)}
    judge = LlmPointwiseJudge("bench-binary", llm, "binary", structured_output="json_object")
    scores: dict[int, float | None] = {}
    started = time.perf_counter()
    for r in (r for r in bench.responses if r.prompt_id in chosen):
        [v] = await judge.judge(JudgeInput(chosen[r.prompt_id], [r.text]))
        scores[r.response_id] = v.value if v.status == OK else None
    seconds = time.perf_counter() - started
    score = harmmetric_score(scores)
    values = [v for v in scores.values() if v is not None]
    return {
        "prompts": len(chosen),
        "responses": len(scores),
        "score_v2": score.score_v2,
        "score_v1": score.score_v1,
        "fine_grained": score.fine_grained,
        "unscorable_share": 1 - len(values) / len(scores),
        "distinct_values": len(set(values)),
        "harmful_share": sum(v > 0.5 for v in values) / len(values) if values else None,
        "seconds_per_call": seconds / len(scores),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = ClientSettings().data_dir
    started = time.perf_counter()
    items, rates = await default_study_answers(data_dir, args.prompts)
    print(f"default study sample: {len(items)} prompts x {len(items[0][1])} small models")
    print("  tokens/s: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()))
    out: dict[str, Any] = {
        "sample_prompts": len(items),
        "generation_tokens_per_s": rates,
        "judges": {},
    }
    max_tokens = JudgeSettings().judge_llm_max_tokens
    for name in args.candidates.split(","):
        path = embedded_models.fetch(MODELS[name], data_dir)
        with judge_server(name, path) as base_url:
            endpoint = LlmEndpoint(
                base_url,
                "sk-no-key-needed",
                timeout_s=300,
                deadline_s=600,
                max_attempts=1,
                budget=Budget(None),
            )
            llm = LlmSettings(endpoint=endpoint, model=name, prices=Prices(), max_tokens=max_tokens)
            try:
                figures: dict[str, Any] = {"listwise": {}}
                for mode in args.modes.split(","):
                    lw = await listwise_figures(llm, mode, items)
                    figures["listwise"][mode] = lw
                    print(
                        f"{name:>22} listwise {mode:<11} unscorable {lw['unscorable_share']:6.1%}"
                        f" of {lw['verdicts']}  harmful {lw['harmful_share_of_scored'] or 0:5.1%}"
                        f" of scored  {lw['seconds_per_call']:.1f} s/call"
                        f" ({lw['reply_tokens_per_call']:.0f} reply tokens)  {lw['reasons']}",
                        flush=True,
                    )
                if args.hm_prompts:
                    hm = await harmmetric_figures(llm, args.hm_prompts)
                    figures["harmmetric_binary_json"] = hm
                    print(
                        f"{name:>22} HarmMetric v2 {hm['score_v2']:.3f} (v1 {hm['score_v1']:.3f})"
                        f" on {hm['prompts']} prompts / {hm['responses']} responses;"
                        f" unscorable {hm['unscorable_share']:.1%}, distinct values"
                        f" {hm['distinct_values']}, harmful {hm['harmful_share'] or 0:.0%},"
                        f" {hm['seconds_per_call']:.1f} s/call",
                        flush=True,
                    )
            finally:
                await endpoint.close()
        out["judges"][name] = figures
    out["seconds"] = time.perf_counter() - started
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="default-study prompts (of 48)")
    parser.add_argument("--hm-prompts", type=int, default=3, help="HarmMetric prompts (0: none)")
    parser.add_argument("--candidates", default=",".join(MODELS))
    parser.add_argument("--modes", default="none,json_object")
    args = parser.parse_args()
    result = asyncio.run(main(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embedded_judge.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['seconds']:.0f} s; wrote {RESULTS / 'embedded_judge.json'}")
