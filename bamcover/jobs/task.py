"""Tasks: run a function over chunks of work on a backend (a Slurm job array, or a
background process here), follow them, cancel, resubmit, and collect the results — from
a shell or a notebook, and again later from a new session.

A task is a private directory::

    manifest.json        what runs (function, reduce, backend, inputs, versions, jobs)
    job.sh               the generated, quoted job script
    chunks/NNNNN.json    the arguments of each chunk
    markers/NNNNN.json   written by the job itself: host, pid, start, end, exit code, error,
                         and its result's name, size, sha256 and shapes
    results/NNNNN.*      the chunk's result (npz, parquet or JSON; never pickle)
    logs/                one log per chunk and attempt

A chunk's state comes from its marker and result first and from its backend (for Slurm:
squeue, scontrol, sacct when there is accounting) second, so a job that left the queue
without a result is FAILED or LOST, never done; a result that is not the one its job
recorded (or is a symbolic link, or another user's file) makes the chunk FAILED too. Each
task is also indexed per user (:mod:`bamcover.jobs.index`), so its id works from any directory.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._lazy import pd
from ..errors import BamcoverError
from ..options import DEFAULT_WORKDIR
from ..pool import progress_bar
from ..version import __version__
from . import index, slurm
from .backends import ACTIVE, DONE, RUNNER, Backend, LocalBackend, backend_from_dict
from .calls import qualified, reduce_results
from .results import SUFFIXES, decode_result, own_file, sha256_of, shapes, write_json
from .stamps import input_stamp


class Task:
    """A submitted piece of work, re-attachable from its directory (``Task.load``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        manifest = self.path / "manifest.json"
        if not manifest.exists():
            raise BamcoverError(f"{self.path}: not a bamcover task directory (no manifest.json)")
        with open(manifest) as fh:
            self.manifest = json.load(fh)
        self._checked: dict[int, tuple] = {}     # results hashed already, by file identity

    # creation ---------------------------------------------------------------------------
    @classmethod
    def create(cls, func: Callable | str, items: Sequence[dict], *, reduce: str = "list",
               executor: Backend | None = None,
               workdir: str | os.PathLike | None = None, inputs: Sequence[str] = (),
               meta: dict | None = None) -> Task:
        """Write a task directory for ``func(**item)`` over ``items`` (not yet submitted).

        Parameters
        ----------
        func : Callable or str
            The function, importable by its module (or its ``module:qualname``).
        items : Sequence of dict
            One chunk's keyword arguments each (JSON).
        reduce : str
            How :meth:`collect` combines the results (see ``reduce_results``).
        executor : Backend, optional
            Where the chunks run; a :class:`LocalBackend` by default.
        workdir : str or PathLike, optional
            The directory the task directory is made in (``bamcover-tasks``).
        inputs : Sequence of str
            Files the jobs read: stamped now, refused by a job if changed since.
        meta : dict, optional
            Anything the caller keeps with the task (JSON).

        Returns
        -------
        Task
            The task, indexed, not yet submitted.
        """
        executor = executor or LocalBackend()
        executor.check_host()
        if not items:
            raise BamcoverError("nothing to run: the task has no chunks")
        root = Path(workdir or DEFAULT_WORKDIR).resolve()
        executor.check_workdir(root)
        root.mkdir(parents=True, exist_ok=True)
        task_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        path = root / task_id
        old = os.umask(0o077)          # the task directory is private to its user
        try:
            for sub in ("chunks", "markers", "results", "logs"):
                (path / sub).mkdir(parents=True)
            for i, item in enumerate(items):
                with open(path / "chunks" / f"{i:05d}.json", "w") as fh:
                    json.dump(item, fh)
            manifest = {
                "id": task_id, "name": f"bamcover-{task_id}", "created": time.time(),
                "bamcover_version": __version__, "python": sys.executable,
                "func": qualified(func), "reduce": reduce, "n_chunks": len(items),
                "executor": executor.to_dict(), "inputs": [input_stamp(p) for p in inputs],
                "submissions": [], "cancelled": False, "meta": meta or {},
            }
            write_json(path / "manifest.json", manifest)
            _write_script(path, manifest)
        finally:
            os.umask(old)
        task = cls(path)
        index.remember(task.id, task.path)
        return task

    @classmethod
    def load(cls, path: str | os.PathLike) -> Task:
        """Re-attach to a task from its directory.

        Parameters
        ----------
        path : str or PathLike
            The task directory.

        Returns
        -------
        Task
            The task.
        """
        return cls(path)

    # properties ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def n_chunks(self) -> int:
        return self.manifest["n_chunks"]

    @property
    def backend(self) -> Backend:
        """Where the task's chunks run, as the manifest says."""
        return backend_from_dict(self.manifest["executor"])

    executor = backend

    def __repr__(self) -> str:
        counts = collections.Counter(self.states())
        return f"<Task {self.id} {dict(counts)} at {self.path}>"

    def _save(self) -> None:
        write_json(self.path / "manifest.json", self.manifest)

    def chunk(self, i: int) -> dict:
        with open(self.path / "chunks" / f"{i:05d}.json") as fh:
            return json.load(fh)

    # submission ---------------------------------------------------------------------------
    def submit(self, indices: Sequence[int] | None = None) -> Task:
        """Submit the given chunks (default: all) to the task's backend.

        Parameters
        ----------
        indices : Sequence of int, optional
            The chunks; all of them by default. Each starts from nothing (its marker
            and result are removed).

        Returns
        -------
        Task
            This task.
        """
        indices = sorted(range(self.n_chunks) if indices is None else indices)
        if not indices:
            return self
        for i in indices:     # a new attempt starts from nothing
            self._checked.pop(i, None)
            for stale in (self.path / "results").glob(f"{i:05d}.*"):
                stale.unlink()
            (self.path / "markers" / f"{i:05d}.json").unlink(missing_ok=True)
        submissions = self.manifest["submissions"]
        for record in self.backend.submit(self.path, self.manifest["name"], indices,
                                          len(submissions)):
            submissions.append(record)
        self.manifest["cancelled"] = False
        self._save()
        return self

    # state ----------------------------------------------------------------------------------
    def _latest(self) -> dict[int, dict]:
        latest = {}
        for sub in self.manifest["submissions"]:
            for i in sub["indices"]:
                latest[i] = sub
        return latest

    def _marker(self, i: int) -> dict | None:
        """What chunk ``i``'s job wrote about itself; ``{"untrusted": why}`` for a marker
        that is a symbolic link or another user's file."""
        path = self.path / "markers" / f"{i:05d}.json"
        if not os.path.lexists(path):
            return None
        try:
            fd = own_file(path)
        except BamcoverError as exc:
            return {"untrusted": f"marker {exc}"}
        try:
            with os.fdopen(fd) as fh:
                return json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _result_file(self, i: int, record: dict) -> Path:
        """The result file chunk ``i``'s marker names, if the record is this chunk's."""
        name = record.get("name", "")
        if (record.get("task"), record.get("chunk")) != (self.id, i) or \
                name not in {f"{i:05d}{ext}" for ext in SUFFIXES}:
            raise BamcoverError(f"chunk {i}'s marker describes task {record.get('task')} "
                                f"chunk {record.get('chunk')} ({name}), not this chunk")
        return self.path / "results" / name

    def _verify(self, i: int, marker: dict, read: bool = False) -> bytes | None:
        """Check chunk ``i``'s result against what its job recorded in ``marker`` (whose
        chunk it is, its size and sha256): BamcoverError says why it cannot be trusted.
        With ``read``, its bytes — the very bytes that were hashed. A file already checked
        and unchanged since (inode, size, mtime, ctime) is not hashed again."""
        if marker.get("rejected"):
            raise BamcoverError(marker["rejected"])
        record = marker.get("result")
        if not isinstance(record, dict) or "sha256" not in record:
            raise BamcoverError(f"chunk {i}'s job recorded no checksum of its result")
        path = self._result_file(i, record)
        fd = own_file(path)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, record["sha256"])
            if not read and self._checked.get(i) == key:
                return None
            if st.st_size != record["size"]:
                raise BamcoverError(f"{path.name} has {st.st_size} bytes; its job wrote "
                                    f"{record['size']} (truncated or replaced since)")
            data = fh.read() if read else None
            digest = hashlib.sha256(data).hexdigest() if read else sha256_of(fd)
        if digest != record["sha256"]:
            raise BamcoverError(f"{path.name} is not the file its job wrote (sha256 differs: "
                                "replaced or edited since)")
        self._checked[i] = key
        return data

    def _load(self, i: int) -> Any:
        """Chunk ``i``'s result, read once and checked (:meth:`_verify`), then its shapes
        compared with those its job recorded."""
        marker = self._marker(i) or {}
        data = self._verify(i, marker, read=True)
        record = marker["result"]
        suffix = Path(record["name"]).suffix
        try:
            obj = decode_result(suffix, data)
        except Exception as exc:  # noqa: BLE001 - a bad file is the chunk's failure
            raise BamcoverError(f"{record['name']} cannot be read ({type(exc).__name__})"
                                ) from None
        wanted = {k: record[k] for k in ("arrays", "shape") if k in record}
        if shapes(obj, suffix) != wanted:
            raise BamcoverError(f"{record['name']}: shapes differ from those its job recorded")
        return obj

    def reject(self, i: int, why: str) -> None:
        """Mark chunk ``i``'s result as bad in its marker: it is FAILED from now on (so
        ``resubmit`` redoes it)."""
        marker = self._marker(i)
        self._checked.pop(i, None)
        if marker and "untrusted" not in marker:
            write_json(self.path / "markers" / f"{i:05d}.json", {**marker, "rejected": why})

    def result_path(self, i: int) -> Path | None:
        found = sorted((self.path / "results").glob(f"{i:05d}.*"))
        found = [p for p in found if not p.name.startswith(".")]
        return found[0] if found else None

    def status(self) -> pd.DataFrame:
        """One row per chunk: state, job id, exit code, elapsed, node, log, error/log tail."""
        latest = self._latest()
        backend = self.backend
        view = backend.poll(self.manifest["submissions"], self.manifest["name"])
        rows = []
        for i in range(self.n_chunks):
            sub = latest.get(i)
            marker = self._marker(i)
            row = {"chunk": i, "state": "NOT_SUBMITTED", "job_id": None, "exit_code": None,
                   "elapsed": "", "node": "", "log": "", "error": ""}
            if sub is not None:
                row.update(self._chunk_state(i, sub, marker, backend, view))
            rows.append(row)
        table = pd.DataFrame(rows).set_index("chunk")
        table["exit_code"] = table["exit_code"].astype("Int64")
        return table

    def _chunk_state(self, i: int, sub: dict, marker: dict | None, backend: Backend,
                     view: dict) -> dict:
        """Chunk ``i``'s row of :meth:`status`: its marker and result first, then what
        the backend says of its latest submission ``sub``."""
        ours = marker if marker and marker.get("attempt") == sub["attempt"] else None
        row: dict = {}
        row["job_id"], row["log"] = backend.job(sub, i, self.path)
        if ours:
            row["node"] = ours.get("host", "")
            if "end" in ours:
                row["elapsed"] = f"{ours['end'] - ours['start']:.1f}s"
        if marker and "untrusted" in marker:
            row.update(state="FAILED", error=marker["untrusted"])
            return row
        if ours and ours.get("exit_code") == 0:
            try:
                self._verify(i, ours)
                row.update(state=DONE, exit_code=0)
            except BamcoverError as exc:
                row.update(state="FAILED", exit_code=0, error=f"bad result: {exc}")
            return row
        info = backend.info(sub, i, view)
        if info is not None:
            row.update(node=info.node or row.get("node", ""), elapsed=info.elapsed or
                       row.get("elapsed", ""))
            state = info.state
            if state in slurm.ACTIVE:
                row["state"] = state
                return row
            row["exit_code"] = info.exit_code
            if state == DONE:      # Slurm says done, but there is no result: failed
                state = "FAILED"
            row["state"] = state
        elif ours and "exit_code" in ours:
            row["state"] = "CANCELLED" if ours["exit_code"] == 143 else "FAILED"
            row["exit_code"] = ours["exit_code"]
        elif backend.alive(sub):
            row["state"] = "RUNNING" if ours else "PENDING"
        elif self.manifest.get("cancelled"):
            row["state"] = "CANCELLED"
        elif backend.settling(sub):
            row["state"] = "PENDING"     # not yet visible to the scheduler
        else:
            row["state"] = "LOST"        # gone from Slurm's memory without a result
        if ours and ours.get("error"):
            row["error"] = ours["error"]
        elif row["state"] != DONE and row["log"]:
            row["error"] = _tail(row["log"])
        return row

    def states(self) -> list[str]:
        return self.status()["state"].tolist()

    def is_running(self) -> bool:
        return any(s in ACTIVE for s in self.states())

    def is_ready(self) -> bool:
        return all(s == DONE for s in self.states())

    def failed(self) -> list[int]:
        """Chunks that ended without a result (failed, cancelled, timed out, lost)."""
        st = self.status()["state"]
        return [int(i) for i, s in st.items() if s not in ACTIVE and s != DONE]

    def has_output(self) -> bool:
        return any(self.result_path(i) is not None for i in range(self.n_chunks))

    def wait(self, progress: bool = True, poll: float = 1.0, timeout: float | None = None
             ) -> Task:
        """Block until no chunk is pending or running.

        Parameters
        ----------
        progress : bool
            Show a progress bar over chunks (on a terminal).
        poll : float
            Seconds between two looks.
        timeout : float, optional
            Give up (TimeoutError) after this many seconds.

        Returns
        -------
        Task
            This task.
        """
        start = time.monotonic()
        with progress_bar(self.n_chunks, f"task {self.id}", progress) as bar:
            while True:
                states = self.states()
                bar.n = sum(s == DONE for s in states)
                bar.refresh()
                if not any(s in ACTIVE for s in states):
                    return self
                if timeout is not None and time.monotonic() - start > timeout:
                    raise TimeoutError(f"task {self.id} still running after {timeout} s")
                time.sleep(poll)

    # results ----------------------------------------------------------------------------------
    def results(self, permissive: bool = False,
                check: Callable[[int, Any], None] | None = None) -> dict[int, Any]:
        """The chunks' results, each checked against what its job recorded. A bad result
        is rejected: its chunk is FAILED from then on.

        Parameters
        ----------
        permissive : bool
            Leave chunks without a good result out; else such a chunk is an error.
        check : callable, optional
            ``check(i, result)`` raises BamcoverError for a result that is not chunk
            ``i``'s.

        Returns
        -------
        dict
            The results by chunk index.
        """
        status = self.status()
        states = status["state"].to_dict()
        errors = status["error"].to_dict()
        self._refuse_missing(states, errors, permissive)
        out = {}
        for i in (i for i, s in states.items() if s == DONE):
            try:
                out[i] = self._load(i)
                if check is not None:
                    check(i, out[i])
            except BamcoverError as exc:
                out.pop(i, None)
                self.reject(i, str(exc))
                states[i], errors[i] = "FAILED", f"bad result: {exc}"
                self._refuse_missing(states, errors, permissive)
        return out

    def _refuse_missing(self, states: dict, errors: dict, permissive: bool) -> None:
        missing = [int(i) for i, s in states.items() if s != DONE]
        if not missing or permissive:
            return
        kinds = ", ".join(sorted({states[i] for i in missing}))
        bad = [f"; chunk {i}: {errors[i]}" for i in missing
               if str(errors[i]).startswith("bad result")][:1]
        raise BamcoverError(
            f"task {self.id}: {len(missing)} of {self.n_chunks} chunks have no result "
            f"(chunks {slurm.array_spec(missing)}: {kinds}){''.join(bad)}; wait, resubmit, "
            "or collect --permissive")

    def collect(self, permissive: bool = False) -> Any:
        """The chunks' results, combined as the task's ``reduce`` says.

        Parameters
        ----------
        permissive : bool
            Combine the chunks that have a good result; else all must have one.

        Returns
        -------
        Any
            The combined result (see ``reduce_results``).
        """
        results = self.results(permissive)
        if not results:
            raise BamcoverError(f"task {self.id}: no chunk has a result")
        return reduce_results([results[i] for i in sorted(results)], self.manifest["reduce"])

    # control ----------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel every chunk still queued or running."""
        self.manifest["cancelled"] = True
        self._save()
        backend = self.backend
        for sub in self.manifest["submissions"]:
            backend.cancel(sub)

    def resubmit(self) -> list[int]:
        """Submit again only the chunks that failed, were cancelled, timed out or were lost."""
        todo = self.failed()
        self.submit(todo)
        return todo

    def clean(self) -> None:
        """Cancel what still runs and remove the task directory."""
        if self.is_running():
            self.cancel()
        shutil.rmtree(self.path)
        index.forget(self.id)       # its index entry is stale now


class TaskGroup(list):
    """Several tasks, e.g. one per sample, handled together."""

    def status(self) -> pd.DataFrame:
        return pd.concat({t.id: t.status() for t in self}, names=["task"])

    def cancel_all(self) -> None:
        for t in self:
            t.cancel()

    def wait_all(self, progress: bool = True) -> TaskGroup:
        for t in self:
            t.wait(progress)
        return self

    def is_ready(self) -> bool:
        return all(t.is_ready() for t in self)


def submit(func: Callable | str, items: Sequence[dict], *, reduce: str = "list",
           executor: Backend | None = None,
           workdir: str | os.PathLike | None = None) -> Task:
    """Run ``func(**item)`` for every item as a task.

    Parameters
    ----------
    func : Callable or str
        The function, importable by its module (or its ``module:qualname``).
    items : Sequence of dict
        One chunk's keyword arguments each.
    reduce : str
        How :meth:`Task.collect` combines the results: ``sum``, ``concat``, ``list`` or
        ``module:function``.
    executor : Backend, optional
        Where the chunks run; a :class:`LocalBackend` by default.
    workdir : str or PathLike, optional
        The directory the task directory is made in.

    Returns
    -------
    Task
        The task, submitted.
    """
    return Task.create(func, items, reduce=reduce, executor=executor, workdir=workdir).submit()


# --- helpers -------------------------------------------------------------------------------

def _write_script(path: Path, manifest: dict) -> None:
    """The job script: every value that reaches the shell is quoted."""
    script = "\n".join([
        "#!/bin/bash",
        f"# bamcover task {manifest['id']} (generated; bamcover {__version__})",
        f"exec {shlex.quote(manifest['python'])} -m {RUNNER} run "
        f"{shlex.quote(str(path))} \"$((SLURM_ARRAY_TASK_ID + BAMCOVER_ARRAY_BASE))\" "
        "\"$BAMCOVER_ATTEMPT\"",
        "",
    ])
    (path / "job.sh").write_text(script)
    os.chmod(path / "job.sh", 0o700)


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()[-4000:]
    except OSError:
        return ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:])
