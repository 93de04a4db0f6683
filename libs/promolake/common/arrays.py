"""Small numpy helpers shared by the synthetic world and the promotion allocation."""
from __future__ import annotations

import numpy as np


def rank_within(sorted_keys: np.ndarray) -> np.ndarray:
    """Return 0, 1, 2, ... counting up within each run of equal values of an already sorted array."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.arange(n)
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    return index - np.maximum.accumulate(np.where(starts, index, 0))
