"""Finding tasks: by directory, by id under a work directory, or by id from this user's
index (:mod:`bamcover.jobs.index`), from any shell."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BamcoverError
from ..options import DEFAULT_WORKDIR
from . import index
from .task import Task


def indexed_task(task_id: str) -> Task | None:
    """The indexed task ``task_id``; an entry whose directory is gone (or holds another
    task) is pruned."""
    path = index.lookup(task_id)
    if path is None:
        return None
    try:
        task = Task(path)
        if task.id == task_id:
            return task
    except (BamcoverError, OSError, ValueError):
        pass
    index.forget(task_id)
    return None


def list_tasks(workdir: str | os.PathLike | None = None, indexed: bool = True) -> list[Task]:
    """The tasks of this user.

    Parameters
    ----------
    workdir : str or PathLike, optional
        Where to look for task directories (``bamcover-tasks``).
    indexed : bool
        Also every task of this user's index (submitted from anywhere); entries whose
        directory is gone are dropped.

    Returns
    -------
    list of Task
        By id, that is by submission time.
    """
    found: dict[Path, Task] = {}
    root = Path(workdir or DEFAULT_WORKDIR)
    if root.is_dir():
        for p in root.iterdir():
            if (p / "manifest.json").exists():
                task = Task(p)
                found[task.path] = task
    if indexed:
        for task_id in index.ids():
            task = indexed_task(task_id)
            if task is not None:
                found.setdefault(task.path, task)
    return sorted(found.values(), key=lambda t: (t.id, str(t.path)))


def find(task: str | os.PathLike, workdir: str | os.PathLike | None = None) -> Task:
    """A task by path, by id under ``workdir``, or by id from this user's index.

    Parameters
    ----------
    task : str or PathLike
        A task directory or a task id.
    workdir : str or PathLike, optional
        Where ids are looked up first (``bamcover-tasks``).

    Returns
    -------
    Task
        The task.

    Raises
    ------
    BamcoverError
        No such task.
    """
    candidate = Path(task)
    if (candidate / "manifest.json").exists():
        return Task(candidate)
    candidate = Path(workdir or DEFAULT_WORKDIR) / str(task)
    if (candidate / "manifest.json").exists():
        return Task(candidate)
    found = indexed_task(str(task)) if index.is_id(str(task)) else None
    if found is not None:
        return found
    raise BamcoverError(f"{task}: no such task (neither a task directory, nor an id under "
                        f"{workdir or DEFAULT_WORKDIR} or in {index.index_dir()})")
