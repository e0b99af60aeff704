"""Nothing lost: outputs never destroy inputs or special files, a run's outputs are
all-or-nothing, signals and dead workers leave no process and no temporary behind, and a
closed stdout pipe ends the run quietly."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import SE_CHIP, SE_CTRL, SUMMITS
from .procs import alive, children

BAI = Path(str(SE_CHIP) + ".bai")


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bamcover.cli", *map(str, args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300, **kw)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_line_error(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bamcover: error: "), done.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp"))


@pytest.fixture()
def copies(tmp_path):
    """Copies of the BAM, its index and the regions that a test may try to destroy."""
    bam = tmp_path / "s.bam"
    shutil.copy(SE_CHIP, bam)
    shutil.copy(BAI, tmp_path / "s.bam.bai")
    bed = tmp_path / "r.bed"
    shutil.copy(SUMMITS, bed)
    return bam, bed


# --- 1. an output naming an input -----------------------------------------------------------

@pytest.mark.parametrize("how", ["matrix=bam", "output=bed", "output=bai", "long=bam",
                                 "matrix=./bam", "output=symlink", "output=hardlink",
                                 "output=provenance", "slurm"])
def test_profile_refuses_an_output_that_is_an_input(tmp_path, copies, how):
    bam, bed = copies
    before = {p: digest(p) for p in tmp_path.iterdir()}
    option, target = how.split("=") if "=" in how else ("matrix", "bam")
    if target == "symlink":
        (tmp_path / "link.tsv").symlink_to(bam)
        target = tmp_path / "link.tsv"
    elif target == "hardlink":
        os.link(bam, tmp_path / "hard.tsv")
        target = tmp_path / "hard.tsv"
        before[target] = digest(target)
    elif target == "provenance":
        # -o p.tsv writes p.tsv.provenance.json: here that name is the region file
        os.rename(bed, tmp_path / "p.tsv.provenance.json")
        bed = tmp_path / "p.tsv.provenance.json"
        before = {p: digest(p) for p in tmp_path.iterdir()}
        target = tmp_path / "p.tsv"
    else:
        target = {"bam": bam, "./bam": "./s.bam", "bed": bed,
                  "bai": tmp_path / "s.bam.bai"}[target]
    args = ["profile", bed, bam, "-f", "200", "-q"]
    args += {"matrix": ["-o", tmp_path / "p.tsv", "--matrix", target],
             "long": ["-o", tmp_path / "p.tsv", "--long", target],
             "output": ["-o", target]}[option]
    if how == "slurm":
        args += ["--slurm", "--no-wait", "--workdir", tmp_path / "work"]
    done = cli(*args, cwd=tmp_path)
    one_line_error(done, "input")
    assert {p: digest(p) for p in before} == before
    assert not (tmp_path / "work").exists()


def test_density_refuses_to_overwrite_its_bam(copies):
    bam, bed = copies
    before = digest(bam)
    one_line_error(cli("density", bed, bam, "-o", bam), str(bam), "input")
    assert digest(bam) == before


def test_two_outputs_hard_linked_are_one_file(tmp_path, copies):
    bam, bed = copies
    (tmp_path / "a.tsv").write_text("old\n")
    os.link(tmp_path / "a.tsv", tmp_path / "b.tsv")
    done = cli("profile", bed, bam, "-q", "-o", tmp_path / "a.tsv", "--matrix",
               tmp_path / "b.tsv")
    one_line_error(done, "name the same output")


# --- 2. targets that are not regular files ----------------------------------------------------

@pytest.fixture()
def devices(tmp_path):
    """Private copies of /dev/null and /dev/full (character devices 1,3 and 1,7) in the
    test's directory: a regression must not replace the system's own."""
    made = {}
    for name, minor in (("null", 3), ("full", 7)):
        try:
            os.mknod(tmp_path / name, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        except OSError as exc:
            pytest.skip(f"cannot make a device node here ({exc.strerror}); needs root")
        made[name] = tmp_path / name
    return made


def test_dev_null_is_written_through_not_replaced(copies, devices):
    bam, bed = copies
    null = devices["null"]
    before = os.stat(null)
    done = cli("profile", bed, bam, "-q", "-o", null, "--matrix", null)
    assert done.returncode == 0, done.stderr
    after = os.lstat(null)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    assert not os.path.exists(f"{null}.provenance.json")


def test_fifo_output_is_streamed(tmp_path, copies):
    bam, bed = copies
    fifo = tmp_path / "out.tsv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = cli("profile", bed, bam, "-q", "-f", "200", "-o", fifo)
    reader.join(30)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0].startswith(b"offset\t") and got[0].count(b"\n") == 4001
    assert not (tmp_path / "out.tsv.provenance.json").exists()


def test_link_to_own_stdout(tmp_path, copies):
    bam, bed = copies
    link = tmp_path / "out.tsv"
    link.symlink_to("/proc/self/fd/1")
    done = cli("profile", bed, bam, "-q", "-f", "200", "-o", link)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and done.stdout.startswith("offset\t")
    assert done.stdout.count("\n") == 4001


def test_output_through_a_symlink_updates_its_target(tmp_path, copies):
    bam, bed = copies
    (tmp_path / "real.tsv").write_text("old\n")
    (tmp_path / "link.tsv").symlink_to(tmp_path / "real.tsv")
    assert cli("profile", bed, bam, "-q", "-o", tmp_path / "link.tsv").returncode == 0
    assert (tmp_path / "link.tsv").is_symlink()
    assert (tmp_path / "real.tsv").read_text().startswith("offset\t")


# --- 3. all or nothing ------------------------------------------------------------------------

def test_a_failing_second_output_leaves_none(tmp_path, copies, devices):
    """--matrix is written before -o: -o failing (disk full) must take the matrix with
    it, and the one line names the path that failed."""
    bam, bed = copies
    full = devices["full"]
    done = cli("profile", bed, bam, "-q", "--matrix", tmp_path / "m.parquet", "-o", full)
    one_line_error(done, str(full), "no space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null", "r.bed", "s.bam",
                                                          "s.bam.bai"]
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_failing_provenance_record_leaves_no_output(tmp_path, copies, monkeypatch):
    from click.testing import CliRunner

    from bamcover import outputs
    from bamcover.cli import common, main

    bam, bed = copies
    real = outputs.write_provenance

    def full(output, record):
        if str(output).endswith("l.tsv"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(output, record)

    monkeypatch.setattr(common, "write_provenance", full)
    args = ["profile", str(bed), str(bam), "-q", "-o", str(tmp_path / "p.tsv"),
            "--matrix", str(tmp_path / "m.tsv"), "--long", str(tmp_path / "l.tsv")]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bed", "s.bam", "s.bam.bai"]
    monkeypatch.setattr(common, "write_provenance", real)
    assert CliRunner().invoke(main, args).exit_code == 0
    assert {"p.tsv", "m.tsv", "l.tsv", "l.tsv.provenance.json"} <= \
        {p.name for p in tmp_path.iterdir()}


def test_disk_full_on_a_real_filesystem(tmp_path, copies):
    """A 256 kB tmpfs (needs root and mount rights): the matrix does not fit."""
    bam, bed = copies
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + mounted.stderr.decode().strip())
    try:
        done = cli("profile", bed, bam, "-q", "-o", small / "p.tsv", "--matrix",
                   small / "m.tsv")
        one_line_error(done, str(small / "m.tsv"), "no space left")
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)])


# --- 4. signals, dead workers, stale temporaries -----------------------------------------------

def _until(cond, timeout=30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture()
def long_run(tmp_path):
    """A run of a few seconds on two processes: 20 copies of the summits, ±100 kb at
    bin 1."""
    bed = tmp_path / "many.bed"
    bed.write_text(SUMMITS.read_text() * 20)
    return ["profile", bed, SE_CHIP, "-p", "2", "-u", "100000", "-d", "100000", "-q"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_stops_workers_and_leaves_nothing(tmp_path, long_run, signum):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "bamcover.cli", *map(str, long_run),
                             "-o", out / "p.tsv"], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    _until(lambda: len(children(proc.pid)) >= 2)
    workers = children(proc.pid)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum
    assert err.splitlines() == [f"bamcover: stopped by {signal.Signals(signum).name}; "
                                "no output written"]
    _until(lambda: not any(alive(w) for w in workers), timeout=10)
    assert list(out.iterdir()) == []


def test_sigterm_while_writing_removes_the_temporaries(tmp_path, copies):
    bam, _ = copies
    bed = tmp_path / "many.bed"
    bed.write_text(SUMMITS.read_text() * 20)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "bamcover.cli", "profile", bed, bam, "-q",
                             "-p", "1", "-o", out / "p.tsv", "--matrix", out / "m.tsv.gz"],
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    _until(lambda: leftovers(out))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert list(out.iterdir()) == []


def test_a_worker_killed_outright_is_one_line(tmp_path, long_run):
    proc = subprocess.Popen([sys.executable, "-m", "bamcover.cli", *map(str, long_run),
                             "-o", tmp_path / "p.tsv"], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    _until(lambda: len(children(proc.pid)) >= 2)
    os.kill(children(proc.pid)[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert len(err.splitlines()) == 1 and "killed by SIGKILL" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["many.bed"]


def test_temporaries_of_a_killed_run_are_cleaned_by_the_next(tmp_path, copies):
    bam, bed = copies
    host = socket.gethostname()
    probe = subprocess.Popen(["true"])          # a pid that has surely ended
    probe.wait()
    stale = tmp_path / f".p.tsv.bamcover-{host}-{probe.pid}-0123abcd.tmp"
    live = tmp_path / f".p.tsv.bamcover-{host}-{os.getpid()}-0123abcd.tmp"
    other_host = tmp_path / f".p.tsv.bamcover-elsewhere-{probe.pid}-0123abcd.tmp"
    for p in (stale, live, other_host):
        p.write_text("partial")
    assert cli("profile", bed, bam, "-q", "-o", tmp_path / "p.tsv").returncode == 0
    assert not stale.exists() and live.exists() and other_host.exists()
    assert (tmp_path / "p.tsv").read_text().startswith("offset\t")


# --- 15. a closed pipe -------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["density", "matrix", "long", "profile"])
def test_broken_pipe_is_quiet(tmp_path, what):
    args = {"density": ["density", SUMMITS, SE_CHIP, SE_CTRL, "-o", "-"],
            "matrix": ["profile", SUMMITS, SE_CHIP, "-o", tmp_path / "p.tsv", "--matrix", "-"],
            "long": ["profile", SUMMITS, SE_CHIP, "-o", tmp_path / "p.tsv", "--long", "-"],
            "profile": ["profile", SUMMITS, SE_CHIP, "-b", "1", "-u", "200000",
                        "-d", "200000"]}[what]
    proc = subprocess.Popen([sys.executable, "-m", "bamcover.cli", *map(str, args), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == ""
    assert proc.returncode == 128 + signal.SIGPIPE
    assert not (tmp_path / "p.tsv").exists()


def test_collect_refuses_an_output_that_is_an_input_of_the_task(tmp_path, copies, monkeypatch):
    """collect -o / --matrix are checked against the inputs the task recorded at submit."""
    from bamcover import cluster, tasks
    from bamcover.options import Options

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    bam, bed = copies
    task = cluster.submit_profile(str(bed), str(bam), Options(fragment_size=200), jobs=2,
                                  workdir=tmp_path / "w", executor=tasks.LocalExecutor(1),
                                  region_file=str(bed))
    task.wait(progress=False, poll=0.1, timeout=120)
    before = {p: digest(p) for p in (bam, bed, tmp_path / "s.bam.bai")}
    for option, target in (("-o", bed), ("--matrix", bam), ("-o", tmp_path / "s.bam.bai")):
        done = cli("collect", task.path, option, target)
        one_line_error(done, "input")
    assert {p: digest(p) for p in before} == before
    assert cli("collect", task.path, "-o", tmp_path / "p.tsv").returncode == 0


def test_a_rename_failing_at_the_end_leaves_no_temporary(tmp_path, monkeypatch):
    """all_or_nothing: when renaming the second of three files fails, the error comes
    through and no temporary is left behind."""
    from bamcover import outputs

    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    with pytest.raises(OSError), outputs.all_or_nothing():
        for name in ("a", "b", "c"):
            with outputs.atomic_path(tmp_path / name) as tmp, open(tmp, "w") as fh:
                fh.write(name)
    assert len(calls) == 2 and leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_worker_ending_with_an_exit_code_says_so():
    from bamcover.pool import WorkerDied

    assert str(WorkerDied(3)).startswith("a worker process ended with exit code 3 ")
    assert "killed by SIGTERM" in str(WorkerDied(-signal.SIGTERM))
