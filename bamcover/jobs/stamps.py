"""Stamps of a task's input files (path, size, mtime), taken at submission: a job refuses
inputs changed since, and outputs collected later record the inputs as they were."""

from __future__ import annotations

import os


def input_stamp(path: str) -> dict:
    """The stamp of an input file as it is now.

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    dict
        ``path`` (absolute), ``size`` and ``mtime``.
    """
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime": st.st_mtime}


def unchanged(stamp: dict) -> bool:
    """Whether an input is still there as its stamp describes it.

    Parameters
    ----------
    stamp : dict
        A stamp from :func:`input_stamp`.

    Returns
    -------
    bool
        True when the file exists with the stamp's size and mtime.
    """
    try:
        now = input_stamp(stamp["path"])
    except OSError:
        return False
    return (now["size"], now["mtime"]) == (stamp["size"], stamp["mtime"])
