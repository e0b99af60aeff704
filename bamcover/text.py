"""Text tables, fast: rows of text and numbers formatted by Arrow's CSV writer and the
compiled kernel in the bytes pandas writes, in parts (on threads, gzipped one member
each) for the millions of cells of a matrix."""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Mapping

import numpy as np

from . import kernels
from ._lazy import pd
from .kernels import matrix_rows

#: gzip's own default, not pandas' and Arrow's 9: several times faster for a file only a
#: little larger
GZIP_LEVEL = 6


def _quoted(sep: str) -> re.Pattern:
    """What pandas would quote in a field (our fast writers never quote)."""
    return re.compile(f'[{re.escape(sep)}"\n\r]')


def plain_names(names: list[str], sep: str) -> bool:
    """Whether column names can be written as they are.

    Parameters
    ----------
    names
        The header's names.
    sep
        The field separator.

    Returns
    -------
    bool
        True when they are distinct and none would be quoted by pandas.
    """
    special = _quoted(sep)
    return len(set(names)) == len(names) and not any(special.search(n) for n in names)


def write_counts_text(df: pd.DataFrame, path: str, sep: str, gz: bool, threads: int = 1
                       ) -> bool:
    """Write a table of counts in the bytes pandas writes, without pandas.

    Counts are integer columns, float32 columns holding whole numbers or NaN (a whole
    number's ``%.9g`` is its digits), and plain strings. Leading text and integer columns
    before a block of float32 ones (a matrix) go through :func:`write_parts`, in parts on
    threads; other tables through Arrow's C++ CSV writer in one piece.

    Parameters
    ----------
    df
        The table.
    path
        The file (a temporary the caller renames).
    sep
        The field separator.
    gz
        Gzip the file.
    threads
        Format (and gzip) a matrix's parts on this many threads.

    Returns
    -------
    bool
        False, for any other table, which the caller then writes with pandas.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    special = _quoted(sep)
    names = [str(c) for c in df.columns]
    if not plain_names(names, sep):
        return False
    floats = (df.dtypes == np.float32).tolist()
    lead = floats.index(True) if any(floats) else len(floats)
    if kernels.has_whole_rows() and 0 < lead < len(floats) and all(floats[lead:]):
        try:
            return _write_matrix_text(df, lead, names, path, sep, gz, threads)
        except _NotCounts:
            return False
    arrays = []
    for _, col in df.items():
        values = col.to_numpy()
        if values.dtype == np.float32:
            missing = np.isnan(values)
            whole = np.where(missing, 0, values)
            # %.9g prints a whole number below 1e9 as its digits ('-0' and 1e+09 are not)
            if not (np.array_equal(whole, np.round(whole)) and (np.abs(whole) < 1e9).all()
                    and not np.signbit(whole[whole == 0]).any()):
                return False
            arrays.append(pa.array(whole.astype(np.int64), mask=missing))
        elif (array := _text_array(values, special)) is not None:
            arrays.append(array)
        else:
            return False
    table = pa.Table.from_arrays(arrays, names=names)
    options = pacsv.WriteOptions(delimiter=sep, null_string="nan", quoting_style="none",
                                 quoting_header="none")
    if gz:
        with gzip.open(path, "wb", compresslevel=GZIP_LEVEL) as out:
            pacsv.write_csv(table, out, options)
    else:
        pacsv.write_csv(table, path, options)
    return True


class _NotCounts(Exception):
    """A value the counts writer cannot write as pandas would."""


def _text_array(values: np.ndarray, special: re.Pattern):
    """An Arrow array of integer or plain-string values, else None."""
    import pyarrow as pa

    if values.dtype.kind in "iu":
        return pa.array(values)
    if values.dtype == object and len(values) and \
            all(type(v) is str and not special.search(v) for v in values):
        return pa.array(values, type=pa.string())
    return None


def _write_matrix_text(df: pd.DataFrame, lead: int, names: list[str], path: str, sep: str,
                       gz: bool, threads: int) -> bool:
    """:func:`write_counts_text` of a table whose first ``lead`` columns are text and
    integers and the rest float32, with the kernel (no copy of the block is made). Raises
    _NotCounts for a value that is not a whole number below 10⁹ (the file is then
    rewritten by pandas)."""
    special = _quoted(sep)
    text = {}
    for name, (_, col) in zip(names[:lead], df.iloc[:, :lead].items(), strict=True):
        values = col.to_numpy()
        if _text_array(values, special) is None:
            return False
        text[name] = values
    block = df.iloc[:, lead:].to_numpy()      # float32: a view of pandas' block

    def part(rows: slice) -> bytes:
        out = _whole_lines({k: v[rows] for k, v in text.items()},
                           matrix_rows(block, np.arange(rows.start, rows.stop)), False, sep)
        if out is None:
            raise _NotCounts
        return out

    parts = [functools.partial(part, rows) for rows in row_parts(len(df), block.shape[1])]
    header = (sep.join(names) + "\n").encode()
    with open(path, "wb") as fh:
        write_parts(fh, [lambda: header, *parts], threads, GZIP_LEVEL if gz else None)
    return True


#: values formatted per step: a few tens of MB of text
PART_CELLS = 1 << 21


def text_lines(text: Mapping[str, np.ndarray], values: np.ndarray, nan_as_empty: bool,
               sep: str = "\t") -> bytes:
    """Lines of ``sep``-separated fields, no header.

    Floats are written in their shortest round-trip form (``0.1``, ``2``, ``1e-07``).
    pyarrow's C++ writer does the work, and the compiled kernel writes rows of whole
    numbers in the same bytes; text that would need quoting falls back to pandas. Runs
    mostly without the GIL, so parts can be formatted on threads.

    Parameters
    ----------
    text
        Equal-length columns of strings or integers, first on each line.
    values
        The numbers after them (rows × columns).
    nan_as_empty
        Write NaN as an empty cell, else as ``nan``.
    sep
        The field separator.

    Returns
    -------
    bytes
        The lines, each ending in a newline.
    """
    import pyarrow as pa

    values = np.asarray(values, dtype=np.float64)

    def floats() -> dict:
        return {f"v{i}": values[:, i] for i in range(values.shape[1])}

    try:
        if kernels.has_whole_rows() and text and len(values):
            out = _whole_lines(text, values, nan_as_empty, sep)
            if out is not None:
                return out
        return _arrow_csv({**text, **floats()}, sep, nan_as_empty)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        frame = pd.DataFrame({**text, **floats()})
        return frame.to_csv(sep=sep, header=False, index=False, lineterminator="\n",
                            na_rep="" if nan_as_empty else "nan").encode()


def _whole_lines(text: Mapping[str, np.ndarray], values: np.ndarray, nan_as_empty: bool,
                 sep: str) -> bytes | None:
    """:func:`text_lines` by the kernel: pyarrow writes the ``text`` columns, the kernel
    the values after them; None when a value is not a whole number below 10⁹, or without
    the kernel (:func:`.kernels.whole_rows`)."""
    head = _arrow_csv(text, sep, nan_as_empty)        # raises for text needing quotes
    return kernels.whole_rows(head, values, nan_as_empty, sep)


def _arrow_csv(columns: Mapping[str, np.ndarray], sep: str, nan_as_empty: bool) -> bytes:
    """Arrow's CSV text of equal-length columns, no header, nothing quoted (raises
    ArrowInvalid for a field that would need quotes)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table({k: pa.array(v, from_pandas=nan_as_empty)
                              for k, v in columns.items()}), sink,
                    pacsv.WriteOptions(include_header=False, delimiter=sep,
                                       quoting_style="none"))
    return sink.getvalue().to_pybytes()


def write_parts(fh, parts, threads: int = 1, gzip_level: int | None = None) -> None:
    """Write the bytes each of ``parts`` makes, in order.

    Parameters
    ----------
    fh
        A binary file open for writing.
    parts
        Callables, each returning bytes.
    threads
        Make the parts on this many threads; the bytes do not depend on it.
    gzip_level
        Compress each part as a gzip member of its own (a gzip file may hold several one
        after another, and readers take them as one stream).
    """

    def make(part) -> bytes:
        data = part()
        return data if gzip_level is None else gzip.compress(data, gzip_level, mtime=0)

    if threads <= 1:
        for part in parts:
            fh.write(make(part))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for part in parts:
            pending.append(pool.submit(make, part))
            if len(pending) >= 2 * threads:          # a few parts in memory at a time
                fh.write(pending.popleft().result())
        while pending:
            fh.write(pending.popleft().result())


def row_parts(n: int, width: int) -> list[slice]:
    """Row slices of about :data:`PART_CELLS` values each.

    Parameters
    ----------
    n
        Rows.
    width
        Values per row.

    Returns
    -------
    list of slice
    """
    step = max(1, PART_CELLS // max(width, 1))
    return [slice(r, min(r + step, n)) for r in range(0, n, step)]
