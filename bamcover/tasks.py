"""Tasks: run a function over chunks of work as one Slurm job array (or local background
processes), follow them, cancel, resubmit, and collect the results — from a shell or a
notebook, and again later from a new session.

A task is a private directory::

    manifest.json        what runs (function, reduce, executor, inputs, versions, jobs)
    job.sh               the generated, quoted job script
    chunks/NNNNN.json    the arguments of each chunk
    markers/NNNNN.json   written by the job itself: host, pid, start, end, exit code, error,
                         and its result's name, size, sha256 and shapes
    results/NNNNN.*      the chunk's result (npz, parquet or JSON; never pickle)
    logs/                one log per chunk and attempt

A chunk's state comes from its marker and result first and from Slurm (squeue, scontrol,
sacct when there is accounting) second, so a job that left the queue without a result is
FAILED or LOST, never done; a result that is not the one its job recorded (or is a symbolic
link, or another user's file) makes the chunk FAILED too. Each task is also indexed per user
(:func:`index_dir`), so its id works from any directory.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, slurm
from ._lazy import pd
from .errors import BamcoverError
from .options import DEFAULT_WORKDIR, available_cores
from .pool import pid_alive, progress_bar

DONE = "COMPLETED"
ACTIVE = {"PENDING", "RUNNING"} | slurm.ACTIVE


class Terminated(BaseException):
    """Raised in a job on SIGTERM (scancel, time limit) so pools shut down cleanly."""


@dataclass
class SlurmExecutor:
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
        out = [f"--cpus-per-task={self.cpus_per_job}"]
        for flag, value in (("partition", self.partition), ("time", self.time),
                            ("mem", self.mem), ("account", self.account)):
            if value:
                out.append(f"--{flag}={value}")
        return out + list(self.sbatch_args)

    @property
    def processes(self) -> int:
        return self.cpus_per_job


@dataclass
class LocalExecutor:
    """Run the chunks one after another in a background process on this machine."""

    processes: int = field(default_factory=available_cores)
    kind: str = "local"


def executor_from_dict(d: dict) -> SlurmExecutor | LocalExecutor:
    d = dict(d)
    return SlurmExecutor(**d) if d.pop("kind") == "slurm" else LocalExecutor(**d)


# --- results: npz, parquet or JSON -------------------------------------------------------

def save_result(stem: Path, obj: Any) -> Path:
    """Write a chunk result atomically; the format follows the type."""
    if isinstance(obj, pd.DataFrame):
        path = stem.with_suffix(".parquet")
    elif isinstance(obj, np.ndarray) or (isinstance(obj, dict) and obj and all(
            isinstance(v, np.ndarray) for v in obj.values())):
        path = stem.with_suffix(".npz")
    else:
        path = stem.with_suffix(".json")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix == ".parquet":
        obj.to_parquet(tmp)
    elif path.suffix == ".npz":
        with open(tmp, "wb") as fh:
            np.savez(fh, **({"array": obj} if isinstance(obj, np.ndarray) else obj))
    else:
        payload = ({"counter": dict(obj)} if isinstance(obj, collections.Counter)
                   else {"value": obj})
        with open(tmp, "w") as fh:
            json.dump(payload, fh)
    os.replace(tmp, path)
    return path


def load_result(path: Path) -> Any:
    return decode_result(path.suffix, path.read_bytes())


def decode_result(suffix: str, data: bytes) -> Any:
    """A chunk result from the bytes of its file (``suffix`` says the format)."""
    if suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(data))
    if suffix == ".npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays["array"] if list(arrays) == ["array"] else arrays
    payload = json.loads(data)
    return collections.Counter(payload["counter"]) if "counter" in payload else payload["value"]


def result_record(path: Path, obj: Any, task_id: str, chunk: int) -> dict:
    """What a job records in its marker about the result it wrote: whose it is, its size
    and sha256, and the shapes of its arrays (or table), so that collect can tell it from
    a file replaced, truncated or edited since."""
    with open(path, "rb") as fh:
        size, digest = os.fstat(fh.fileno()).st_size, _sha256(fh.fileno())
    return {"task": task_id, "chunk": chunk, "name": path.name, "size": size,
            "sha256": digest, **_shapes(obj, path.suffix)}


def _sha256(fd: int) -> str:
    """sha256 of what is left to read from ``fd``, streamed."""
    digest = hashlib.sha256()
    while block := os.read(fd, 1 << 22):
        digest.update(block)
    return digest.hexdigest()


def _own_file(path: Path) -> int:
    """An open descriptor of ``path``, refused (BamcoverError) unless it is a regular file
    of this user: never a symbolic link into another place, never a file another user
    put into a shared directory."""
    for _ in range(5):          # a job may replace its marker between the two looks
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                raise BamcoverError(f"{path.name} is a symbolic link, not the file its job "
                                    "wrote")
            if not stat.S_ISREG(st.st_mode):
                raise BamcoverError(f"{path.name} is not a regular file")
            if st.st_uid != os.getuid():
                raise BamcoverError(f"{path.name} is owned by uid {st.st_uid}, not by this "
                                    f"user (uid {os.getuid()})")
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise BamcoverError(f"{path.name} is missing") from None
        except OSError as exc:          # ELOOP: it became a symbolic link meanwhile
            raise BamcoverError(f"{path.name}: {exc.strerror}") from None
        if os.fstat(fd).st_ino == st.st_ino:
            return fd
        os.close(fd)
    raise BamcoverError(f"{path.name} keeps changing while it is being checked")


def _shapes(obj: Any, suffix: str) -> dict:
    """The shape part of :func:`result_record` for a loaded result."""
    if suffix == ".npz":
        arrays = {"array": obj} if isinstance(obj, np.ndarray) else obj
        return {"arrays": {k: [list(v.shape), v.dtype.str] for k, v in arrays.items()}}
    return {"shape": list(obj.shape)} if suffix == ".parquet" else {}


def reduce_results(results: Sequence[Any], how: str) -> Any:
    """``sum`` (arrays, dicts of arrays, Counters, numbers), ``concat`` (DataFrames),
    ``list``, or a ``module:function`` taking the list."""
    if how == "list":
        return list(results)
    if how == "concat":
        return pd.concat(results, ignore_index=True)
    if how == "sum":
        first = results[0]
        if isinstance(first, dict) and not isinstance(first, collections.Counter):
            return {k: sum(r[k] for r in results) for k in first}
        total = first.copy() if hasattr(first, "copy") else first
        for r in results[1:]:
            total = total + r
        return total
    return resolve(how)(list(results))


def resolve(name: str) -> Callable:
    """``module:qualname`` → the object."""
    module, _, qual = name.partition(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def qualified(func: Callable | str) -> str:
    if isinstance(func, str):
        return func
    name = f"{func.__module__}:{func.__qualname__}"
    if func.__module__ == "__main__" or "<locals>" in func.__qualname__:
        raise BamcoverError(f"{name}: a task function must be importable by its module "
                            "(define it in a module, not in __main__ or a closure)")
    return name


def _input_stamp(path: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime": st.st_mtime}


def unchanged(stamp: dict) -> bool:
    """Whether the input ``stamp`` describes (size, mtime) is still there as it was."""
    try:
        now = _input_stamp(stamp["path"])
    except OSError:
        return False
    return (now["size"], now["mtime"]) == (stamp["size"], stamp["mtime"])


# --- the task ----------------------------------------------------------------------------

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
               executor: SlurmExecutor | LocalExecutor | None = None,
               workdir: str | os.PathLike | None = None, inputs: Sequence[str] = (),
               meta: dict | None = None) -> Task:
        """Write a task directory for ``func(**item)`` over ``items`` (not yet submitted)."""
        executor = executor or LocalExecutor()
        if executor.kind == "slurm" and not slurm.available():
            raise BamcoverError("--slurm: sbatch not found; is this a Slurm submit host? "
                                "(run without --slurm to use the local cores)")
        if not items:
            raise BamcoverError("nothing to run: the task has no chunks")
        root = Path(workdir or DEFAULT_WORKDIR).resolve()
        if executor.kind == "slurm":
            slurm.literal(str(root))      # refuses what Slurm cannot write logs under
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
                "executor": asdict(executor), "inputs": [_input_stamp(p) for p in inputs],
                "submissions": [], "cancelled": False, "meta": meta or {},
            }
            _write_json(path / "manifest.json", manifest)
            _write_script(path, manifest)
        finally:
            os.umask(old)
        task = cls(path)
        _index(task)
        return task

    @classmethod
    def load(cls, path: str | os.PathLike) -> Task:
        return cls(path)

    # properties ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def n_chunks(self) -> int:
        return self.manifest["n_chunks"]

    @property
    def executor(self) -> SlurmExecutor | LocalExecutor:
        return executor_from_dict(self.manifest["executor"])

    def __repr__(self) -> str:
        counts = collections.Counter(self.states())
        return f"<Task {self.id} {dict(counts)} at {self.path}>"

    def _save(self) -> None:
        _write_json(self.path / "manifest.json", self.manifest)

    def chunk(self, i: int) -> dict:
        with open(self.path / "chunks" / f"{i:05d}.json") as fh:
            return json.load(fh)

    # submission ---------------------------------------------------------------------------
    def submit(self, indices: Sequence[int] | None = None) -> Task:
        """Submit the given chunks (default: all) as one job array (several only past
        Slurm's MaxArraySize), or start a local runner."""
        indices = sorted(range(self.n_chunks) if indices is None else indices)
        if not indices:
            return self
        for i in indices:     # a new attempt starts from nothing
            self._checked.pop(i, None)
            for stale in (self.path / "results").glob(f"{i:05d}.*"):
                stale.unlink()
            (self.path / "markers" / f"{i:05d}.json").unlink(missing_ok=True)
        if self.executor.kind == "slurm":
            limit = slurm.max_array_size()
            for lo in range(0, len(indices), limit):
                batch = indices[lo:lo + limit]
                base = batch[0] - batch[0] % limit
                part = [i for i in batch if i - base < limit]
                rest = [i for i in batch if i - base >= limit]
                for group, gbase in ((part, base), (rest, base + limit)):
                    if group:
                        self._submit_slurm(group, gbase)
        else:
            self._submit_local(indices)
        self.manifest["cancelled"] = False
        self._save()
        return self

    def _submit_slurm(self, indices: list[int], base: int) -> None:
        attempt = len(self.manifest["submissions"])
        log = f"{slurm.literal(str(self.path / 'logs'))}/%a-{base}-{attempt}-%A.log"
        job_id = slurm.submit_array(str(self.path / "job.sh"), [i - base for i in indices],
                                    self.manifest["name"], log,
                                    [*self.executor.args(), f"--chdir={self.path}",
                                     f"--export=ALL,BAMCOVER_ARRAY_BASE={base},"
                                     f"BAMCOVER_ATTEMPT={attempt}"])
        self.manifest["submissions"].append({"job_id": job_id, "base": base,
                                             "indices": indices, "time": time.time(),
                                             "attempt": attempt})

    def _submit_local(self, indices: list[int]) -> None:
        attempt = len(self.manifest["submissions"])
        log = self.path / "logs" / f"local-{attempt}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bamcover.tasks", "run-local", str(self.path),
                 str(attempt), *map(str, indices)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.path)
        self.manifest["submissions"].append({"pid": proc.pid, "indices": indices,
                                             "time": time.time(), "attempt": attempt,
                                             "log": str(log)})

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
            fd = _own_file(path)
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
                name not in {f"{i:05d}{ext}" for ext in (".npz", ".parquet", ".json")}:
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
        fd = _own_file(path)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, record["sha256"])
            if not read and self._checked.get(i) == key:
                return None
            if st.st_size != record["size"]:
                raise BamcoverError(f"{path.name} has {st.st_size} bytes; its job wrote "
                                    f"{record['size']} (truncated or replaced since)")
            data = fh.read() if read else None
            digest = hashlib.sha256(data).hexdigest() if read else _sha256(fd)
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
        if _shapes(obj, suffix) != wanted:
            raise BamcoverError(f"{record['name']}: shapes differ from those its job recorded")
        return obj

    def reject(self, i: int, why: str) -> None:
        """Mark chunk ``i``'s result as bad in its marker: it is FAILED from now on (so
        ``resubmit`` redoes it)."""
        marker = self._marker(i)
        self._checked.pop(i, None)
        if marker and "untrusted" not in marker:
            _write_json(self.path / "markers" / f"{i:05d}.json", {**marker, "rejected": why})

    def result_path(self, i: int) -> Path | None:
        found = sorted((self.path / "results").glob(f"{i:05d}.*"))
        found = [p for p in found if not p.name.startswith(".")]
        return found[0] if found else None

    def status(self) -> pd.DataFrame:
        """One row per chunk: state, job id, exit code, elapsed, node, log, error/log tail."""
        latest = self._latest()
        slurm_view: dict[int, dict[int, slurm.JobInfo]] = {}
        if self.executor.kind == "slurm" and slurm.available():
            for sub in self.manifest["submissions"]:
                slurm_view[sub["job_id"]] = slurm.query(sub["job_id"], self.manifest["name"])
        rows = []
        for i in range(self.n_chunks):
            sub = latest.get(i)
            marker = self._marker(i)
            row = {"chunk": i, "state": "NOT_SUBMITTED", "job_id": None, "exit_code": None,
                   "elapsed": "", "node": "", "log": "", "error": ""}
            if sub is not None:
                row.update(self._chunk_state(i, sub, marker, slurm_view))
            rows.append(row)
        table = pd.DataFrame(rows).set_index("chunk")
        table["exit_code"] = table["exit_code"].astype("Int64")
        return table

    def _chunk_state(self, i, sub, marker, slurm_view) -> dict:
        ours = marker if marker and marker.get("attempt") == sub["attempt"] else None
        row: dict = {}
        if "job_id" in sub:
            row["job_id"] = f"{sub['job_id']}_{i - sub['base']}"
            logs = sorted((self.path / "logs").glob(
                f"{i - sub['base']}-{sub['base']}-{sub['attempt']}-*.log"))
            row["log"] = str(logs[-1]) if logs else ""
        else:
            row["job_id"] = f"local:{sub['pid']}"
            row["log"] = sub["log"]
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
        info = None
        if "job_id" in sub:
            info = slurm_view.get(sub["job_id"], {}).get(i - sub["base"])
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
        elif "pid" in sub and pid_alive(sub["pid"]):
            row["state"] = "RUNNING" if ours else "PENDING"
        elif self.manifest.get("cancelled"):
            row["state"] = "CANCELLED"
        elif "job_id" in sub and time.time() - sub["time"] < 5:
            row["state"] = "PENDING"     # not yet visible to squeue
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
        """Block until no chunk is pending or running (progress bar over chunks)."""
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
        """Chunk results by index, each checked against what its job recorded (and by
        ``check``, which raises BamcoverError for a result that is not the chunk's). A bad
        result is rejected: its chunk is FAILED. Refuses an incomplete task unless
        ``permissive``, which leaves such chunks out."""
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
        """The reduced result of all chunks (see ``reduce_results``)."""
        results = self.results(permissive)
        if not results:
            raise BamcoverError(f"task {self.id}: no chunk has a result")
        return reduce_results([results[i] for i in sorted(results)], self.manifest["reduce"])

    # control ----------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel every chunk still queued or running."""
        self.manifest["cancelled"] = True
        self._save()
        for sub in self.manifest["submissions"]:
            if "job_id" in sub:
                slurm.cancel(sub["job_id"])
            elif pid_alive(sub["pid"]):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(sub["pid"], signal.SIGTERM)

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
        _indexed(self.id)           # prunes the index entry, now stale


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
           executor: SlurmExecutor | LocalExecutor | None = None,
           workdir: str | os.PathLike | None = None) -> Task:
    """Run ``func(**item)`` for every item as a task; ``reduce`` combines results
    (``sum``, ``concat``, ``list`` or ``module:function``). ``func`` must be importable."""
    return Task.create(func, items, reduce=reduce, executor=executor, workdir=workdir).submit()


def index_dir() -> Path:
    """This user's index of submitted tasks: ``$XDG_STATE_HOME/bamcover/tasks`` (by
    default ``~/.local/state/bamcover/tasks``), one file per task id holding its path."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):         # unset, empty or relative: the XDG default
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "bamcover" / "tasks"


def _index(task: Task) -> None:
    """Remember ``task`` in the index so that its id works from any directory; a home that
    cannot be written only costs that convenience."""
    root = index_dir()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = root / f".{task.id}.{os.getpid()}.tmp"
        tmp.write_text(f"{task.path}\n")
        os.replace(tmp, root / task.id)
    except OSError as exc:
        logging.getLogger("bamcover").warning(
            "task %s not indexed (%s); find it by its path", task.id, exc)


def _indexed(task_id: str) -> Task | None:
    """The indexed task ``task_id``; an entry whose directory is gone (or holds another
    task) is pruned."""
    entry = index_dir() / task_id
    try:
        path = Path(entry.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None
    try:
        task = Task(path)
        if task.id == task_id:
            return task
    except (BamcoverError, OSError, ValueError):
        pass
    with contextlib.suppress(OSError):
        entry.unlink()
    return None


def _is_id(name: str) -> bool:
    return bool(name) and name[0] != "." and os.sep not in name


def list_tasks(workdir: str | os.PathLike | None = None, indexed: bool = True) -> list[Task]:
    """The tasks under ``workdir`` and, with ``indexed``, every task of this user's index
    (submitted from anywhere), by id (that is, by submission time)."""
    found: dict[Path, Task] = {}
    root = Path(workdir or DEFAULT_WORKDIR)
    if root.is_dir():
        for p in root.iterdir():
            if (p / "manifest.json").exists():
                task = Task(p)
                found[task.path] = task
    if indexed and index_dir().is_dir():
        for entry in index_dir().iterdir():
            task = _indexed(entry.name) if _is_id(entry.name) else None
            if task is not None:
                found.setdefault(task.path, task)
    return sorted(found.values(), key=lambda t: (t.id, str(t.path)))


def find(task: str | os.PathLike, workdir: str | os.PathLike | None = None) -> Task:
    """A task by path, by id under ``workdir``, or by id from this user's index."""
    candidate = Path(task)
    if (candidate / "manifest.json").exists():
        return Task(candidate)
    candidate = Path(workdir or DEFAULT_WORKDIR) / str(task)
    if (candidate / "manifest.json").exists():
        return Task(candidate)
    found = _indexed(str(task)) if _is_id(str(task)) else None
    if found is not None:
        return found
    raise BamcoverError(f"{task}: no such task (neither a task directory, nor an id under "
                        f"{workdir or DEFAULT_WORKDIR} or in {index_dir()})")


# --- helpers -------------------------------------------------------------------------------

def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def _write_script(path: Path, manifest: dict) -> None:
    """The job script: every value that reaches the shell is quoted."""
    script = "\n".join([
        "#!/bin/bash",
        f"# bamcover task {manifest['id']} (generated; bamcover {__version__})",
        f"exec {shlex.quote(manifest['python'])} -m bamcover.tasks run "
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


# --- the worker side ------------------------------------------------------------------------

def _on_sigterm(signum, frame):
    raise Terminated()


def run_chunk(task_path: str, i: int, attempt: int) -> int:
    """Run chunk ``i`` (submission ``attempt``) of a task here; writes its marker and
    result. Returns the exit code."""
    task = Task(task_path)
    marker_path = task.path / "markers" / f"{i:05d}.json"
    marker = {"host": socket.gethostname(), "pid": os.getpid(), "start": time.time(),
              "attempt": attempt, "job_id": os.environ.get("SLURM_ARRAY_JOB_ID")}
    _write_json(marker_path, marker)
    terminated = "terminated by SIGTERM (scancel or time limit)"

    def on_sigterm(signum, frame):
        # Slurm may signal more than once and sends SIGKILL KillWait seconds later, so
        # record the cancellation now and ignore repeats while pools shut down.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _write_json(marker_path, {**marker, "end": time.time(), "exit_code": 143,
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
        _write_json(marker_path, marker)
    signal.signal(signal.SIGTERM, previous)
    print(f"bamcover task {task.id} chunk {i}: exit {code} {error}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
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
    print("usage: python -m bamcover.tasks run TASK_DIR INDEX ATTEMPT | "
          "run-local TASK_DIR ATTEMPT INDEX...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
