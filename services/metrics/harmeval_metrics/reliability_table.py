"""An inline reliability table (unit, coder, value rows) as a coders × units matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harmeval.metrics.v1 import metrics_pb2


def reliability_matrix(values: Sequence[metrics_pb2.ReliabilityValue], level: str) -> np.ndarray:
    """Coders × units (np.nan = missing). Category labels are coded in sorted order, which is
    only meaningful at the nominal level, so they are refused at other levels."""
    coders: dict[str, int] = {}
    units: dict[str, int] = {}
    cells: dict[tuple[int, int], object] = {}
    categories: set[str] = set()
    for i, v in enumerate(values):
        if not v.unit or not v.coder:
            raise ValueError(f"values[{i}]: unit and coder are required")
        key = (coders.setdefault(v.coder, len(coders)), units.setdefault(v.unit, len(units)))
        kind = v.WhichOneof("value")
        if key in cells:
            raise ValueError(f"values[{i}]: second value for unit {v.unit!r}, coder {v.coder!r}")
        if kind == "category":
            categories.add(v.category)
            cells[key] = v.category
        elif kind == "number":
            if not np.isfinite(v.number):
                raise ValueError(f"values[{i}]: value must be finite")
            if level == "ratio" and v.number < 0:
                # Ratio distances assume a true zero: a negative value has no meaning there.
                raise ValueError(f"values[{i}]: {v.number:g} is negative; level 'ratio' needs >= 0")
            cells[key] = v.number
        else:
            cells[key] = None
    if categories and level != "nominal":
        raise ValueError(
            f"non-numeric values (e.g. {sorted(categories)[0]!r}) need level 'nominal'"
        )
    if categories and any(isinstance(x, float) for x in cells.values()):
        raise ValueError("mixed numeric and category values; use one kind")
    code = {c: float(i) for i, c in enumerate(sorted(categories))}
    matrix = np.full((len(coders), len(units)), np.nan)
    for (c, u), x in cells.items():
        if isinstance(x, str):
            matrix[c, u] = code[x]
        elif isinstance(x, float):
            matrix[c, u] = x
    return matrix
