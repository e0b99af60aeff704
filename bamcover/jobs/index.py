"""This user's index of submitted tasks, so that a task's id works from any directory:
``$XDG_STATE_HOME/bamcover/tasks`` (by default ``~/.local/state/bamcover/tasks``), one
file per task id holding its path."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path


def index_dir() -> Path:
    """Where the index lives.

    Returns
    -------
    Path
        ``$XDG_STATE_HOME/bamcover/tasks``; ``~/.local/state/bamcover/tasks`` when
        ``XDG_STATE_HOME`` is unset, empty or relative.
    """
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):         # unset, empty or relative: the XDG default
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "bamcover" / "tasks"


def remember(task_id: str, path: Path) -> None:
    """Index a task; a home that cannot be written only costs that convenience (a
    warning).

    Parameters
    ----------
    task_id : str
        The task's id.
    path : Path
        Its directory.
    """
    root = index_dir()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = root / f".{task_id}.{os.getpid()}.tmp"
        tmp.write_text(f"{path}\n")
        os.replace(tmp, root / task_id)
    except OSError as exc:
        logging.getLogger("bamcover").warning(
            "task %s not indexed (%s); find it by its path", task_id, exc)


def lookup(task_id: str) -> Path | None:
    """The directory the index holds for a task id.

    Parameters
    ----------
    task_id : str
        The task's id.

    Returns
    -------
    Path or None
        The path it was indexed with (it may be gone since); None if it is not indexed.
    """
    try:
        return Path((index_dir() / task_id).read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None


def forget(task_id: str) -> None:
    """Drop a task's entry (there may be none).

    Parameters
    ----------
    task_id : str
        The task's id.
    """
    with contextlib.suppress(OSError):
        (index_dir() / task_id).unlink()


def is_id(name: str) -> bool:
    """Whether ``name`` can be an entry of the index (not a path, not a temporary file).

    Parameters
    ----------
    name : str
        A task id, or anything a user typed.

    Returns
    -------
    bool
        True for a plain file name not starting with a dot.
    """
    return bool(name) and name[0] != "." and os.sep not in name


def ids() -> list[str]:
    """The task ids in the index.

    Returns
    -------
    list of str
        Every entry's name that :func:`is_id` accepts, in directory order.
    """
    root = index_dir()
    return [p.name for p in root.iterdir() if is_id(p.name)] if root.is_dir() else []
