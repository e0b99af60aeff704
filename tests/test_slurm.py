"""The cluster path against a real single-node Slurm (started by bin/start-slurm)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from bamcover import cluster, profiles, tasks
from bamcover.jobs import slurm
from bamcover.options import Options

from .conftest import ROOT, SE_CHIP, STRANDED, SUMMITS

pytestmark = pytest.mark.usefixtures("slurm_cluster")

OPTS = Options(fragment_size=200, upstream=1000, downstream=1000, bin_size=5, strand_wise=True)


def until(cond, timeout=60.0, poll=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout} s")


def bamcover_cli(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "bamcover.cli", *map(str, args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def timeout_task(tmp_path_factory):
    """Submitted first, checked last: Slurm enforces time limits only every ~30 s."""
    work = tmp_path_factory.mktemp("timeout")
    return tasks.submit("tests.jobfuncs:slow", [{"x": 1, "seconds": 300}],
                        executor=tasks.SlurmExecutor(time="0:01"), workdir=work)


def test_submit_collect_equals_local(tmp_path, timeout_task):
    local = profiles.compute(STRANDED, str(SE_CHIP), OPTS)
    task = cluster.submit_profile(STRANDED, str(SE_CHIP), OPTS, jobs=3, workdir=tmp_path,
                                  executor=tasks.SlurmExecutor(cpus_per_job=2))
    assert len(task.manifest["submissions"]) == 1          # one job array, not N sbatch
    task.wait(progress=False, poll=0.2, timeout=120)
    st = task.status()
    assert st["state"].tolist() == ["COMPLETED"] * 3 and (st["exit_code"] == 0).all()
    got = cluster.collect(task)
    np.testing.assert_array_equal(got.matrix.to_numpy(), local.matrix.to_numpy())
    assert got.matrix.index.equals(local.matrix.index)
    pd.testing.assert_frame_equal(got.profile, local.profile, check_exact=True)
    chunks = [task.chunk(i)["rows"] for i in range(3)]
    assert sorted(sum(chunks, [])) == list(range(730))      # every region in one chunk
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1   # balanced
    assert oct(os.stat(task.path).st_mode & 0o777) == "0o700"


def test_no_wait_then_reattach_from_a_fresh_process(tmp_path):
    local_p, local_m = tmp_path / "local.tsv", tmp_path / "local.tsv.gz"
    local_l = tmp_path / "local_long.tsv"
    bamcover_cli("profile", SUMMITS, SE_CHIP, "-f", 200, "-b", 20, "-o", local_p,
                 "--matrix", local_m, "--long", local_l, "-q")
    out_p, out_m, out_l = tmp_path / "p.tsv", tmp_path / "m.tsv.gz", tmp_path / "long.tsv"
    done = bamcover_cli("profile", SUMMITS, SE_CHIP, "-f", 200, "-b", 20, "-o", out_p,
                        "--matrix", out_m, "--long", out_l, "--slurm", "--jobs", 4,
                        "--no-wait", "--workdir", tmp_path / "tasks")
    task_id, path = done.stdout.strip().split("\t")
    assert not out_p.exists()                              # nothing collected yet
    bamcover_cli("wait", task_id, "--workdir", tmp_path / "tasks", "-q")
    listing = bamcover_cli("tasks", "--workdir", tmp_path / "tasks").stdout
    assert task_id in listing and "COMPLETED:4" in listing
    bamcover_cli("collect", path)
    assert out_p.read_bytes() == local_p.read_bytes()
    assert pd.read_csv(out_m, sep="\t").equals(pd.read_csv(local_m, sep="\t"))
    assert out_l.read_bytes() == local_l.read_bytes() and out_l.stat().st_size > 100_000
    again = tmp_path / "again.parquet"                     # collect writes it elsewhere too
    bamcover_cli("collect", path, "--long", again, "-o", tmp_path / "p2.tsv", "--matrix",
                 tmp_path / "m2.tsv.gz")
    assert pd.read_parquet(again).equals(pd.read_csv(local_l, sep="\t", keep_default_na=False,
                                                     na_values={"value": ["nan"]}))


def test_density_on_slurm_equals_local(tmp_path):
    local, remote = tmp_path / "l.tsv", tmp_path / "r.tsv"
    bamcover_cli("density", SUMMITS, SE_CHIP, "-f", 150, "-o", local, "-q")
    bamcover_cli("density", SUMMITS, SE_CHIP, "-f", 150, "-o", remote, "-q", "--slurm",
                 "--jobs", 3, "--workdir", tmp_path / "tasks")
    assert remote.read_bytes() == local.read_bytes()


def test_cancel_running_task(tmp_path):
    t = tasks.submit("tests.jobfuncs:slow", [{"x": i, "seconds": 120} for i in range(3)],
                     executor=tasks.SlurmExecutor(), workdir=tmp_path, reduce="sum")
    until(lambda: t.states() == ["RUNNING"] * 3)
    assert t.is_running() and not t.is_ready()
    t.cancel()
    until(lambda: not t.is_running(), 30)
    assert t.states() == ["CANCELLED"] * 3 and t.failed() == [0, 1, 2]
    with pytest.raises(Exception, match="3 of 3 chunks have no result"):
        t.collect()


def test_cancel_partly_done_coverage_task_and_permissive_collect(tmp_path):
    task = cluster.submit_profile(STRANDED, str(SE_CHIP), OPTS, jobs=3, workdir=tmp_path,
                                  executor=tasks.SlurmExecutor(sbatch_args=["--hold"]))
    job = task.manifest["submissions"][0]["job_id"]
    subprocess.run(["scontrol", "release", f"{job}_0"], check=True)
    until(lambda: task.states()[0] == "COMPLETED")
    task.cancel()
    until(lambda: task.states() == ["COMPLETED", "CANCELLED", "CANCELLED"])
    with pytest.raises(Exception, match="2 of 3 chunks have no result"):
        cluster.collect(task)
    got = cluster.collect(task, permissive=True)
    missing = sorted(task.chunk(1)["rows"] + task.chunk(2)["rows"])
    status = got.status.to_numpy()
    assert (status[missing] == "missing").all() and (status != "missing").sum() == 730 - len(
        missing)
    values = got.matrix.to_numpy().reshape(730, 2, -1)
    assert np.isnan(values[missing]).all()
    local = profiles.compute(STRANDED, str(SE_CHIP), OPTS)
    keep = np.setdiff1d(np.arange(730), missing)
    np.testing.assert_array_equal(values[keep],
                                  local.matrix.to_numpy().reshape(730, 2, -1)[keep])
    assert got.profile["sense_n"].max() == len(keep)
    assert got.profile.attrs["missing_regions"] == len(missing)


def test_scancel_running_index_then_resubmit_only_it(tmp_path):
    flags = [str(tmp_path / f"flag{i}") for i in range(3)]
    for i in (0, 2):
        open(flags[i], "w").close()           # chunks 0 and 2 are quick, 1 is slow once
    t = tasks.submit("tests.jobfuncs:slow_once", [{"x": 10 ** i, "flag": flags[i]}
                                                   for i in range(3)],
                     executor=tasks.SlurmExecutor(), workdir=tmp_path / "t", reduce="sum")
    until(lambda: t.states() == ["COMPLETED", "RUNNING", "COMPLETED"])
    until(lambda: os.path.exists(flags[1]))       # mid-run: inside the function, sleeping
    job = t.manifest["submissions"][0]["job_id"]
    subprocess.run(["scancel", f"{job}_1"], check=True)
    until(lambda: t.states()[1] == "CANCELLED")
    assert t.failed() == [1]
    with pytest.raises(Exception, match="chunks 1: CANCELLED"):
        t.collect()
    assert t.resubmit() == [1]
    assert t.manifest["submissions"][-1]["indices"] == [1]
    t.wait(progress=False, poll=0.2, timeout=120)
    assert t.collect().tolist() == [111]


def test_cancelled_pending_chunk_resubmitted_gives_identical_result(tmp_path):
    task = cluster.submit_profile(STRANDED, str(SE_CHIP), OPTS, jobs=4, workdir=tmp_path,
                                  executor=tasks.SlurmExecutor(sbatch_args=["--hold"]))
    job = task.manifest["submissions"][0]["job_id"]
    subprocess.run(["scancel", f"{job}_2"], check=True)
    subprocess.run(["scontrol", "release", str(job)], check=True)
    task.wait(progress=False, poll=0.2, timeout=120)
    # a pending array index cancelled by hand usually leaves no record in Slurm (LOST);
    # if Slurm had split it off the array first, it shows as CANCELLED
    states = task.states()
    assert states[:2] + states[3:] == ["COMPLETED"] * 3 and states[2] in ("LOST", "CANCELLED")
    assert task.failed() == [2]
    assert task.resubmit() == [2]
    sub = task.manifest["submissions"][-1]
    assert sub["indices"] == [2] and sub["job_id"] != job
    # the resubmission keeps the task's sbatch arguments, --hold included
    subprocess.run(["scontrol", "release", str(sub["job_id"])], check=True)
    task.wait(progress=False, poll=0.2, timeout=120)
    assert task.is_ready()
    local = profiles.compute(STRANDED, str(SE_CHIP), OPTS)
    got = cluster.collect(task)
    np.testing.assert_array_equal(got.matrix.to_numpy(), local.matrix.to_numpy())
    pd.testing.assert_frame_equal(got.profile, local.profile, check_exact=True)


def test_crashing_worker_is_failed_with_log_tail(tmp_path):
    t = tasks.submit("tests.jobfuncs:crash", [{"x": i} for i in range(3)],
                     executor=tasks.SlurmExecutor(), workdir=tmp_path, reduce="sum")
    t.wait(progress=False, poll=0.2, timeout=120)
    st = t.status()
    assert st["state"].tolist() == ["COMPLETED", "FAILED", "COMPLETED"]
    assert st.loc[1, "exit_code"] == 1
    assert "RuntimeError: chunk 1 blew up on purpose" in st.loc[1, "error"]
    assert "blew up on purpose" in open(st.loc[1, "log"]).read()
    assert t.collect(permissive=True).tolist() == [2]       # chunks 0 and 2 summed
    out = bamcover_cli("status", t.path).stdout
    assert "FAILED" in out and "blew up" in out


def test_changed_input_fails_the_chunk_not_the_numbers(tmp_path):
    bam = tmp_path / "copy.bam"
    shutil.copy(SE_CHIP, bam)
    shutil.copy(str(SE_CHIP) + ".bai", str(bam) + ".bai")
    task = cluster.submit_profile(SUMMITS, str(bam), OPTS, jobs=2, workdir=tmp_path / "t",
                                  executor=tasks.SlurmExecutor(sbatch_args=["--hold"]))
    os.utime(bam, (time.time() + 10, time.time() + 10))
    subprocess.run(["scontrol", "release", str(task.manifest["submissions"][0]["job_id"])],
                   check=True)
    task.wait(progress=False, poll=0.2, timeout=120)
    st = task.status()
    assert st["state"].tolist() == ["FAILED", "FAILED"]
    assert st["error"].str.contains("changed since the task was submitted").all()


def test_pool_in_job_shuts_down_on_sigterm(tmp_path):
    stamp = tmp_path / "pids"
    t = tasks.submit("tests.jobfuncs:pool_sleep", [{"path": str(stamp)}],
                     executor=tasks.SlurmExecutor(cpus_per_job=2), workdir=tmp_path / "t")
    until(lambda: all(os.path.exists(f"{stamp}.{i}") for i in range(2)))
    pids = [int(open(p).read()) for p in (stamp, f"{stamp}.0", f"{stamp}.1")]
    t.cancel()
    until(lambda: not t.is_running(), 30)
    assert t.states() == ["CANCELLED"]

    def gone(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    until(lambda: all(gone(p) for p in pids), 20)
    marker = t._marker(0)
    logs = [p for p in t.status()["log"] if p and os.path.exists(p)]
    why = f"marker {marker}; job log: " + " ".join(open(p).read()[-1500:] for p in logs)
    assert marker.get("exit_code") == 143, why
    assert "SIGTERM" in marker["error"], why


def test_two_tasks_at_once(tmp_path):
    opts2 = OPTS.replace(strand_wise=False, bin_size=25, fragment_size=None)
    group = tasks.TaskGroup([
        cluster.submit_profile(STRANDED, str(SE_CHIP), OPTS, jobs=2, workdir=tmp_path,
                               executor=tasks.SlurmExecutor()),
        cluster.submit_profile(SUMMITS, str(SE_CHIP), opts2, jobs=3, workdir=tmp_path,
                               executor=tasks.SlurmExecutor()),
    ])
    assert len({t.id for t in group}) == 2
    group.wait_all(progress=False)
    assert group.is_ready()
    for t, (regions, opts) in zip(group, ((STRANDED, OPTS), (SUMMITS, opts2)), strict=True):
        local = profiles.compute(regions, str(SE_CHIP), opts)
        np.testing.assert_array_equal(cluster.collect(t).matrix.to_numpy(),
                                      local.matrix.to_numpy())
    assert len(tasks.list_tasks(tmp_path, indexed=False)) == 2
    assert {t.id for t in group} <= {t.id for t in tasks.list_tasks()}   # from the index
    group.remove(group[0])
    assert len(group) == 1


def test_hostile_names_and_paths(tmp_path):
    evil = tmp_path / "a dir; $(touch PWNED) `touch PWNED2` 'q\" x %u %%j"
    evil.mkdir()
    bam = evil / "s $(touch PWNED3).bam"
    shutil.copy(SE_CHIP, bam)
    shutil.copy(str(SE_CHIP) + ".bai", str(bam) + ".bai")
    regions = evil / "r.bed"
    rows = pd.read_csv(SUMMITS, sep="\t", header=None).iloc[:40]
    rows[3] = [f"peak {i}; $(touch PWNED4) \"'`id`" for i in range(40)]
    regions.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows.itertuples(False)))
    out = evil / "out $(touch PWNED5).tsv"
    mat = evil / "m;x.tsv"
    bamcover_cli("profile", regions, bam, "-o", out, "--matrix", mat, "--slurm", "--jobs", 2,
                 "-q", "--workdir", evil / "tasks $(touch PWNED6)")
    local = profiles.compute(str(regions), str(bam), Options())
    m = pd.read_csv(mat, sep="\t")
    assert m["name"].tolist() == rows[3].tolist()
    np.testing.assert_array_equal(m.iloc[:, 7:].to_numpy(), local.matrix.to_numpy())
    for root in (tmp_path, evil, ROOT, evil / "tasks $(touch PWNED6)"):
        for dirpath, _, files in os.walk(root):
            assert not [f for f in files if f.startswith("PWNED")], dirpath


def test_workdir_with_slurm_filename_patterns(tmp_path):
    """Slurm expands %u, %j, %% ... in --output: a --workdir like run_%u must still get
    each chunk's log, under the task, where status finds it."""
    work = tmp_path / "run_%u 100%"
    t = tasks.submit("tests.jobfuncs:crash", [{"x": i} for i in range(2)],
                     executor=tasks.SlurmExecutor(), workdir=work, reduce="sum")
    assert str(t.path).startswith(str(work))
    t.wait(progress=False, poll=0.2, timeout=120)
    st = t.status()
    assert st["state"].tolist() == ["COMPLETED", "FAILED"], st
    for i in (0, 1):
        assert os.path.dirname(st.loc[i, "log"]) == str(t.path / "logs"), st
    assert "blew up on purpose" in open(st.loc[1, "log"]).read()
    assert "blew up on purpose" in st.loc[1, "error"]
    assert t.collect(permissive=True).tolist() == [0]
    with pytest.raises(tasks.BamcoverError, match="backslash"):
        tasks.submit("tests.jobfuncs:square", [{"x": 1}], executor=tasks.SlurmExecutor(),
                     workdir=tmp_path / "a\\b")


def test_timeout_is_reported(timeout_task):
    timeout_task.wait(progress=False, poll=1, timeout=200)
    st = timeout_task.status()
    assert st["state"].tolist() == ["TIMEOUT"]
    assert timeout_task.failed() == [0]


def test_array_spec_and_job_name_guard():
    assert slurm.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert slurm.query(999_999_999, "no-such-task") == {}
