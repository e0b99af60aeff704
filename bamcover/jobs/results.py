"""The files a job writes into its task directory, and the checks made on them.

A chunk's result is npz (arrays), parquet (a table) or JSON (anything else), never
pickle. Its job records in its marker the result's name, size, sha256 and shapes
(:func:`result_record`); a reader trusts a file only if it is a regular file of this user
(:func:`own_file`) whose bytes are those recorded.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from .._lazy import pd
from ..errors import BamcoverError

#: the suffixes of a result file, one per format
SUFFIXES = (".npz", ".parquet", ".json")


def save_result(stem: Path, obj: Any) -> Path:
    """Write a chunk result atomically, in the format its type calls for.

    Parameters
    ----------
    stem : Path
        The result's path without suffix (``results/00003``).
    obj : Any
        A DataFrame (parquet), an array or a dict of arrays (npz), or anything JSON holds
        (a Counter stays a Counter).

    Returns
    -------
    Path
        The file written: ``stem`` with the format's suffix.
    """
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
    """Read a result file that :func:`save_result` wrote (unchecked).

    Parameters
    ----------
    path : Path
        The result file.

    Returns
    -------
    Any
        The result, as :func:`decode_result` gives it.
    """
    return decode_result(path.suffix, path.read_bytes())


def decode_result(suffix: str, data: bytes) -> Any:
    """A chunk result from the bytes of its file.

    Parameters
    ----------
    suffix : str
        The file's suffix, which says the format (``.npz``, ``.parquet``, ``.json``).
    data : bytes
        The file's bytes.

    Returns
    -------
    Any
        A DataFrame, an array (npz of one ``array``), a dict of arrays, a Counter or the
        JSON value.
    """
    if suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(data))
    if suffix == ".npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays["array"] if list(arrays) == ["array"] else arrays
    payload = json.loads(data)
    return collections.Counter(payload["counter"]) if "counter" in payload else payload["value"]


def result_record(path: Path, obj: Any, task_id: str, chunk: int) -> dict:
    """What a job records in its marker about the result it wrote, so that a reader can
    tell it from a file replaced, truncated or edited since.

    Parameters
    ----------
    path : Path
        The result file just written.
    obj : Any
        The result itself.
    task_id : str
        The task's id.
    chunk : int
        The chunk's index.

    Returns
    -------
    dict
        ``task``, ``chunk``, the file's ``name``, ``size`` and ``sha256``, and the shapes
        of its arrays (``arrays``) or table (``shape``).
    """
    with open(path, "rb") as fh:
        size, digest = os.fstat(fh.fileno()).st_size, sha256_of(fh.fileno())
    return {"task": task_id, "chunk": chunk, "name": path.name, "size": size,
            "sha256": digest, **shapes(obj, path.suffix)}


def sha256_of(fd: int) -> str:
    """The sha256 of what is left to read from a file descriptor, streamed.

    Parameters
    ----------
    fd : int
        An open file descriptor.

    Returns
    -------
    str
        The hex digest.
    """
    digest = hashlib.sha256()
    while block := os.read(fd, 1 << 22):
        digest.update(block)
    return digest.hexdigest()


def own_file(path: Path) -> int:
    """Open a file that must be a regular file of this user: never a symbolic link into
    another place, never a file another user put into a shared directory.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    int
        An open, read-only file descriptor of it.

    Raises
    ------
    BamcoverError
        The file is missing, a link, not a regular file, another user's, or keeps
        changing while it is checked.
    """
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


def shapes(obj: Any, suffix: str) -> dict:
    """The shape part of :func:`result_record` for a loaded result.

    Parameters
    ----------
    obj : Any
        The result.
    suffix : str
        Its file's suffix.

    Returns
    -------
    dict
        ``{"arrays": {name: [shape, dtype]}}`` for npz, ``{"shape": [...]}`` for parquet,
        nothing for JSON.
    """
    if suffix == ".npz":
        arrays = {"array": obj} if isinstance(obj, np.ndarray) else obj
        return {"arrays": {k: [list(v.shape), v.dtype.str] for k, v in arrays.items()}}
    return {"shape": list(obj.shape)} if suffix == ".parquet" else {}


def write_json(path: Path, obj: dict) -> None:
    """Write a manifest or marker atomically (a reader never sees half of it).

    Parameters
    ----------
    path : Path
        Where.
    obj : dict
        What.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)
