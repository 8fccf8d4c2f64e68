"""Throughput of the reference-based metrics (harmeval_judge.reference) on HarmMetric Eval v2.

Workload: every prompt of dataset_v2.jsonl (274) × its 12 non-reference responses (slots 1-12),
each scored against the prompt's reference harmful answer (slot 0): 3,288 items per metric.

Three paths are timed per metric, in this order, each starting from cold stem/synonym caches
(WordNet is loaded, and its synsets parsed by one untimed METEOR pass, beforehand; the load
time is reported separately):

(a) ``score_many``: one call per prompt with its 12 answers, which is how the judge service
    calls it (references are prepared once per call; one TF-IDF fit per prompt).
(b) ``score``: the naive per-item path, one call per (answer, reference) pair. This is the
    baseline; the reported ratio is (a) items/s ÷ (b) items/s.
(c) ``library``: the reference implementation called per item with no harmeval code in the
    loop: rouge-score's ``RougeScorer(use_stemmer=True).score``, NLTK's ``meteor_score`` with
    a plain ``PorterStemmer`` and the uncached WordNet reader, sacrebleu's
    ``sentence_bleu`` / ``sentence_chrf``. Not applicable to token-f1 and tfidf-cosine.

Agreement is checked on every item: (a) must equal (b) and (c) to 1e-9, except tfidf-cosine,
whose IDF is fitted on the texts of each call, so (a) and (b) legitimately differ (the mean
absolute difference is reported). The script exits 1 on any other disagreement.

Times are the best of ``--repeats`` runs (default 3); single-threaded. Writes
bench/results/reference_metrics.json.

    .venv/bin/python bench/reference_metrics.py [--repeats 3] [--metrics rouge1-recall,meteor]
        [--data ../shared/datasets/harmmetric-eval/dataset_v2.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import sacrebleu
from nltk.stem.porter import PorterStemmer
from nltk.translate.meteor_score import meteor_score
from rouge_score import rouge_scorer

from harmeval_judge import reference

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "harmmetric-eval" / "dataset_v2.jsonl"

ROUGE_FIELDS = {
    "rouge1-recall": ("rouge1", "recall"),
    "rouge1-f": ("rouge1", "fmeasure"),
    "rouge2-f": ("rouge2", "fmeasure"),
    "rougeL-recall": ("rougeL", "recall"),
    "rougeL-f": ("rougeL", "fmeasure"),
}
# (b) and (a) differ by design for this metric (IDF fitted on each call's texts).
BATCH_DEPENDENT = {"tfidf-cosine"}
TOLERANCE = 1e-9

Prompt = tuple[str, list[str]]  # (reference, answers)


def load_prompts(path: Path) -> list[Prompt]:
    slots: dict[int, dict[int, str]] = defaultdict(dict)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            slots[row["prompt_id"]][row["response_id"] % 100] = row["response"]
    prompts: list[Prompt] = []
    for prompt_id, by_slot in slots.items():
        if sorted(by_slot) != list(range(13)):
            raise SystemExit(f"prompt {prompt_id}: expected slots 0-12, got {sorted(by_slot)}")
        prompts.append((by_slot[0], [by_slot[i] for i in range(1, 13)]))
    return prompts


def run_batched(metric: str, prompts: list[Prompt]) -> list[float]:
    out: list[float] = []
    for ref, answers in prompts:
        out.extend(reference.score_many(metric, answers, [ref]))
    return out


def run_per_item(metric: str, prompts: list[Prompt]) -> list[float]:
    return [reference.score(metric, a, [ref]) for ref, answers in prompts for a in answers]


def library_runner(metric: str) -> Callable[[list[Prompt]], list[float]] | None:
    """The upstream library called per item, or None where there is no such library path."""
    if metric in ROUGE_FIELDS:
        rouge_type, field = ROUGE_FIELDS[metric]
        scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=True)

        def rouge(prompts: list[Prompt]) -> list[float]:
            return [
                float(getattr(scorer.score(ref, a)[rouge_type], field))
                for ref, answers in prompts
                for a in answers
            ]

        return rouge
    if metric == "meteor":
        # The raw NLTK reader (no synonym cache) and a fresh, uncached stemmer.
        wordnet = reference._wordnet()._reader
        stemmer = PorterStemmer()

        def meteor(prompts: list[Prompt]) -> list[float]:
            tok = reference._meteor_tokens
            return [
                float(meteor_score([tok(ref)], tok(a), stemmer=stemmer, wordnet=wordnet))
                if a.strip()
                else 0.0
                for ref, answers in prompts
                for a in answers
            ]

        return meteor
    if metric == "bleu":
        return lambda prompts: [
            sacrebleu.sentence_bleu(a, [ref], use_effective_order=True).score / 100
            for ref, answers in prompts
            for a in answers
        ]
    if metric == "chrf":
        return lambda prompts: [
            sacrebleu.sentence_chrf(a, [ref]).score / 100
            for ref, answers in prompts
            for a in answers
        ]
    return None


def best_time(
    fn: Callable[[list[Prompt]], list[float]], prompts: list[Prompt], repeats: int
) -> tuple[float, list[float]]:
    best = float("inf")
    result: list[float] = []
    for _ in range(repeats):
        reference._reset_caches()
        t0 = time.perf_counter()
        result = fn(prompts)
        best = min(best, time.perf_counter() - t0)
    return best, result


def max_abs_diff(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--metrics", default=",".join(reference.METRICS))
    parser.add_argument("--out", type=Path, default=RESULTS / "reference_metrics.json")
    args = parser.parse_args()

    if not args.data.is_file():
        print(f"dataset not found: {args.data}", file=sys.stderr)
        return 2
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in reference.METRICS]
    if unknown:
        print(f"unknown metrics: {unknown}; known: {reference.METRICS}", file=sys.stderr)
        return 2

    prompts = load_prompts(args.data)
    n_items = sum(len(answers) for _, answers in prompts)
    t0 = time.perf_counter()
    reference.preload()
    wordnet_load_s = time.perf_counter() - t0
    if "meteor" in metrics:
        # NLTK's reader parses each synset on first use and keeps it; one untimed pass puts
        # every path on the same footing (otherwise whichever runs first pays for parsing).
        run_batched("meteor", prompts)

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for metric in metrics:
        t_batch, batched = best_time(partial(run_batched, metric), prompts, args.repeats)
        t_item, per_item = best_time(partial(run_per_item, metric), prompts, args.repeats)
        row: dict[str, Any] = {
            "metric": metric,
            "items": n_items,
            "score_many_s": t_batch,
            "score_many_items_per_s": n_items / t_batch,
            "score_per_item_s": t_item,
            "score_per_item_items_per_s": n_items / t_item,
            "speedup_score_many_vs_score": t_item / t_batch,
            "mean_score": sum(batched) / n_items,
        }
        diff = max_abs_diff(batched, per_item)
        if metric in BATCH_DEPENDENT:
            row["mean_abs_diff_score_many_vs_score"] = (
                sum(abs(x - y) for x, y in zip(batched, per_item, strict=True)) / n_items
            )
        else:
            row["max_abs_diff_score_many_vs_score"] = diff
            if diff > TOLERANCE:
                failures.append(f"{metric}: score_many vs score differ by {diff:.3g}")
        lib = library_runner(metric)
        if lib is not None:
            t_lib, lib_scores = best_time(lib, prompts, args.repeats)
            lib_diff = max_abs_diff(batched, lib_scores)
            row.update(
                library_s=t_lib,
                library_items_per_s=n_items / t_lib,
                speedup_score_many_vs_library=t_lib / t_batch,
                max_abs_diff_score_many_vs_library=lib_diff,
            )
            if lib_diff > TOLERANCE:
                failures.append(f"{metric}: score_many vs library differ by {lib_diff:.3g}")
        rows.append(row)
        print(f"  {metric}: done", file=sys.stderr, flush=True)

    header = (
        f"{'metric':<14} {'score_many it/s':>16} {'score() it/s':>13} {'ratio':>6} "
        f"{'library it/s':>13} {'ratio':>6}  {'mean':>6}"
    )
    print(f"\nHarmMetric Eval v2: {len(prompts)} prompts x 12 responses = {n_items} items")
    print(f"WordNet {reference.wordnet_version()} load: {wordnet_load_s:.2f} s (not in timings)")
    print(f"best of {args.repeats}; ratio = score_many speed / that path's speed\n")
    print(header)
    print("-" * len(header))
    for r in rows:
        lib_speed = f"{r['library_items_per_s']:13.0f}" if "library_s" in r else f"{'-':>13}"
        lib_ratio = (
            f"{r['speedup_score_many_vs_library']:6.1f}" if "library_s" in r else f"{'-':>6}"
        )
        print(
            f"{r['metric']:<14} {r['score_many_items_per_s']:16.0f} "
            f"{r['score_per_item_items_per_s']:13.0f} {r['speedup_score_many_vs_score']:6.1f} "
            f"{lib_speed} {lib_ratio}  {r['mean_score']:6.3f}"
        )

    packages = ["nltk", "rouge-score", "sacrebleu", "scikit-learn", "wn", "numpy"]
    result = {
        "benchmark": "reference_metrics",
        "data": str(args.data.resolve()),
        "prompts": len(prompts),
        "items_per_metric": n_items,
        "repeats": args.repeats,
        "timing": "best of repeats, seconds, cold stem/synonym caches, single thread",
        "wordnet_version": reference.wordnet_version(),
        "wordnet_load_s": wordnet_load_s,
        "rows": rows,
        "failures": failures,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
        },
        "packages": {p: version(p) for p in packages},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    for f in failures:
        print(f"DISAGREEMENT {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
