"""The local process pool: folding into per-worker accumulators, and its failures."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

from bamcover import BamcoverError
from bamcover.pool import WorkerDied, fold_local, map_local, worker_index

from .procs import alive, children


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
    with pytest.raises(WorkerDied, match="killed by SIGKILL .out of memory"):
        fold_local(list, _add, [1, 2, 666, 3, 4, 5], 2)


def _big(state: list, item: int) -> None:
    if item == 13:
        raise BamcoverError("chunk 13 is bad")
    state.append(np.full(300_000, item, dtype=np.int64))       # 2.4 MB per item


def _square_or_die(item: int) -> int:
    if item == 13:
        raise BamcoverError("chunk 13 is bad")
    if item == 666:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01 * (item % 3))          # finish out of order
    return item * item


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_map_yields_in_input_order(processes):
    items = [i for i in range(40) if i != 13]
    assert list(map_local(_square_or_die, items, processes)) == [i * i for i in items]


def test_map_reraises_a_worker_error():
    with pytest.raises(BamcoverError, match="chunk 13 is bad"):
        list(map_local(_square_or_die, list(range(30)), 2))


def test_map_refuses_to_hang_on_a_killed_worker():
    with pytest.raises(WorkerDied, match="killed by SIGKILL") as err:
        list(map_local(_square_or_die, [1, 2, 666, 3, 4, 5], 2))
    assert isinstance(err.value, BamcoverError) and "\n" not in str(err.value)


class _Stop(Exception):
    pass


def _sleep(item: int) -> int:
    time.sleep(30)
    return item


def test_parent_handler_runs_when_a_helper_thread_takes_the_signal():
    """The kernel may hand a process-wide SIGTERM to any thread that does not block it;
    the parent's handler must still run at once, and the workers must be stopped."""
    def on_term(signum, frame):
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_term)
    timer = threading.Timer(
        0.5, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGTERM))
    begin = time.monotonic()
    try:
        timer.start()
        with pytest.raises(_Stop):
            list(map_local(_sleep, [1, 2], 2))
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - begin < 5
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def _which_worker(item: int) -> int | None:
    time.sleep(0.005)
    return worker_index()


@pytest.mark.parametrize("processes", [1, 3])
def test_workers_know_their_number(processes):
    """A worker can find what the parent prepared for it by its number (0 … processes-1);
    a one-process run works here, where there is none."""
    got = list(map_local(_which_worker, list(range(40)), processes))
    if processes == 1:
        assert got == [None] * 40 and worker_index() is None
    else:
        assert set(got) <= set(range(processes)) and len(set(got)) > 1


def test_fold_brings_back_large_states():
    """States of megabytes (the sparse histograms of the pysam fallback) come back whole
    through the queue; a worker's error still stops the fold."""
    states = fold_local(list, _big, [1, 2, 3, 4], 2)
    assert sorted(int(a[0]) for s in states for a in s) == [1, 2, 3, 4]
    assert all((a == a[0]).all() and a.size == 300_000 for s in states for a in s)
    with pytest.raises(BamcoverError, match="chunk 13 is bad"):
        fold_local(list, _big, [1, 2, 13, 3], 2)


def test_workers_die_with_a_parent_killed_outright():
    """A parent killed by SIGKILL (the OOM killer) cannot stop its workers; they must not
    stay blocked on the queues forever (before: orphaned and hung)."""
    import subprocess
    import sys

    code = ("import time\nfrom bamcover.pool import map_local\n"
            "list(map_local(time.sleep, [60, 60, 60, 60], 2))")
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while len(workers := children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in workers)
    finally:
        parent.kill()
        for w in children(parent.pid):
            os.kill(w, signal.SIGKILL)
