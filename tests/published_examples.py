"""Published worked examples that statistics are checked against (Krippendorff 2011,
"Computing Krippendorff's Alpha-Reliability")."""

from __future__ import annotations

import math

import numpy as np

nan = math.nan

# Section C: 4 observers × 12 units, values 1..5, with missing data. Published alpha:
# nominal 0.743, ordinal 0.815, interval 0.849 (pairable values n = 40, n_c = (9, 13, 10, 5, 3)).
FOUR_OBSERVERS = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],  # A
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],  # B
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],  # C
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],  # D
    ]
)

# Section A: binary data, 2 observers, 10 units, no missing data. Published nominal alpha 0.095
# (= 2/21: o_00 = 10, o_01 = o_10 = 4, o_11 = 2; n_0 = 14, n_1 = 6; alpha = 1 - 19*4/(14*6)).
BINARY_TWO_OBSERVERS = np.array(
    [
        [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
        [1, 1, 1, 0, 0, 1, 0, 0, 0, 0],
    ],
    dtype=float,
)
