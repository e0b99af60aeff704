"""A small Slurm client: submit a job array, ask Slurm about it, cancel it.

Only the command-line tools are used (``sbatch --parsable``, ``squeue``, ``scontrol``,
``sacct`` when accounting is configured, ``scancel``), so it works with any Slurm the user
can submit to. Slurm forgets finished jobs after ``MinJobAge`` and reuses job ids after a
controller restart: callers match job names and keep their own markers (see
:mod:`bamcover.jobs.task`).
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import BamcoverError

ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
FINISHED_BAD = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}


@dataclass
class JobInfo:
    """Slurm's view of one array task."""

    state: str
    exit_code: int | None = None
    elapsed: str = ""
    node: str = ""
    reason: str = ""


def available() -> bool:
    return shutil.which("sbatch") is not None


def _run(args: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BamcoverError(f"{args[0]} not found: is Slurm installed on this machine?") from None
    except subprocess.TimeoutExpired:
        raise BamcoverError(f"{args[0]} did not answer within {timeout:.0f} s") from None
    if check and done.returncode != 0:
        msg = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise BamcoverError(f"{shlex.join(args[:2])}: {msg}")
    return done


@functools.lru_cache(maxsize=1)
def config() -> dict[str, str]:
    """``scontrol show config`` as a dict (cached)."""
    out = _run(["scontrol", "show", "config"]).stdout
    conf = {}
    for line in out.splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            conf[key.strip()] = value.strip()
    return conf


def max_array_size() -> int:
    return int(config().get("MaxArraySize", "1001"))


def has_accounting() -> bool:
    return config().get("AccountingStorageType", "accounting_storage/none") != \
        "accounting_storage/none"


def array_spec(indices: list[int]) -> str:
    """Compact ``--array`` list: [0,1,2,5,7,8] → '0-2,5,7-8'."""
    parts, run = [], []
    for i in sorted(indices):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def literal(path: str) -> str:
    """``path`` as a filename pattern naming itself: every "%" doubled, so that a directory
    like ``run_%u`` is not expanded by Slurm (which would write the logs elsewhere, or
    fail to start the job). A backslash would switch all expansion off (``%a`` too), so
    it is refused."""
    if "\\" in path:
        raise BamcoverError(f"{path}: Slurm cannot write job logs under a path with a "
                            "backslash; choose another --workdir")
    return path.replace("%", "%%")


def submit_array(script: str, indices: list[int], name: str, log_pattern: str,
                 sbatch_args: list[str]) -> int:
    """Submit ``script`` as one job array over ``indices``; returns the array job id."""
    args = ["sbatch", "--parsable", f"--array={array_spec(indices)}", f"--job-name={name}",
            f"--output={log_pattern}", f"--error={log_pattern}", *sbatch_args, script]
    out = _run(args).stdout.strip()
    try:
        return int(out.split(";")[0])
    except ValueError:
        raise BamcoverError(f"sbatch returned an unexpected job id {out!r}") from None


def query(job_id: int, name: str) -> dict[int, JobInfo]:
    """State of every task of array ``job_id`` still known to Slurm, by array index.

    Only tasks whose job name is ``name`` count (job ids restart on a new controller).
    """
    info: dict[int, JobInfo] = {}
    done = _run(["squeue", "-h", "-r", "-t", "all", "-j", str(job_id),
                 "-o", "%K|%j|%T|%M|%N|%r"], check=False)
    for line in done.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 6 or parts[1] != name or not parts[0].isdigit():
            continue
        info[int(parts[0])] = JobInfo(parts[2], None, parts[3], parts[4], parts[5])
    done = _run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
    for line in done.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        idx = fields.get("ArrayTaskId", "")
        if fields.get("JobName") != name or not idx.isdigit():
            continue
        job = info.setdefault(int(idx), JobInfo(fields.get("JobState", "UNKNOWN")))
        job.state = fields.get("JobState", job.state)
        code = fields.get("ExitCode", "")
        if ":" in code and job.state not in ACTIVE:
            status, signal = (int(x) for x in code.split(":"))
            job.exit_code = status if signal == 0 else 128 + signal
        job.elapsed = fields.get("RunTime", job.elapsed)
        job.node = fields.get("NodeList", job.node)
    if has_accounting():
        done = _run(["sacct", "-n", "-P", "-X", "-j", str(job_id),
                     "-o", "JobID,JobName,State,ExitCode,Elapsed,NodeList"], check=False)
        for line in done.stdout.splitlines():
            parts = line.split("|")
            if len(parts) != 6 or parts[1] != name or "_" not in parts[0]:
                continue
            idx = parts[0].split("_", 1)[1]
            if idx.isdigit() and int(idx) not in info:
                status, _, signal = parts[3].partition(":")
                code = int(status) if signal in ("", "0") else 128 + int(signal)
                info[int(idx)] = JobInfo(parts[2].split()[0], code, parts[4], parts[5])
    return info


def cancel(job_id: int, indices: list[int] | None = None) -> None:
    """scancel a whole array or some of its tasks."""
    target = str(job_id) if indices is None else f"{job_id}_[{array_spec(indices)}]"
    _run(["scancel", target], check=False)
