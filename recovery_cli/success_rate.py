"""A success rate with its uncertainty: the Wilson score interval.

``successes`` of ``runs`` observed; the interval holds the true rate with the confidence ``z``
stands for (1.96: 95 %). Unlike the plain ``p ± z·sqrt(p(1-p)/n)`` it stays inside [0, 1]
and is not zero-width at 0/n or n/n, so 1 success of 1 run does not rank above 9 of 10."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the two-sided 95 % quantile of the standard normal


@dataclass(frozen=True)
class SuccessRate:
    successes: int
    runs: int
    low: float
    high: float


def wilson(successes: int, runs: int, z: float = Z_95) -> SuccessRate:
    """The Wilson score interval of ``successes`` out of ``runs`` (0 runs: [0, 1])."""
    if runs < 0 or not 0 <= successes <= runs:
        raise ValueError(f"successes must be within 0..runs, got {successes} of {runs}")
    if runs == 0:
        return SuccessRate(0, 0, 0.0, 1.0)
    p = successes / runs
    z2 = z * z
    centre = (p + z2 / (2 * runs)) / (1 + z2 / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z2 / (4 * runs * runs)) / (1 + z2 / runs)
    return SuccessRate(successes, runs, max(0.0, centre - half), min(1.0, centre + half))
