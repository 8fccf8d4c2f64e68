"""When to stop labelling, on the seed study's data: the labels an annotation queue takes until
each model's harm rate is known to ±w, and how often the stopped interval misses the truth.

Data and units as in ``bench/few_labels.py`` (the students as the people, GPT-4o as the judge,
981 answers per model). Each replication labels one model's answers in a uniformly random order
(as the annotation app hands out a queue) and checks after every label, from 30 labels on:

* CS people:   ``bounded_confidence_sequence`` of people's labels, tuned for the target
               (what ``GetLabellingProgress`` stops on without a judge);
* CS assisted: ``assisted_confidence_sequence`` with GPT-4o's labels of every answer (with
               ``--stop-judge``);
* asymptotic:  the asymptotic ``confidence_sequence`` of people's labels (tightest near 200
               labels): narrower, but only asymptotically valid (it collapses on a run of
               identical labels: a low harm rate);
* peeking:     the 95% normal interval of people's labels recomputed after every label — the
               rule the issue forbids, for comparison.

Reported per model and target half-width: labels at the stop (median, 10th and 90th
percentiles; "never" when 981 labels do not reach it), the share of replications whose interval
at the stop misses the model's harm rate over its 981 answers, and the share whose sequence
leaves it at any time from 30 labels on (time-uniform miss). Writes bench/results/stopping.json.

    .venv/bin/python bench/stopping.py [--reps 1000] [--seed 20261128] [DATASET_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from few_labels import ROOT, Units, load_units

from harmeval_metrics.few_labels import (
    ConfidenceSequence,
    assisted_confidence_sequence,
    bounded_confidence_sequence,
    confidence_sequence,
    z_value,
)
from harmeval_metrics.labelling_progress import MIN_LABELS

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = (0.10, 0.075, 0.05)
RULES = ("CS people", "CS assisted", "asymptotic", "peeking")
T_OPT = 200
FloatArray = npt.NDArray[np.float64]


def peeking(y: FloatArray) -> ConfidenceSequence:
    """The normal interval recomputed after every label (not a valid stopping rule)."""
    t = np.arange(1, y.shape[-1] + 1, dtype=np.float64)
    mean = np.cumsum(y, axis=-1) / t
    var = np.maximum(np.cumsum(y**2, axis=-1) / t - mean**2, 0.0) * t / np.maximum(t - 1, 1)
    half = z_value(0.95) * np.sqrt(var / t)
    return ConfidenceSequence(estimate=mean, ci_low=mean - half, ci_high=mean + half)


def stream(
    units: Units, visit: npt.NDArray[np.intp], target: float
) -> dict[str, ConfidenceSequence]:
    """Every rule's sequence over one visiting order (the product's two tuned for `target`)."""
    y, yhat = units.y[visit], units.yhat[visit]
    return {
        "CS people": bounded_confidence_sequence(y, half_width=target),
        "CS assisted": assisted_confidence_sequence(
            y, yhat, float(units.yhat.mean()), half_width=target
        ),
        "asymptotic": confidence_sequence(y, t_opt=T_OPT),
        "peeking": peeking(y),
    }


def simulate(units: Units, reps: int, rng: np.random.Generator) -> dict[str, Any]:
    truth = units.truth
    stops: dict[str, dict[float, list[int]]] = {r: {w: [] for w in TARGETS} for r in RULES}
    missed = {r: {w: 0 for w in TARGETS} for r in RULES}
    ever_out = dict.fromkeys(RULES, 0)
    n = units.y.size
    for _ in range(reps):
        visit = rng.permutation(n)
        for w in TARGETS:
            for rule, cs in stream(units, visit, w).items():
                low, high = np.clip(cs.ci_low, 0, 1), np.clip(cs.ci_high, 0, 1)
                out = (low > truth) | (high < truth)
                if w == TARGETS[-1]:  # the time-uniform miss, once per order
                    ever_out[rule] += bool(out[MIN_LABELS - 1 :].any())
                half = (high - low) / 2
                ok = np.flatnonzero(half[MIN_LABELS - 1 :] <= w)
                if ok.size == 0:
                    stops[rule][w].append(n + 1)  # never within the data
                    continue
                t = int(ok[0]) + MIN_LABELS - 1
                stops[rule][w].append(t + 1)
                missed[rule][w] += bool(out[t])
    result: dict[str, Any] = {"units": n, "truth": truth, "judge_rate": float(units.yhat.mean())}
    for rule in RULES:
        result[rule] = {
            "time_uniform_miss": ever_out[rule] / reps,
            "targets": {
                str(w): {
                    "median": float(np.median(stops[rule][w])),
                    "q10": float(np.quantile(stops[rule][w], 0.1)),
                    "q90": float(np.quantile(stops[rule][w], 0.9)),
                    "never": float(np.mean(np.array(stops[rule][w]) > n)),
                    "miss_at_stop": missed[rule][w] / reps,
                }
                for w in TARGETS
            },
        }
    return result


def run(directory: Path, reps: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    models = {units.model: simulate(units, reps, rng) for units in load_units(directory)}
    return {
        "dataset": str(directory),
        "reps": reps,
        "seed": seed,
        "min_labels": MIN_LABELS,
        "t_opt": T_OPT,
        "targets": list(TARGETS),
        "models": models,
        "seconds": time.perf_counter() - started,
    }


def print_table(res: dict[str, Any]) -> None:
    print(
        f"Labels until the 95% interval is ±w, checked after every label from "
        f"{res['min_labels']} on ({res['reps']} random orders per model; median [q10, q90]; "
        "miss = the interval at the stop misses the rate)"
    )
    head = "".join(f"{'±' + str(w):>26}" for w in res["targets"])
    print(f"{'model':<18}{'rule':<12}{head}{'ever out':>10}")
    for model, m in res["models"].items():
        for i, rule in enumerate(RULES):
            cells = ""
            for w in res["targets"]:
                c = m[rule]["targets"][str(w)]
                median = "never" if c["never"] >= 0.5 else f"{c['median']:.0f}"
                spread = f"[{c['q10']:.0f}, {c['q90']:.0f}]"
                cells += f"{median:>6} {spread:>11} {c['miss_at_stop']:>6.1%}"
            first = model if i == 0 else ""
            print(f"{first:<18}{rule:<12}{cells}{m[rule]['time_uniform_miss']:>10.1%}")
    print(f"simulations {res['seconds']:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "directory", nargs="?", type=Path, default=ROOT.parent / "shared/datasets/llm-harm"
    )
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args()
    res = run(args.directory, args.reps, args.seed)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stopping.json").write_text(json.dumps(res, indent=2))
    print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
