"""The local executors: folding into per-worker accumulators, and its failures."""

from __future__ import annotations

import os
import signal

import pytest

from bamcover import BamcoverError
from bamcover.executors import fold_local


def _add(state: list, item: int) -> None:
    if item == 13:
        raise BamcoverError("chunk 13 is bad")
    if item == 666:
        os.kill(os.getpid(), signal.SIGKILL)
    state.append(item)


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_fold_takes_every_item_once(processes):
    items = [i for i in range(60) if i != 13]
    states = fold_local(list, _add, items, processes)
    assert 1 <= len(states) <= processes
    assert sorted(x for s in states for x in s) == items


def test_fold_reraises_a_worker_error():
    with pytest.raises(BamcoverError, match="chunk 13 is bad"):
        fold_local(list, _add, list(range(30)), 2)


def test_fold_refuses_a_result_missing_a_killed_worker():
    with pytest.raises(RuntimeError, match="ended without its result"):
        fold_local(list, _add, [1, 2, 666, 3, 4, 5], 2)
