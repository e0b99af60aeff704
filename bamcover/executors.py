"""Executors: run a function over chunks on local cores, results in input order, or fold
chunks into one accumulator per worker process."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import parmap
from tqdm.auto import tqdm

S = TypeVar("S")
T = TypeVar("T")


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "chunk"):
    """A tqdm bar on stderr; silent when disabled or when stderr is not a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True,
                leave=False, dynamic_ncols=True)


def map_local(func: Callable[[Any], Any], items: Sequence[Any], processes: int,
              progress: bool = False, desc: str = "bamcover") -> Iterator[Any]:
    """Yield ``func(item)`` for each item, in input order, using a process pool.

    Results stream back as they are ready so the caller can reduce them in O(chunk)
    memory; one process runs in this process, without a pool.
    """
    with progress_bar(len(items), desc, progress) as bar:
        if processes <= 1 or len(items) <= 1:
            for item in items:
                yield func(item)
                bar.update()
            return
        ctx = mp.get_context("fork")
        with ctx.Pool(min(processes, len(items)), initializer=_default_signals) as pool:
            for result in pool.imap(func, items, chunksize=1):
                yield result
                bar.update()


def _default_signals() -> None:
    """Pool workers die on SIGTERM (the parent may have a handler that raises)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def starmap_local(func: Callable[..., Any], items: Iterable[Any], *args: Any,
                  processes: int = 1) -> list[Any]:
    """``[func(item, *args) for item in items]`` on a parmap pool (small task lists)."""
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
    processes = max(1, min(processes, len(items)))
    if processes == 1:
        state = new()
        with progress_bar(len(items), desc, progress) as bar:
            for item in items:
                add(state, item)
                bar.update()
        return [state]
    ctx = mp.get_context("fork")       # workers inherit items and functions, nothing pickled
    todo, done = ctx.Queue(), ctx.Queue()
    for i in range(len(items)):
        todo.put(i)
    for _ in range(processes):
        todo.put(None)
    workers = [ctx.Process(target=_fold_worker, args=(new, add, items, todo, done), daemon=True)
               for _ in range(processes)]
    for w in workers:
        w.start()
    states: list[S] = []
    try:
        with progress_bar(len(items), desc, progress) as bar:
            while len(states) < processes:
                try:
                    kind, value = done.get(timeout=1)
                except queue.Empty:
                    codes = [w.exitcode for w in workers]
                    if None not in codes or any(codes):      # nothing more can come
                        bad = next((c for c in codes if c), 0)
                        raise RuntimeError(f"a worker process ended without its result "
                                           f"(exit code {bad})") from None
                    continue
                if kind == "item":
                    bar.update()
                elif kind == "state":
                    states.append(value)
                else:
                    raise value
        for w in workers:
            w.join()
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
                w.join()
    return states


def _fold_worker(new, add, items, todo, done) -> None:
    _default_signals()
    try:
        state = new()
        while (i := todo.get()) is not None:
            add(state, items[i])
            done.put(("item", None))
        done.put(("state", state))
    except BaseException as exc:  # noqa: BLE001 - the parent re-raises it
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - unpicklable: send its text
            exc = RuntimeError("".join(traceback.format_exception_only(exc)).strip())
        done.put(("error", exc))
