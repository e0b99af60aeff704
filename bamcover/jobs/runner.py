"""The worker side of a task: what runs inside a job (``python -m bamcover.jobs.runner``).

A job checks the bamcover version and the inputs against the manifest, calls the task's
function on its chunk, saves the result and records it in the chunk's marker. SIGTERM
(scancel, a time limit, :meth:`Task.cancel` of a local runner) is recorded at once and
shuts the job's process pool down.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence

from ..errors import BamcoverError
from ..version import __version__
from .calls import resolve
from .results import result_record, save_result, write_json
from .stamps import unchanged
from .task import Task


class Terminated(BaseException):
    """Raised in a job on SIGTERM (scancel, time limit) so pools shut down cleanly."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_chunk(task_path: str, i: int, attempt: int) -> int:
    """Run chunk ``i`` of a task here, writing its marker and result.

    Parameters
    ----------
    task_path : str
        The task directory.
    i : int
        The chunk.
    attempt : int
        The submission this run belongs to.

    Returns
    -------
    int
        The exit code: 0, 1 (the function failed: the marker says why) or 143 (SIGTERM).
    """
    task = Task(task_path)
    marker_path = task.path / "markers" / f"{i:05d}.json"
    marker = {"host": socket.gethostname(), "pid": os.getpid(), "start": time.time(),
              "attempt": attempt, "job_id": os.environ.get("SLURM_ARRAY_JOB_ID")}
    write_json(marker_path, marker)
    terminated = "terminated by SIGTERM (scancel or time limit)"

    def on_sigterm(signum, frame):
        # Slurm may signal more than once and sends SIGKILL KillWait seconds later, so
        # record the cancellation now and ignore repeats while pools shut down.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        write_json(marker_path, {**marker, "end": time.time(), "exit_code": 143,
                                  "error": terminated})
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    code, error = 0, ""
    try:
        if task.manifest["bamcover_version"] != __version__:
            raise BamcoverError(f"version mismatch: task made by bamcover "
                                f"{task.manifest['bamcover_version']}, this is {__version__}")
        for stamp in task.manifest["inputs"]:
            if not unchanged(stamp):
                raise BamcoverError(f"{stamp['path']}: changed since the task was submitted")
        func = resolve(task.manifest["func"])
        result = func(**task.chunk(i))
        path = save_result(task.path / "results" / f"{i:05d}", result)
        marker["result"] = result_record(path, result, task.id, i)
    except Terminated:
        code, error = 143, terminated
    except BaseException as exc:  # noqa: BLE001 - everything must reach the marker
        code = 1
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        traceback.print_exc()
    if code != 143:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a late SIGTERM must not lose the marker
        marker.update(end=time.time(), exit_code=code, error=error)
        write_json(marker_path, marker)
    signal.signal(signal.SIGTERM, previous)
    print(f"bamcover task {task.id} chunk {i}: exit {code} {error}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The job's command line: ``run TASK_DIR INDEX ATTEMPT`` (one array task) or
    ``run-local TASK_DIR ATTEMPT INDEX...`` (the local runner, chunk after chunk).

    Parameters
    ----------
    argv : Sequence of str, optional
        The arguments; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit code (the worst of the chunks run; 143 once cancelled; 2 for bad usage).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 4 and argv[0] == "run":
        return run_chunk(argv[1], int(argv[2]), int(argv[3]))
    if len(argv) >= 3 and argv[0] == "run-local":
        signal.signal(signal.SIGTERM, _on_sigterm)
        worst = 0
        try:
            for i in map(int, argv[3:]):
                code = run_chunk(argv[1], i, int(argv[2]))
                if code == 143:        # cancelled: run no further chunks
                    return code
                worst = max(worst, code)
        except Terminated:
            return 143
        return worst
    print("usage: python -m bamcover.jobs.runner run TASK_DIR INDEX ATTEMPT | "
          "run-local TASK_DIR ATTEMPT INDEX...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
