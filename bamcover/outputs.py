"""Writing tables: formats by file suffix, always atomically (temporary file + rename).

Every file a run writes goes through :func:`atomic_path`. Inside :func:`all_or_nothing`
the renames wait until the whole run has succeeded, so a failure (or a signal) leaves
none of its outputs; temporaries are named ``.<name>.bamcover-<host>-<pid>-<hex>.tmp``
so that one left by a killed run is recognised and removed by the next run writing the
same path. Targets that are not regular files (``/dev/null``, FIFOs, devices) are
written straight through, never replaced.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import gzip
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from . import text
from ._lazy import is_frame, pd
from .errors import BamcoverError
from .pool import pid_alive
from .schema import BAM_SUFFIX, GZ_SUFFIX, INDEX_SUFFIXES, PARQUET_SUFFIX, separator
from .text import GZIP_LEVEL

PROVENANCE_SUFFIX = ".provenance.json"


def is_stdout(path: str | os.PathLike | None) -> bool:
    """``None`` and ``'-'`` mean standard output."""
    return path is None or os.fspath(path) == "-"


def is_special(path: str | os.PathLike) -> bool:
    """True for an existing target that is not a regular file (``/dev/null``, a FIFO, a
    device, or a link to one): it is written straight through, never replaced."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_writable(path: str | os.PathLike | None) -> None:
    """Fail before any work if ``path`` cannot be written ('-'/None is stdout)."""
    if is_stdout(path):
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise BamcoverError(f"{path}: is a directory, cannot write the output there")
    if is_special(path):
        if not os.access(path, os.W_OK):
            raise BamcoverError(f"{path}: cannot write output, permission denied")
        return
    if not os.path.isdir(directory):
        raise BamcoverError(f"{path}: cannot write output, directory {directory} does not exist")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise BamcoverError(f"{path}: cannot write output, permission denied")


def check_distinct(outputs: dict[str, str | os.PathLike | None]) -> None:
    """Fail before any work if two options name the same output file (one would be
    silently overwritten by the other); stdout ('-') may be named once. Targets that are
    not regular files (``/dev/null``) may be named more than once."""
    seen: dict[object, str] = {}
    for option, path in outputs.items():
        if path is None or (not is_stdout(path) and is_special(path)):
            continue
        key = "-" if is_stdout(path) else _identity(path)
        if key in seen:
            raise BamcoverError(f"{path}: {seen[key]} and {option} name the same output; "
                                "give each its own file")
        seen[key] = option


def _identity(path: str | os.PathLike) -> object:
    """What makes two paths one file: device and inode when it exists (symlinks, hard
    links, ``./x`` and ``x``), else the resolved path."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return os.path.realpath(path)


def with_indexes(inputs: Iterable[str | os.PathLike | None]) -> list[str]:
    """``inputs`` and the BAM indexes that may sit beside them (existing files only;
    stdin '-' and None are left out)."""
    out = []
    for p in inputs:
        if p is None or os.fspath(p) == "-":
            continue
        p = os.fspath(p)
        out.append(p)
        stem = p[:-len(BAM_SUFFIX)] if p.lower().endswith(BAM_SUFFIX) else None
        out += [c for s in INDEX_SUFFIXES for c in (p + s, stem + s if stem else None)
                if c and os.path.exists(c)]
    return out


def check_outputs(outputs: Mapping[str, str | os.PathLike | None],
                  inputs: Iterable[str | os.PathLike | None] = (),
                  provenance: bool = True) -> None:
    """Everything that can be known before any work about a run's file outputs: each is
    writable, no two are the same file, and none (nor the ``<output>.provenance.json``
    written beside it) is one of ``inputs`` or a BAM index beside them, by file identity.

    Parameters
    ----------
    outputs
        Option name (as the user typed it, for the message) → path; None/'-' is stdout.
    inputs
        Every file the run reads.
    provenance
        Whether a provenance record is written beside each regular-file output.

    Raises
    ------
    BamcoverError
        One line naming the output, the option and the file it would destroy.
    """
    named = {}
    for option, path in outputs.items():
        if path is None:
            continue
        check_writable(path)
        named[option] = path
        if provenance and not is_stdout(path) and not is_special(path):
            side = os.fspath(path) + PROVENANCE_SUFFIX
            check_writable(side)
            named[f"{option} (its provenance record)"] = side
    check_distinct(named)
    sources = {_identity(p): os.fspath(p) for p in with_indexes(inputs)}
    for option, path in named.items():
        if is_stdout(path) or not os.path.exists(path) or is_special(path):
            continue
        hit = sources.get(_identity(path))
        if hit is not None:
            raise BamcoverError(f"{path}: {option} names the input {hit}; writing it would "
                                "destroy the input, give another output path")


# --- atomic writes ------------------------------------------------------------------------

class _Batch:
    """Temporaries of one run waiting to be renamed into place together."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def discard(self) -> None:
        for tmp, _ in self.pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.pending.clear()

    def commit(self) -> None:
        mode = 0o666 & ~_umask()
        for tmp, _ in self.pending:
            os.chmod(tmp, mode)
        for tmp, final in self.pending:
            os.replace(tmp, final)
        self.pending.clear()


_BATCH: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("bamcover_batch",
                                                                       default=None)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Every :func:`atomic_path` inside is renamed into place only when the block ends
    without an exception; otherwise (an error, KeyboardInterrupt, a signal turned into an
    exception) every temporary is removed and no output of the block appears."""
    batch = _Batch()
    token = _BATCH.set(batch)
    try:
        yield
    except BaseException:
        batch.discard()
        raise
    else:
        try:
            batch.commit()
        finally:
            batch.discard()
    finally:
        _BATCH.reset(token)


_TEMP = re.compile(r"\.bamcover-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def _temporary(directory: str, name: str) -> str:
    """A new, empty temporary beside ``name``, after removing this host's temporaries of
    the same output whose process is gone (a SIGKILL leaves them)."""
    import glob  # here, not at the top: 7 ms of the command's start-up
    import secrets
    import socket

    host = socket.gethostname()
    for old in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(name)}.bamcover-*")):
        m = _TEMP.search(old)
        if m and m["host"] == host and not pid_alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(old)
    while True:
        tmp = os.path.join(directory, f".{name}.bamcover-{host}-{os.getpid()}-"
                                      f"{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it into place only on success
    (inside :func:`all_or_nothing`: when the whole run succeeds). A target that is not a
    regular file is yielded itself and written straight through; a symlink to a regular
    file has its target replaced. An ``OSError`` while writing becomes one line naming
    ``path``."""
    path = os.fspath(path)
    if is_special(path):
        with _naming(path):
            yield path
        return
    final = os.path.realpath(path)
    directory, name = os.path.split(final)
    with _naming(path):
        tmp = _temporary(directory, name)
    try:
        with _naming(path):
            yield tmp
        batch = _BATCH.get()
        if batch is not None:
            batch.pending.append((tmp, final))
            return
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """An OSError raised while writing ``path`` (disk full says only "[Errno 28]") as one
    line naming the output."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            why = "no space left on the device"
        raise BamcoverError(f"{path}: cannot write the output: {why}") from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_table(df: pd.DataFrame | Mapping[str, np.ndarray], path: str | os.PathLike | None,
                index: bool = False, attrs: Mapping | None = None, threads: int = 1) -> None:
    """Write ``df`` as TSV (``.csv``: CSV; ``.gz``: gzipped; ``.parquet``: parquet) to
    ``path`` atomically, or as TSV to stdout when ``path`` is None or '-'.

    float32 columns (integer counts) are written without a trailing '.0'; float64 ones
    with full precision. ``df`` may also be a mapping of numpy columns (with ``attrs`` for
    parquet's metadata): as text, integer and float64 columns are then written without
    pandas, in the bytes pandas writes for the same DataFrame. ``threads``: text matrices
    are formatted (and gzipped) in parts on this many threads; the bytes are the same.
    A gzipped matrix is a series of gzip members, one per part."""
    if not is_frame(df):
        if _write_columns_text(df, path):
            return
        df = pd.DataFrame(dict(df))
        df.attrs.update(attrs or {})
    fmt = "%.9g" if any(df.dtypes == "float32") else None
    if is_stdout(path):
        df.to_csv(sys.stdout, sep="\t", index=index, na_rep="nan", float_format=fmt)
        return
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        if path.endswith(PARQUET_SUFFIX):
            out = df.reset_index() if index else df
            out.columns = [str(c) for c in out.columns]
            _write_parquet(out, tmp)
        else:
            sep = separator(path)
            gz = path.endswith(GZ_SUFFIX)
            if index or not text.write_counts_text(df, tmp, sep, gz, threads):
                df.to_csv(tmp, sep=sep, index=index, na_rep="nan", float_format=fmt,
                          compression={"method": "gzip", "compresslevel": GZIP_LEVEL}
                          if gz else None)


def write_stdout(data: bytes, piece: int = 1 << 20) -> None:
    """Write ``data`` to stdout in pieces: CPython's buffered writer returns from one huge
    write into a pipe whose reader has gone without raising, and the run would end as if
    it had been read; a piece raises BrokenPipeError, which the CLI ends quietly."""
    sys.stdout.flush()
    out = sys.stdout.buffer
    for start in range(0, len(data), piece):
        out.write(data[start:start + piece])
    out.flush()


def _write_columns_text(columns: Mapping[str, np.ndarray], path: str | os.PathLike | None
                        ) -> bool:
    """Text output of integer and float64 numpy columns as pandas' ``to_csv`` writes them
    (``astype(str)``: shortest round-trip digits, 'nan'), to ``path`` atomically or to
    stdout. Returns False, writing nothing, for parquet or any other column."""
    path = "-" if path is None else os.fspath(path)
    names = [str(c) for c in columns]
    sep = separator(path)
    values = [np.asarray(v) for v in columns.values()]
    if path.endswith(PARQUET_SUFFIX) or not text.plain_names(names, sep) or \
            not all(v.ndim == 1 and (v.dtype.kind in "iu" or v.dtype == np.float64)
                    for v in values):
        return False
    lines = [sep.join(names)]
    lines += (sep.join(row) for row in zip(*(v.astype(str) for v in values), strict=True))
    data = "\n".join(lines) + "\n"
    if path == "-":
        write_stdout(data.encode())
        return True
    with atomic_path(path) as tmp:
        if path.endswith(GZ_SUFFIX):
            with gzip.open(tmp, "wt", compresslevel=GZIP_LEVEL) as out:
                out.write(data)
        else:
            with open(tmp, "w") as out:
                out.write(data)
    return True


def _write_parquet(df: pd.DataFrame, path: str) -> None:
    """``df.to_parquet(path, index=False)``: the same table (schema, pandas metadata,
    attrs, NaN stored as null), without pyarrow's NaN scan of every float value where a
    column has no NaN. The float columns are handed over as they lie in memory, one sum
    per column telling which hold NaN."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    if not df.columns.is_unique:
        df.to_parquet(path, index=False)          # pandas' own error
        return
    dtypes = list(df.dtypes)
    floats = [i for i, t in enumerate(dtypes) if isinstance(t, np.dtype) and t.kind == "f"]
    if len({dtypes[i] for i in floats}) > 1:
        floats = []                               # mixed widths: pyarrow's way
    schema = _arrow_schema(df, floats)
    block = df.iloc[:, floats].to_numpy().T       # a view when they share a pandas block
    with np.errstate(all="ignore"):
        # NaN + anything is NaN; an inf - inf only sends a column down the slow path
        nan = dict(zip(floats, np.isnan(block.sum(axis=1)), strict=True))
    where = {i: k for k, i in enumerate(floats)}
    arrays = [pa.array(block[where[i]], type=field.type, from_pandas=bool(nan[i]))
              if i in where else pa.array(df.iloc[:, i], type=field.type, from_pandas=True)
              for i, field in enumerate(schema)]
    table = pa.Table.from_arrays(arrays, schema=schema)
    if df.attrs:                                  # as pandas stores them
        table = table.replace_schema_metadata(
            {**table.schema.metadata, "PANDAS_ATTRS": json.dumps(df.attrs)})
    pq.write_table(table, path, compression="snappy")


def _arrow_schema(df: pd.DataFrame, floats: list[int]):
    """``pa.Schema.from_pandas(df, preserve_index=False)`` when the columns ``floats``
    share one dtype: their field and pandas-metadata entry are made once and named for
    each (pyarrow would look every column up through pandas, one at a time)."""
    import json

    import pyarrow as pa

    if not floats:
        return pa.Schema.from_pandas(df, preserve_index=False)
    is_float = np.zeros(df.shape[1], bool)
    is_float[floats] = True
    other = np.flatnonzero(~is_float)
    small = pa.Schema.from_pandas(df.iloc[:, [*other, floats[0]]], preserve_index=False)
    meta = json.loads(small.metadata[b"pandas"])
    entries, fields = meta["columns"], list(small)
    at = dict(zip(other.tolist(), range(len(other)), strict=True))
    meta["columns"], out = [], []
    for i, name in enumerate(df.columns):
        k = len(other) if is_float[i] else at[i]
        meta["columns"].append({**entries[k], "name": name, "field_name": name}
                               if is_float[i] else entries[k])
        out.append(fields[k].with_name(name) if is_float[i] else fields[k])
    return pa.schema(out, metadata={**small.metadata, b"pandas": json.dumps(meta).encode()})


def provenance(command: dict, inputs: list[str], options: dict | None = None,
               library_sizes: dict | None = None, extra: dict | None = None) -> dict:
    """What made an output: bamcover version, command, options, input sizes and mtimes,
    and the library sizes used for normalisation."""
    import platform
    import time

    from .version import __version__

    stamps = []
    for path in inputs:
        if os.fspath(path) == "-":
            stamps.append({"path": "<stdin>"})
            continue
        try:
            st = os.stat(path)
            stamps.append({"path": os.path.abspath(path), "size": st.st_size,
                           "mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                  time.localtime(st.st_mtime))})
        except OSError:
            stamps.append({"path": os.path.abspath(path)})
    return {"bamcover_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command, "python": platform.python_version(), "options": options or {},
            "inputs": stamps, "library_sizes": library_sizes or {}, **(extra or {})}


def write_provenance(output: str | os.PathLike | None, record: dict) -> None:
    """``<output>.provenance.json`` beside a file output (nothing for stdout or for a
    target that is not a regular file, such as ``/dev/null``)."""
    import json

    if is_stdout(output) or is_special(output):
        return
    with atomic_path(os.fspath(output) + PROVENANCE_SUFFIX) as tmp:
        with open(tmp, "w") as fh:
            json.dump(record, fh, indent=1, default=str)
