"""Small importable functions that the task tests run as jobs."""

from __future__ import annotations

import collections
import os
import time

import numpy as np
import pandas as pd


def square(x: int) -> np.ndarray:
    return np.array([x * x, x], dtype=np.int64)


def frame(x: int) -> pd.DataFrame:
    return pd.DataFrame({"x": [x], "name": [f"it's $(x) {x}; rm -rf /"]})


def count(words: list[str]) -> collections.Counter:
    return collections.Counter(words)


def slow(x: int, seconds: float) -> np.ndarray:
    time.sleep(seconds)
    return np.array([x])


def crash(x: int) -> np.ndarray:
    if x == 1:
        raise RuntimeError(f"chunk {x} blew up on purpose")
    return np.array([x])


def stamp(path: str) -> int:
    """Records the pid, for checking that no process outlives a cancelled job."""
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(120)
    return 0
