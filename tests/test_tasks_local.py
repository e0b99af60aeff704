"""The task API on the local executor: the same code path as Slurm, no cluster needed."""

from __future__ import annotations

import collections
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from bamcover import BamcoverError, cluster, profiles, tasks
from bamcover.options import Options

from .conftest import ROOT, SE_CHIP, STRANDED


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    """The background runner imports tests.jobfuncs from the repository root."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_local_coverage_task_equals_compute(tmp_path):
    opts = Options(fragment_size=150, bin_size=10, strand_wise=True, upstream=500,
                   downstream=500)
    task = cluster.submit_profile(STRANDED, str(SE_CHIP), opts, jobs=3, workdir=tmp_path,
                                  executor=tasks.LocalExecutor(processes=2))
    task.wait(progress=False, poll=0.1, timeout=120)
    assert task.is_ready() and task.has_output()
    again = tasks.Task.load(task.path)                 # re-attached from its directory
    got = cluster.collect(again)
    local = profiles.compute(STRANDED, str(SE_CHIP), opts)
    np.testing.assert_array_equal(got.matrix.to_numpy(), local.matrix.to_numpy())
    pd.testing.assert_frame_equal(got.profile, local.profile, check_exact=True)
    again.clean()
    assert not task.path.exists()


def test_generic_functions_and_reduces(tmp_path):
    t = tasks.submit("tests.jobfuncs:count", [{"words": ["a", "b", "a"]}, {"words": ["b"]}],
                     reduce="sum", workdir=tmp_path)
    t.wait(progress=False, poll=0.1, timeout=60)
    assert t.collect() == collections.Counter({"a": 2, "b": 2})
    assert sorted(p.suffix for p in (t.path / "results").iterdir()) == [".json", ".json"]
    f = tasks.submit("tests.jobfuncs:frame", [{"x": i} for i in range(3)], reduce="concat",
                     workdir=tmp_path)
    f.wait(progress=False, poll=0.1, timeout=60)
    assert f.collect()["x"].tolist() == [0, 1, 2]
    assert not list(f.path.rglob("*.pkl")) and not list(f.path.rglob("*.pickle"))


def test_local_crash_cancel_and_resubmit(tmp_path):
    c = tasks.submit("tests.jobfuncs:crash", [{"x": i} for i in range(3)], reduce="sum",
                     workdir=tmp_path)
    c.wait(progress=False, poll=0.1, timeout=60)
    assert c.states() == ["COMPLETED", "FAILED", "COMPLETED"] and c.failed() == [1]
    assert "blew up on purpose" in c.status().loc[1, "error"]
    with pytest.raises(BamcoverError, match="1 of 3 chunks have no result"):
        c.collect()
    s = tasks.submit("tests.jobfuncs:slow", [{"x": i, "seconds": 60} for i in range(2)],
                     reduce="sum", workdir=tmp_path)
    deadline = time.monotonic() + 30
    while s.states()[0] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    s.cancel()
    s.wait(progress=False, poll=0.1, timeout=30)
    assert s.states() == ["CANCELLED", "CANCELLED"]


def test_cancel_is_recorded_before_a_slow_cleanup_is_killed(tmp_path):
    """Slurm sends SIGKILL KillWait seconds after SIGTERM; the marker must already say so."""
    stamp = tmp_path / "pid"
    t = tasks.submit("tests.jobfuncs:slow_cleanup", [{"path": str(stamp)}], workdir=tmp_path)
    deadline = time.monotonic() + 30
    while not stamp.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    t.cancel()
    time.sleep(1)
    runner = t.manifest["submissions"][0]["pid"]
    os.killpg(runner, 0)                                # still alive, in its cleanup
    os.killpg(runner, signal.SIGKILL)
    t.wait(progress=False, poll=0.1, timeout=30)
    assert t.states() == ["CANCELLED"]
    assert "SIGTERM" in t.status().loc[0, "error"]


def test_unimportable_function_is_refused(tmp_path):
    with pytest.raises(BamcoverError, match="must be importable"):
        tasks.submit(lambda: 1, [{}], workdir=tmp_path)
