"""The local process pool: run a function over chunks on local cores, results in input
order, or fold chunks into one accumulator per worker process; progress bars, and whether
a process still runs."""

from __future__ import annotations

import contextlib
import os
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from .errors import BamcoverError

S = TypeVar("S")
T = TypeVar("T")


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "chunk"):
    """A tqdm bar on stderr; silent when disabled or when stderr is not a terminal."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm  # 40 ms of imports: runs without a bar skip them

    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False,
                dynamic_ncols=True)


class _NoBar:
    """What a disabled bar needs: a context manager with ``n``, ``update``, ``refresh``."""

    n = 0

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        self.n += n

    def refresh(self) -> None:
        pass


def map_local(func: Callable[[Any], Any], items: Sequence[Any], processes: int,
              progress: bool = False, desc: str = "bamcover") -> Iterator[Any]:
    """Yield ``func(item)`` for each item, in input order, using worker processes.

    Results stream back as they are ready so the caller can reduce them in O(chunk)
    memory; one process runs in this process. A worker that dies (OOM killer, SIGKILL)
    is an error, never a hang or a missing item.
    """
    processes = workers_for(processes, items)
    with progress_bar(len(items), desc, progress) as bar:
        if processes == 1:
            for item in items:
                yield func(item)
                bar.update()
            return
        waiting: dict[int, Any] = {}
        following = 0
        # closing(): a consumer that stops early still stops the workers
        with contextlib.closing(_run_workers(lambda: (func, _nothing), items, processes)) as run:
            for kind, value in run:
                if kind != "item":
                    continue
                waiting[value[0]] = value[1]
                bar.update()
                while following in waiting:
                    yield waiting.pop(following)
                    following += 1


def _nothing() -> None:
    return None


def _default_signals(parent: int) -> None:
    """Workers die on SIGTERM and SIGHUP (the parent may have handlers that raise), and
    with their parent: a parent killed outright (SIGKILL, OOM killer) must not leave them
    blocked on the queues forever."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)     # PR_SET_PDEATHSIG (Linux)
    if os.getppid() != parent:                      # the parent died before prctl
        os._exit(1)


class WorkerDied(BamcoverError):
    """A worker process ended without its result (killed by a signal, e.g. the OOM
    killer): one line, never a hang or a traceback."""

    def __init__(self, code: int):
        import signal

        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            why = f"was killed by {name}"
            if -code == signal.SIGKILL:
                why += " (out of memory? try fewer --processes or a larger --mem)"
        else:
            why = f"ended with exit code {code}"
        super().__init__(f"a worker process {why} before sending its result; "
                         "no output written")
        self.code = code


def starmap_local(func: Callable[..., Any], items: Iterable[Any], *args: Any,
                  processes: int = 1) -> list[Any]:
    """``[func(item, *args) for item in items]`` on a parmap pool (small task lists)."""
    import parmap

    items = list(items)
    return parmap.map(func, items, *args, pm_processes=max(1, min(processes, len(items))),
                      pm_parallel=processes > 1 and len(items) > 1)


def fold_local(new: Callable[[], S], add: Callable[[S, T], None], items: Sequence[T],
               processes: int, progress: bool = False, desc: str = "bamcover") -> list[S]:
    """Fold ``items`` into accumulators: ``add(state, item)`` for each item, each worker
    process taking the next item whenever it is free and sending back its one ``new()``
    state at the end. Returns the states (one per worker that ran; one process folds here).

    For reductions whose per-item results are large but whose accumulator is not: a
    worker folds all its items before anything is pickled. ``add`` must not depend on
    which items share a state (merging the states must give the same result).
    """
    processes = workers_for(processes, items)
    if processes == 1:
        state = new()
        with progress_bar(len(items), desc, progress) as bar:
            for item in items:
                add(state, item)
                bar.update()
        return [state]
    with progress_bar(len(items), desc, progress) as bar:
        states = []
        for kind, value in _run_workers(lambda: _folder(new, add), items, processes):
            if kind == "item":
                bar.update()
            else:
                states.append(value)
    return states


def _folder(new: Callable[[], S], add: Callable[[S, T], None]):
    state = new()
    return (lambda item: add(state, item)), (lambda: state)


# The parent never blocks longer than this, so its SIGTERM handler runs promptly even when
# the kernel delivered the signal to one of its helper threads.
_POLL = 0.2


def _run_workers(start: Callable[[], tuple[Callable, Callable]], items: Sequence[Any],
                 processes: int) -> Iterator[tuple[str, Any]]:
    """Run ``processes`` forked workers over ``items``; yield their messages.

    Each worker calls ``start()`` once for ``(work, finish)``, then takes item indices
    from a queue, sending ``("item", (i, work(items[i])))`` for each and
    ``("end", finish())`` when the queue runs dry. A worker's exception is re-raised
    here; a worker that ends without its "end" message is a :class:`WorkerDied`.
    """
    # imported here: a one-process run never needs them (12 ms of every start-up)
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("fork")       # workers inherit items and functions, nothing pickled
    todo, done = ctx.Queue(), ctx.Queue()
    for i in range(len(items)):
        todo.put(i)
    for _ in range(processes):
        todo.put(None)
    workers = [ctx.Process(target=_worker, args=(start, items, todo, done, i, os.getpid()),
                           daemon=True)
               for i in range(processes)]
    try:
        for w in workers:
            w.start()
        ended = 0
        last_look = False
        while ended < processes:
            try:
                kind, value = done.get(timeout=_POLL)
            except queue.Empty:
                codes = [w.exitcode for w in workers]
                if None not in codes or any(codes):      # nothing more can come…
                    if last_look:                        # …once the pipe is drained
                        raise WorkerDied(next((c for c in codes if c), 0)) from None
                    last_look = True
                continue
            if kind == "error":
                raise value
            ended += kind == "end"
            yield kind, value
        for w in workers:
            w.join()
    finally:
        for w in workers:
            if w.pid is not None and w.is_alive():
                w.terminate()
                w.join()


_WORKER: int | None = None


def worker_index() -> int | None:
    """In a worker process of :func:`fold_local` or :func:`map_local` (and anything it
    calls): its number, from 0 to :func:`workers_for` - 1, so that it can use what the
    parent prepared for it; None in the parent."""
    return _WORKER


def workers_for(processes: int, items: Sequence[Any]) -> int:
    """How many processes :func:`fold_local` and :func:`map_local` run for ``items``."""
    return max(1, min(processes, len(items)))


def _worker(start, items, todo, done, index, parent) -> None:
    global _WORKER
    _WORKER = index
    _default_signals(parent)
    try:
        work, finish = start()
        while (i := todo.get()) is not None:
            done.put(("item", (i, work(items[i]))))
        done.put(("end", finish()))
    except BaseException as exc:  # noqa: BLE001 - the parent re-raises it
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - unpicklable: send its text
            exc = RuntimeError("".join(traceback.format_exception_only(exc)).strip())
        done.put(("error", exc))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, or our own child that has
    ended, does not)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)   # reap our own finished runner
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(")")[-1].split()[0] == "Z":
                return False
    return True
