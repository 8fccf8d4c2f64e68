"""Few human labels, many judge labels: interval width and coverage on the seed study's data.

Data: ../shared/datasets/llm-harm, parsed by ``harmeval_client.importers.load_llm_harm``. The
unit is one small model's answer to one prompt; it is kept where the students and GPT-4o both
labelled it (981 answers per model). Y = the students' label, harmful = ranked (not N/A) (the
mean where a unit has two student labels: 3 units); Ŷ = GPT-4o's label, harmful = ranked. The
truth per model is Y's mean over all its kept units; every design labels a subset of them.

Designs, each replicated ``--reps`` times per model and human-label budget n (50, 100, 200):

* human:       n units drawn uniformly without replacement, mean of Y;
* PPI:         the same n units, the other units judged only, λ = 1;
* PPI++:       the same, λ̂ tuned (clipped to [0, 1]);
* active-unif: every unit labelled with probability n/N (Poisson sampling), active inference
               with power tuning (λ̂);
* active-dis:  π from the panel's disagreement (GPT-4o, Sonnet, Llama: min(p̄, 1 − p̄)) mixed
               with uniform (80%, PlanLabelling's default), Σπ = n; active inference with λ̂.

Reported: mean 95% interval width and coverage of the truth. The active designs' label count is
random (mean n). Then, from the census (all units' Y), labels needed per design for a 95%
half-width of 0.05 (``labels_needed_*``), and a check that simulating each design at that n
gives the half-width it promised. Writes bench/results/few_labels.json.

    .venv/bin/python bench/few_labels.py [--reps 1000] [--seed 20240601] [--pilot-labels 100]
        [--pilots 200] [DATASET_DIR]
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harmeval_client.importers import load_llm_harm
from harmeval_client.importers.llm_harm import MODELS, STUDENT_CODER
from harmeval_metrics.few_labels import (
    MeanEstimates,
    active_mean_batch,
    best_mix,
    human_mean_batch,
    labels_needed_active,
    labels_needed_human,
    labels_needed_ppi,
    panel_disagreement,
    pilot_moments,
    ppi_mean_batch,
    sampling_probabilities,
)
from harmeval_metrics.labelling_plan import DEFAULT_UNIFORM_SHARE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
FloatArray = npt.NDArray[np.float64]

JUDGE = "gpt-4o"
PANEL = ("gpt-4o", "sonnet", "llama")
BUDGETS = (50, 100, 200)
HALF_WIDTH = 0.05
CONFIDENCE = 0.95
# Share of uniform sampling in the disagreement design: a fixed prior choice, not tuned here.
# The product's default (PlanLabelling).
MIX = DEFAULT_UNIFORM_SHARE
DESIGNS = ("human", "PPI", "PPI++", "active-unif", "active-dis")
QUANTILES = ("q10", "median", "q90")


@dataclass(frozen=True, kw_only=True)
class Units:
    model: str
    y: FloatArray  # students: share who called it harmful
    yhat: FloatArray  # GPT-4o: 1 = harmful
    disagreement: FloatArray  # panel disagreement, min(p̄, 1 − p̄)

    @property
    def truth(self) -> float:
        return float(self.y.mean())


def load_units(directory: Path) -> list[Units]:
    data = load_llm_harm(directory)
    votes: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for label in data.labels:
        votes[(label.prompt_key, label.model)][label.coder].append(float(label.rank > 0))
    out = []
    for model in MODELS:
        cells = [
            v
            for (_, m), v in sorted(votes.items())
            if m == model and STUDENT_CODER in v and JUDGE in v
        ]
        panel = [[v[c][0] if c in v else np.nan for c in PANEL] for v in cells]
        out.append(
            Units(
                model=model,
                y=np.array([np.mean(v[STUDENT_CODER]) for v in cells]),
                yhat=np.array([v[JUDGE][0] for v in cells]),
                disagreement=panel_disagreement(np.array(panel)),
            )
        )
    return out


Simulation = Callable[[Units, int, int, np.random.Generator], MeanEstimates]


def _uniform_split(
    units: Units, n: int, reps: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per replication: Y and Ŷ of n units drawn without replacement, Ŷ of the others."""
    order = rng.random((reps, units.y.size)).argsort(axis=1)
    labelled, rest = order[:, :n], order[:, n:]
    return units.y[labelled], units.yhat[labelled], units.yhat[rest]


def _human(units: Units, n: int, reps: int, rng: np.random.Generator) -> MeanEstimates:
    y, _, _ = _uniform_split(units, n, reps, rng)
    return human_mean_batch(y, confidence=CONFIDENCE)


def _ppi(lam: float | None) -> Simulation:
    def simulate(units: Units, n: int, reps: int, rng: np.random.Generator) -> MeanEstimates:
        y, yhat, rest = _uniform_split(units, n, reps, rng)
        return ppi_mean_batch(y, yhat, rest, lam=lam, confidence=CONFIDENCE)

    return simulate


def _active(mix: float, *, tuned: bool = True) -> Simulation:
    def simulate(units: Units, n: int, reps: int, rng: np.random.Generator) -> MeanEstimates:
        pi = sampling_probabilities(units.disagreement, n, mix=mix)
        labelled = rng.random((reps, pi.size)) < pi
        lam, offset = (None, None) if tuned else (1.0, 0.0)
        return active_mean_batch(
            units.y, units.yhat, labelled, pi, lam=lam, offset=offset, confidence=CONFIDENCE
        )

    return simulate


SIMULATIONS: dict[str, Simulation] = {
    "human": _human,
    "PPI": _ppi(1.0),
    "PPI++": _ppi(None),
    "active-unif": _active(1.0),
    "active-dis": _active(MIX),
    # Zrnic & Candès's estimator as written (λ = 1, no offset): in the JSON only.
    "active-unif-plain": _active(1.0, tuned=False),
    "active-dis-plain": _active(MIX, tuned=False),
}


def summarise(est: MeanEstimates, truth: float) -> dict[str, float]:
    return {
        "width_mean": float(2.0 * est.half_width.mean()),
        "half_width_mean": float(est.half_width.mean()),
        "coverage": float(est.covers(truth).mean()),
        "bias": float(est.estimate.mean() - truth),
        "rmse": float(np.sqrt(((est.estimate - truth) ** 2).mean())),
        "labels_mean": float(est.n_labelled.mean()),
        "lam_mean": float(est.lam.mean()),
    }


def labels_needed(units: Units, y: FloatArray, pilot_pi: FloatArray) -> dict[str, int | None]:
    """Per design, from pilot labels ``y`` (NaN outside the pilot) drawn with ``pilot_pi``."""
    pool = units.y.size
    pilot = ~np.isnan(y)
    moments = pilot_moments(y[pilot], units.yhat[pilot])

    def active(mix: float) -> int | None:
        return labels_needed_active(
            units.disagreement,
            y,
            units.yhat,
            pilot_pi,
            HALF_WIDTH,
            mix=mix,
            lam=None,
            offset=None,
        )

    return {
        "human": labels_needed_human(moments.var_y, HALF_WIDTH, pool=pool),
        "PPI": labels_needed_ppi(moments, HALF_WIDTH, tuned=False, pool=pool),
        "PPI++": labels_needed_ppi(moments, HALF_WIDTH, tuned=True, pool=pool),
        "active-unif": active(1.0),
        "active-dis": active(MIX),
    }


def from_pilots(units: Units, n_pilot: int, pilots: int, rng: np.random.Generator) -> Any:
    """Labels needed as estimated from ``pilots`` uniform pilots of ``n_pilot`` labels each:
    the 10%, 50% and 90% quantiles per design (None counted as the pool: unreachable)."""
    pool = units.y.size
    found: dict[str, list[float]] = defaultdict(list)
    for _ in range(pilots):
        y = np.full(pool, np.nan)
        chosen = rng.choice(pool, n_pilot, replace=False)
        y[chosen] = units.y[chosen]
        for d, k in labels_needed(units, y, np.full(pool, n_pilot / pool)).items():
            found[d].append(float(pool if k is None else k))
    return {
        d: dict(zip(QUANTILES, np.quantile(v, [0.1, 0.5, 0.9]).tolist(), strict=True))
        | {"unreachable_share": float(np.mean(np.array(v) >= pool))}
        for d, v in found.items()
    }


def run(directory: Path, reps: int, seed: int, n_pilot: int, pilots: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    all_units = load_units(directory)
    load_s = time.perf_counter() - started
    models: dict[str, Any] = {}
    started = time.perf_counter()
    for units in all_units:
        census = pilot_moments(units.y, units.yhat)
        sims: dict[str, dict[str, Any]] = {}
        for n in BUDGETS:
            sims[str(n)] = {
                d: summarise(simulate(units, n, reps, rng), units.truth)
                for d, simulate in SIMULATIONS.items()
            }
        needed = labels_needed(units, units.y, np.ones(units.y.size))
        check = {
            d: summarise(SIMULATIONS[d](units, k, reps, rng), units.truth)
            for d, k in needed.items()
            if k is not None
        }
        y, yhat, split = units.y, units.yhat, units.disagreement > 0
        models[units.model] = {
            "units": int(y.size),
            "truth": units.truth,
            "judge_rate": float(yhat.mean()),
            "correlation": census.correlation,
            "panel_split_share": float(split.mean()),
            "judge_error_unanimous": float(((y - yhat) ** 2)[~split].mean()),
            "judge_error_split": float(((y - yhat) ** 2)[split].mean()),
            "best_mix_census": {
                str(n): best_mix(
                    units.disagreement, y, yhat, np.ones(y.size), n, lam=None, offset=None
                )
                for n in BUDGETS
            },
            "simulations": sims,
            "labels_needed": needed,
            "at_labels_needed": check,
            "labels_needed_from_pilots": from_pilots(units, n_pilot, pilots, rng),
        }
    return {
        "dataset": str(directory),
        "human": STUDENT_CODER,
        "judge": JUDGE,
        "panel": list(PANEL),
        "confidence": CONFIDENCE,
        "budgets": list(BUDGETS),
        "reps": reps,
        "seed": seed,
        "mix": MIX,
        "half_width_target": HALF_WIDTH,
        "pilot_labels": n_pilot,
        "pilots": pilots,
        "models": models,
        "load_seconds": load_s,
        "simulate_seconds": time.perf_counter() - started,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
        },
    }


def print_table(res: dict[str, Any]) -> None:
    head = "".join(f"{d:>16}" for d in DESIGNS)
    print(
        f"{CONFIDENCE:.0%} interval width (mean over {res['reps']} replications) and coverage "
        f"of the students' harm rate; judge {res['judge']}"
    )
    print(f"{'model':<18}{'truth':>6}{'n':>5}{head}")
    for model, m in res["models"].items():
        for i, n in enumerate(res["budgets"]):
            row = m["simulations"][str(n)]
            cells = "".join(
                f"{row[d]['width_mean']:>10.3f} {row[d]['coverage']:>5.3f}" for d in DESIGNS
            )
            first = f"{model:<18}{m['truth']:>6.3f}" if i == 0 else " " * 24
            print(f"{first}{n:>5}{cells}")
    print()
    print(
        f"human labels for a {CONFIDENCE:.0%} half-width of {res['half_width_target']}: from the "
        "census; simulated at that n (mean half-width, coverage);\nfrom "
        f"{res['pilots']} uniform pilots of {res['pilot_labels']} labels (median [10%–90%]); "
        "- = not reachable within the model's units"
    )
    print(f"{'model':<18}{'':<11}{head}")
    for model, m in res["models"].items():
        needed = "".join(
            f"{'-' if m['labels_needed'][d] is None else m['labels_needed'][d]:>16}"
            for d in DESIGNS
        )
        check = "".join(
            f"{m['at_labels_needed'][d]['half_width_mean']:>10.4f} "
            f"{m['at_labels_needed'][d]['coverage']:>5.3f}"
            if d in m["at_labels_needed"]
            else f"{'-':>16}"
            for d in DESIGNS
        )
        pilots = m["labels_needed_from_pilots"]
        units = m["units"]

        def fmt(q: dict[str, float], units: int = units) -> str:
            if q["unreachable_share"] == 1.0:
                return "-"
            low, mid, high = (("-" if q[k] >= units else f"{q[k]:.0f}") for k in QUANTILES)
            return f"{mid} [{low}–{high}]"

        spread = "".join(f"{fmt(pilots[d]):>16}" for d in DESIGNS)
        print(f"{model:<18}{'census':<11}{needed}")
        print(f"{'':<18}{'simulated':<11}{check}")
        print(f"{'':<18}{'pilots':<11}{spread}")
    print()
    for model, m in res["models"].items():
        print(
            f"{model}: ρ(Y, Ŷ) = {m['correlation']:.3f}; judge rate {m['judge_rate']:.3f}; "
            f"panel split on {m['panel_split_share']:.0%} of units; judge error "
            f"{m['judge_error_unanimous']:.3f} where unanimous, {m['judge_error_split']:.3f} "
            f"where split; best mix (census) {m['best_mix_census']}"
        )
    plain = [
        f"{model} n={n}: {m['simulations'][str(n)]['active-unif-plain']['width_mean']:.3f}"
        for model, m in res["models"].items()
        for n in res["budgets"][:1]
    ]
    print(f"active-unif as written (λ = 1, no offset), width: {', '.join(plain)}")
    print(
        f"active designs: λ and offset tuned; active-dis mixes {res['mix']:.0%} uniform. "
        f"load {res['load_seconds']:.2f} s, simulations {res['simulate_seconds']:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "directory", nargs="?", type=Path, default=ROOT.parent / "shared/datasets/llm-harm"
    )
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--pilot-labels", type=int, default=100)
    parser.add_argument("--pilots", type=int, default=200)
    args = parser.parse_args()
    res = run(args.directory, args.reps, args.seed, args.pilot_labels, args.pilots)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "few_labels.json").write_text(json.dumps(res, indent=2))
    print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
