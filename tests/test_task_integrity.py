"""Nothing lost, ever: a task's results are checked against what its jobs recorded,
collect needs only the task directory, and tasks are found by id from anywhere. Runs on
the local executor (the same code path as Slurm, no cluster needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bamcover import BamcoverError, cluster, tasks
from bamcover.options import Options

from .conftest import ROOT, SE_CHIP, STRANDED, SUMMITS

OPTS = Options(fragment_size=150, bin_size=10, strand_wise=True, upstream=500, downstream=500)


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    """Jobs import tests.jobfuncs; the task index lives in this test's own state home."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bamcover.cli", *map(str, args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300, cwd=cwd)


def one_line_error(done) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bamcover: error: "), done.stderr
    return lines[0]


def finished(task: tasks.Task) -> tasks.Task:
    task.wait(progress=False, poll=0.1, timeout=120)
    assert task.is_ready(), task.status()
    return task


def squares(tmp_path) -> tasks.Task:
    """Three chunks [x², x] for x = 1, 2, 3, summed: [14, 6]."""
    return finished(tasks.submit("tests.jobfuncs:square", [{"x": x} for x in (1, 2, 3)],
                                 reduce="sum", workdir=tmp_path / "w"))


def result(task: tasks.Task, i: int):
    return task.path / "results" / f"{i:05d}.npz"


# --- 5. every result is checked against what its job recorded ---------------------------

def test_result_replaced_by_another_chunks_is_failed_and_redone(tmp_path):
    t = squares(tmp_path)
    shutil.copy(result(t, 0), result(t, 1))
    with pytest.raises(BamcoverError, match=r"chunks 1: FAILED\); chunk 1: bad result: "
                                            r"00001.npz is not the file its job wrote"):
        t.collect()
    assert tasks.Task.load(t.path).failed() == [1]           # seen from a fresh session
    assert "sha256" in t.status().loc[1, "error"]
    assert t.collect(permissive=True).tolist() == [1 + 9, 1 + 3]
    assert t.resubmit() == [1]
    assert finished(t).collect().tolist() == [14, 6]


def test_marker_and_result_copied_from_another_chunk_are_refused(tmp_path):
    t = squares(tmp_path)
    for sub, name in (("results", "{}.npz"), ("markers", "{}.json")):
        shutil.copy(t.path / sub / name.format("00000"), t.path / sub / name.format("00002"))
    assert t.failed() == [2]
    assert "describes task" in t.status().loc[2, "error"]


def test_symlinked_result_is_refused(tmp_path):
    t = squares(tmp_path)
    elsewhere = tmp_path / "elsewhere.npz"
    shutil.move(result(t, 2), elsewhere)          # the very bytes, but not in the task
    os.symlink(elsewhere, result(t, 2))
    with pytest.raises(BamcoverError, match="00002.npz is a symbolic link"):
        t.collect()
    assert t.failed() == [2]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_result_owned_by_another_user_is_refused(tmp_path):
    t = squares(tmp_path)
    os.chown(result(t, 0), 12345, -1)             # same bytes, another owner
    with pytest.raises(BamcoverError, match="00000.npz is owned by uid 12345"):
        t.collect()
    assert t.failed() == [0]


@pytest.fixture
def coverage_task(tmp_path) -> tasks.Task:
    return finished(cluster.submit_profile(STRANDED, str(SE_CHIP), OPTS, jobs=3,
                                           workdir=tmp_path / "w",
                                           executor=tasks.LocalExecutor(processes=2)))


def test_bad_results_fail_collect_in_one_line_or_go_missing_with_permissive(
        tmp_path, coverage_task):
    t = coverage_task
    rows = {i: t.chunk(i)["rows"] for i in range(3)}
    with np.load(result(t, 0)) as z:               # values edited by hand
        edited = {k: z[k] for k in z.files}
    edited["values"][0, 0, 0] += 5
    np.savez(result(t, 0), **edited)
    data = result(t, 1).read_bytes()
    result(t, 1).write_bytes(data[: len(data) // 2])          # truncated
    result(t, 2).write_bytes(b"")                             # empty
    line = one_line_error(cli("collect", t.path, "-o", tmp_path / "p.tsv",
                              "--matrix", tmp_path / "m.tsv"))
    assert "3 of 3 chunks have no result" in line and "bad result" in line
    assert not (tmp_path / "p.tsv").exists()
    assert t.failed() == [0, 1, 2]
    t.resubmit()
    finished(t)
    result(t, 1).write_bytes(b"")
    done = cli("collect", t.path, "-o", tmp_path / "p.tsv", "--matrix", tmp_path / "m.tsv",
               "--permissive")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    m = pd.read_csv(tmp_path / "m.tsv", sep="\t")
    status = m.loc[m["channel"] == "sense", "status"].to_numpy()
    assert (status[rows[1]] == "missing").all()
    assert (status[rows[0] + rows[2]] != "missing").all()


def test_consistent_forgery_with_other_rows_is_rejected_and_redone(coverage_task):
    """A result and marker that agree with each other but hold another chunk's rows (a
    job bug, or a careful forgery): collect rejects the chunk, and it stays FAILED."""
    t = coverage_task
    with np.load(result(t, 0)) as z:
        other = {k: z[k] for k in z.files}
    path = tasks.save_result(t.path / "results" / "00001", other)
    marker = t._marker(1)
    marker["result"] = tasks.result_record(path, other, t.id, 1)
    (t.path / "markers" / "00001.json").write_text(json.dumps(marker))
    assert t.states() == ["COMPLETED"] * 3                 # the bytes are as recorded
    with pytest.raises(BamcoverError, match="chunk 1's result does not have the shapes"):
        cluster.collect(t)
    assert tasks.Task.load(t.path).failed() == [1]        # rejected for good
    assert t.resubmit() == [1]
    got = cluster.collect(finished(t))
    assert (got.status != "missing").all()


# --- 6. collect needs only the task directory and stamps the inputs as counted ----------

def test_collect_without_the_bam_writes_the_local_outputs_and_submit_time_provenance(
        tmp_path):
    bam, regions = tmp_path / "in" / "s.bam", tmp_path / "in" / "r.bed"
    bam.parent.mkdir()
    shutil.copy(SE_CHIP, bam)
    shutil.copy(f"{SE_CHIP}.bai", f"{bam}.bai")
    shutil.copy(SUMMITS, regions)
    local = cli("profile", regions, bam, "-f", 200, "-b", 20, "--normalize", "cpm",
                "-o", tmp_path / "local.tsv", "--matrix", tmp_path / "local_m.tsv", "-q")
    assert local.returncode == 0, local.stderr
    opts = Options(fragment_size=200, bin_size=20, normalize="cpm")
    t = finished(cluster.submit_profile(str(regions), str(bam), opts, jobs=3,
                                        workdir=tmp_path / "w", with_matrix=True,
                                        executor=tasks.LocalExecutor(processes=1)))
    before = {str(p): os.stat(p) for p in (regions, bam, f"{bam}.bai")}
    with open(regions, "a") as fh:                     # edited after counting...
        fh.write("chr22\t100\t200\n")
    os.rename(bam, tmp_path / "moved.bam")             # ...and the BAM moved away
    out, mat = tmp_path / "p.tsv", tmp_path / "m.tsv"
    done = cli("collect", t.path, "-o", out, "--matrix", mat)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (tmp_path / "local.tsv").read_bytes()
    assert mat.read_bytes() == (tmp_path / "local_m.tsv").read_bytes()
    record = json.loads((tmp_path / "p.tsv.provenance.json").read_text())
    assert [i["path"] for i in record["inputs"]] == list(before)
    assert [i["size"] for i in record["inputs"]] == [st.st_size for st in before.values()]
    local_record = json.loads((tmp_path / "local.tsv.provenance.json").read_text())
    assert record["inputs"] == local_record["inputs"]       # as counted, not as now
    assert record["library_sizes"] == local_record["library_sizes"]


def test_density_collect_without_the_bam(tmp_path):
    bam = tmp_path / "s.bam"
    shutil.copy(SE_CHIP, bam)
    shutil.copy(f"{SE_CHIP}.bai", f"{bam}.bai")
    local = cli("density", SUMMITS, bam, "-f", 150, "-o", tmp_path / "local.tsv", "-q")
    assert local.returncode == 0, local.stderr
    t = finished(cluster.submit_density(str(SUMMITS), [str(bam)], Options(fragment_size=150),
                                        jobs=3, workdir=tmp_path / "w",
                                        executor=tasks.LocalExecutor(processes=1)))
    bam.unlink()
    done = cli("collect", t.path, "-o", tmp_path / "r.tsv")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.tsv").read_bytes() == (tmp_path / "local.tsv").read_bytes()


# --- 8. tasks are found by id from any directory ----------------------------------------

def test_task_ids_work_from_any_directory_and_stale_entries_go(tmp_path):
    elsewhere = tmp_path / "another shell"
    elsewhere.mkdir()
    t = squares(tmp_path)
    done = cli("status", t.id, cwd=elsewhere)
    assert done.returncode == 0 and "COMPLETED" in done.stdout, done.stderr
    listing = cli("tasks", cwd=elsewhere)
    assert listing.returncode == 0 and t.id in listing.stdout and str(t.path) in listing.stdout
    assert str(tmp_path / "state" / "bamcover") in str(tasks.index_dir())
    gone = squares(tmp_path)
    shutil.rmtree(gone.path)
    listing = cli("tasks", cwd=elsewhere)
    assert listing.returncode == 0 and gone.id not in listing.stdout, listing.stderr
    assert not (tasks.index_dir() / gone.id).exists()           # pruned
    assert "no such task" in one_line_error(cli("status", gone.id, cwd=elsewhere))
    assert cli("status", t.path, cwd=elsewhere).returncode == 0  # a path still works
    assert cli("clean", t.id, cwd=elsewhere).returncode == 0
    assert not t.path.exists() and not (tasks.index_dir() / t.id).exists()
