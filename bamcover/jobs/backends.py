"""Where a task's chunks run: the abstract :class:`Backend` and one subclass per backend,
:class:`SlurmBackend` (one job array) and :class:`LocalBackend` (a background process on
this machine).

A task (:mod:`bamcover.jobs.task`) knows its chunks, markers and results; its backend
knows how to submit chunks, what the scheduler says of them, and how to cancel them. A
backend is a dataclass, kept in the task's manifest as its fields and ``kind``
(:meth:`Backend.to_dict`, :func:`backend_from_dict`). Every submission is a record (a
dict) kept in the manifest too: ``indices``, ``attempt`` and ``time``, and what the
backend needs to find its jobs again (a Slurm array's ``job_id`` and ``base``; a local
runner's ``pid`` and ``log``).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BamcoverError
from ..options import available_cores
from ..pool import pid_alive
from . import slurm

#: the state of a chunk with a good result
DONE = "COMPLETED"
#: the states of a chunk still queued or running (Slurm's words, for every backend)
ACTIVE = {"PENDING", "RUNNING"} | slurm.ACTIVE
#: the module a job runs (``python -m``)
RUNNER = "bamcover.jobs.runner"
#: seconds after sbatch during which Slurm may not show a new job yet
SETTLING = 5


class Backend(abc.ABC):
    """Where a task's chunks run.

    Attributes
    ----------
    kind : str
        The backend's name in a manifest (``slurm``, ``local``).
    processes : int
        Processes of the pool that counts one chunk.
    """

    kind: str

    def to_dict(self) -> dict:
        """The backend as the manifest keeps it.

        Returns
        -------
        dict
            Its fields, ``kind`` among them.
        """
        return dataclasses.asdict(self)

    @abc.abstractmethod
    def check_host(self) -> None:
        """Refuse (BamcoverError) a machine this backend cannot submit from."""

    @abc.abstractmethod
    def check_workdir(self, root: Path) -> None:
        """Refuse (BamcoverError) a directory this backend cannot run tasks under.

        Parameters
        ----------
        root : Path
            Where the task directory is made.
        """

    @abc.abstractmethod
    def submit(self, task_dir: Path, name: str, indices: list[int], attempt: int
               ) -> Iterator[dict]:
        """Submit chunks of a task.

        Parameters
        ----------
        task_dir : Path
            The task directory (manifest, ``job.sh``, ``logs/``).
        name : str
            The task's job name.
        indices : list of int
            The chunks, sorted.
        attempt : int
            The number of the first submission made here (the task's count so far).

        Returns
        -------
        Iterator of dict
            A submission record for each submission made, as it is made; the k-th has
            attempt ``attempt + k``.
        """

    @abc.abstractmethod
    def poll(self, submissions: list[dict], name: str) -> dict:
        """Ask the scheduler once about a task's submissions.

        Parameters
        ----------
        submissions : list of dict
            The task's submission records.
        name : str
            The task's job name (Slurm reuses job ids; names tell them apart).

        Returns
        -------
        dict
            The scheduler's view, for :meth:`info`.
        """

    @abc.abstractmethod
    def job(self, submission: dict, i: int, task_dir: Path) -> tuple[str, str]:
        """Which job runs chunk ``i`` of a submission, and where it logs.

        Parameters
        ----------
        submission : dict
            The chunk's latest submission record.
        i : int
            The chunk.
        task_dir : Path
            The task directory.

        Returns
        -------
        tuple of str
            The job's id as shown in a status table, and its log file ("" if none yet).
        """

    @abc.abstractmethod
    def info(self, submission: dict, i: int, view: dict) -> slurm.JobInfo | None:
        """The scheduler's word on chunk ``i``.

        Parameters
        ----------
        submission : dict
            The chunk's latest submission record.
        i : int
            The chunk.
        view : dict
            What :meth:`poll` returned.

        Returns
        -------
        JobInfo or None
            Its state (and exit code, node, elapsed time); None when the scheduler does
            not know it.
        """

    @abc.abstractmethod
    def alive(self, submission: dict) -> bool:
        """Whether a submission's process still runs on this machine.

        Parameters
        ----------
        submission : dict
            A submission record.

        Returns
        -------
        bool
            True while it runs.
        """

    @abc.abstractmethod
    def settling(self, submission: dict) -> bool:
        """Whether a submission is so recent that the scheduler may not show it yet.

        Parameters
        ----------
        submission : dict
            A submission record.

        Returns
        -------
        bool
            True during the first moments after submission.
        """

    @abc.abstractmethod
    def cancel(self, submission: dict) -> None:
        """Cancel what of a submission still waits or runs.

        Parameters
        ----------
        submission : dict
            A submission record.
        """


@dataclass
class SlurmBackend(Backend):
    """Run each chunk as one task of a Slurm job array.

    ``cpus_per_job`` CPUs per array task (the chunk's own process pool uses them all);
    ``sbatch_args`` are passed to sbatch as they are, after the generated ones.
    """

    cpus_per_job: int = 1
    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    account: str | None = None
    sbatch_args: list[str] = field(default_factory=list)
    kind: str = "slurm"

    def args(self) -> list[str]:
        """The sbatch arguments of every array of the task.

        Returns
        -------
        list of str
            The generated ones, then ``sbatch_args``.
        """
        out = [f"--cpus-per-task={self.cpus_per_job}"]
        for flag, value in (("partition", self.partition), ("time", self.time),
                            ("mem", self.mem), ("account", self.account)):
            if value:
                out.append(f"--{flag}={value}")
        return out + list(self.sbatch_args)

    @property
    def processes(self) -> int:
        return self.cpus_per_job

    def check_host(self) -> None:
        if not slurm.available():
            raise BamcoverError("--slurm: sbatch not found; is this a Slurm submit host? "
                                "(run without --slurm to use the local cores)")

    def check_workdir(self, root: Path) -> None:
        slurm.literal(str(root))      # refuses what Slurm cannot write logs under

    def submit(self, task_dir: Path, name: str, indices: list[int], attempt: int
               ) -> Iterator[dict]:
        """One job array (several only past Slurm's MaxArraySize, each array's indices
        counted from its ``base``)."""
        limit = slurm.max_array_size()
        for lo in range(0, len(indices), limit):
            batch = indices[lo:lo + limit]
            base = batch[0] - batch[0] % limit
            part = [i for i in batch if i - base < limit]
            rest = [i for i in batch if i - base >= limit]
            for group, gbase in ((part, base), (rest, base + limit)):
                if group:
                    yield self._submit_array(task_dir, name, group, gbase, attempt)
                    attempt += 1

    def _submit_array(self, task_dir: Path, name: str, indices: list[int], base: int,
                      attempt: int) -> dict:
        log = f"{slurm.literal(str(task_dir / 'logs'))}/%a-{base}-{attempt}-%A.log"
        job_id = slurm.submit_array(str(task_dir / "job.sh"), [i - base for i in indices],
                                    name, log,
                                    [*self.args(), f"--chdir={task_dir}",
                                     f"--export=ALL,BAMCOVER_ARRAY_BASE={base},"
                                     f"BAMCOVER_ATTEMPT={attempt}"])
        return {"job_id": job_id, "base": base, "indices": indices, "time": time.time(),
                "attempt": attempt}

    def poll(self, submissions: list[dict], name: str) -> dict:
        if not slurm.available():
            return {}
        return {sub["job_id"]: slurm.query(sub["job_id"], name) for sub in submissions}

    def job(self, submission: dict, i: int, task_dir: Path) -> tuple[str, str]:
        index, base = i - submission["base"], submission["base"]
        logs = sorted((task_dir / "logs").glob(
            f"{index}-{base}-{submission['attempt']}-*.log"))
        return f"{submission['job_id']}_{index}", str(logs[-1]) if logs else ""

    def info(self, submission: dict, i: int, view: dict) -> slurm.JobInfo | None:
        return view.get(submission["job_id"], {}).get(i - submission["base"])

    def alive(self, submission: dict) -> bool:
        return False            # a job on a node is the scheduler's to tell (info)

    def settling(self, submission: dict) -> bool:
        return time.time() - submission["time"] < SETTLING

    def cancel(self, submission: dict) -> None:
        slurm.cancel(submission["job_id"])


@dataclass
class LocalBackend(Backend):
    """Run the chunks one after another in a background process on this machine."""

    processes: int = field(default_factory=available_cores)
    kind: str = "local"

    def check_host(self) -> None:
        pass                    # any machine runs its own processes

    def check_workdir(self, root: Path) -> None:
        pass                    # any path will do

    def submit(self, task_dir: Path, name: str, indices: list[int], attempt: int
               ) -> Iterator[dict]:
        """One runner process, in a session of its own, logging to ``logs/local-N.log``."""
        log = task_dir / "logs" / f"local-{attempt}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", RUNNER, "run-local", str(task_dir), str(attempt),
                 *map(str, indices)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=task_dir)
        yield {"pid": proc.pid, "indices": indices, "time": time.time(), "attempt": attempt,
               "log": str(log)}

    def poll(self, submissions: list[dict], name: str) -> dict:
        return {}               # no scheduler: markers and the runner's pid tell it all

    def job(self, submission: dict, i: int, task_dir: Path) -> tuple[str, str]:
        return f"local:{submission['pid']}", submission["log"]

    def info(self, submission: dict, i: int, view: dict) -> slurm.JobInfo | None:
        return None

    def alive(self, submission: dict) -> bool:
        return pid_alive(submission["pid"])

    def settling(self, submission: dict) -> bool:
        return False            # the runner's pid is known at once

    def cancel(self, submission: dict) -> None:
        if pid_alive(submission["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(submission["pid"], signal.SIGTERM)


BACKENDS: dict[str, type[Backend]] = {b.kind: b for b in (SlurmBackend, LocalBackend)}


def backend_from_dict(d: dict) -> Backend:
    """The backend a manifest describes.

    Parameters
    ----------
    d : dict
        What :meth:`Backend.to_dict` gave (``kind`` and the fields).

    Returns
    -------
    Backend
        A :class:`SlurmBackend` for ``kind`` "slurm", else a :class:`LocalBackend`.
    """
    d = dict(d)
    return BACKENDS.get(d.pop("kind"), LocalBackend)(**d)


# the former names, which users (and the command line) construct
SlurmExecutor = SlurmBackend
LocalExecutor = LocalBackend
executor_from_dict = backend_from_dict
