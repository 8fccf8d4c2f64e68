"""Bootstrap CI of Krippendorff's alpha: harmeval_metrics.reliability vs the krippendorff package.

One data set, one run: 100,000 units × 6 coders, ordinal-ish values 0..3 (a shared true score
plus coder noise), ~10% missing, generated from a fixed seed.

(a) ours: ``reliability.alpha(data, level, n_bootstrap=1000)``, timed end to end (validation,
    point estimate and all 1,000 resamples), best and median of a few repeats.
(b) baseline: ``krippendorff.alpha`` once per resample on resampled unit columns. Each call
    rebuilds the coincidence matrix from all units, so only a few resamples (20 by default)
    are timed and the time is extrapolated linearly to 1,000 (reported as such).

Point estimates of both must agree to 1e-9 (the script exits 1 otherwise). Writes
bench/results/alpha_bootstrap.json.

    .venv/bin/python bench/alpha_bootstrap.py [--level ordinal] [--baseline-resamples 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import numpy.typing as npt

from harmeval_metrics.reliability import LEVELS, Level, alpha

RESULTS = Path(__file__).resolve().parent / "results"


def make_data(n_units: int, n_coders: int, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=n_units)
    noise = rng.choice([-1, 0, 0, 0, 1], size=(n_coders, n_units))
    data = np.clip(truth + noise, 0, 3).astype(np.float64)
    data[rng.random(data.shape) < 0.10] = np.nan
    return np.asarray(data, dtype=np.float64)


def run(
    level: Level,
    n_units: int,
    n_coders: int,
    n_bootstrap: int,
    baseline_resamples: int,
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    data = make_data(n_units, n_coders, seed)

    ours_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        ours = alpha(data, level, n_bootstrap=n_bootstrap, seed=seed)
        ours_times.append(time.perf_counter() - started)
    assert ours.alpha is not None

    started = time.perf_counter()
    baseline_point = float(krippendorff.alpha(data, level_of_measurement=level))
    baseline_point_s = time.perf_counter() - started

    # The same resampling scheme as ours: pairable units (>= 2 values), with replacement.
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    rng = np.random.default_rng(seed)
    baseline_draws = []
    started = time.perf_counter()
    for _ in range(baseline_resamples):
        columns = rng.integers(0, pairable.shape[1], size=pairable.shape[1])
        baseline_draws.append(
            float(krippendorff.alpha(pairable[:, columns], level_of_measurement=level))
        )
    baseline_measured_s = time.perf_counter() - started
    baseline_extrapolated_s = baseline_point_s + baseline_measured_s * (
        n_bootstrap / baseline_resamples
    )

    ours_best = min(ours_times)
    return {
        "level": level,
        "n_units": n_units,
        "n_coders": n_coders,
        "missing_share": float(np.isnan(data).mean()),
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "ours_alpha": ours.alpha,
        "ours_ci": [ours.ci_low, ours.ci_high],
        "ours_defined_resamples": ours.n_bootstrap,
        "ours_seconds_best": ours_best,
        "ours_seconds_median": statistics.median(ours_times),
        "ours_seconds_all": ours_times,
        "baseline_alpha": baseline_point,
        "abs_diff": abs(ours.alpha - baseline_point),
        "baseline_point_seconds": baseline_point_s,
        "baseline_resamples_timed": baseline_resamples,
        "baseline_resamples_seconds": baseline_measured_s,
        "baseline_seconds_per_resample": baseline_measured_s / baseline_resamples,
        "baseline_draws_range": [min(baseline_draws), max(baseline_draws)],
        # Point estimate + n_bootstrap resamples, the resamples extrapolated linearly.
        "baseline_seconds_extrapolated": baseline_extrapolated_s,
        "speedup_vs_best": baseline_extrapolated_s / ours_best,
        "target_seconds": 2.0,
        "target_met": ours_best < 2.0,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "krippendorff": getattr(krippendorff, "__version__", "0.9.0"),
            "cpus": os.cpu_count(),
            "blas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--level", choices=LEVELS, default="ordinal")
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--coders", type=int, default=6)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    res = run(
        args.level,
        args.units,
        args.coders,
        args.bootstrap,
        args.baseline_resamples,
        args.repeats,
        args.seed,
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "alpha_bootstrap.json").write_text(json.dumps(res, indent=2))

    b, n = res["n_bootstrap"], res["baseline_resamples_timed"]
    print(
        f"{res['n_units']:,} units × {res['n_coders']} coders, {res['level']}, "
        f"{100 * res['missing_share']:.1f}% missing, {b} bootstrap resamples"
    )
    print(f"{'':28} {'alpha':>20} {'seconds':>10}")
    print(
        f"{'ours (reliability.alpha)':28} {res['ours_alpha']:20.15f} "
        f"{res['ours_seconds_best']:10.3f}  (best of {len(res['ours_seconds_all'])}, "
        f"median {res['ours_seconds_median']:.3f})"
    )
    print(
        f"{'krippendorff.alpha':28} {res['baseline_alpha']:20.15f} "
        f"{res['baseline_seconds_extrapolated']:10.1f}  (extrapolated: 1 point + {n} resamples "
        f"timed = {res['baseline_point_seconds'] + res['baseline_resamples_seconds']:.1f} s, "
        f"{res['baseline_seconds_per_resample']:.3f} s/resample × {b})"
    )
    print(f"|difference| of point estimates: {res['abs_diff']:.2e}")
    print(f"95% CI (ours): [{res['ours_ci'][0]:.6f}, {res['ours_ci'][1]:.6f}]")
    print(f"speed-up: {res['speedup_vs_best']:,.0f}×; under 2 s: {res['target_met']}")
    return 0 if res["abs_diff"] < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
