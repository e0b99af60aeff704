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


def _sleep_and_record(args: tuple[str, int]) -> int:
    path, i = args
    with open(f"{path}.{i}", "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(120)
    return i


def pool_sleep(path: str) -> np.ndarray:
    """A job whose work sits in a bamcover process pool (for SIGTERM clean-up tests)."""
    from bamcover.pool import map_local

    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    return np.array(list(map_local(_sleep_and_record, [(path, 0), (path, 1)], 2)))


def slow_once(x: int, flag: str) -> np.ndarray:
    """Slow on the first attempt (so it can be cancelled mid-run), quick afterwards."""
    if not os.path.exists(flag):
        open(flag, "w").close()
        time.sleep(120)
    return np.array([x])


def slow_cleanup(path: str) -> np.ndarray:
    """Waits to be cancelled, then takes far longer to clean up than Slurm's KillWait."""
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    try:
        time.sleep(120)
    finally:
        time.sleep(120)
    return np.array([0])
