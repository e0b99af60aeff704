"""Executors: run a function over chunks on local cores, results in input order."""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import parmap
from tqdm.auto import tqdm


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
