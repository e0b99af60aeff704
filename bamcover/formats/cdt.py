"""CDT (Cluster 3.0 / Java TreeView "clustered data table"): writing one matrix, reading
one back."""

from __future__ import annotations

import gzip
import os

import numpy as np

from .._lazy import pd
from ..errors import BamcoverError
from ..matrices import cube
from ..outputs import atomic_path
from ..schema import GZ_SUFFIX
from ..text import row_parts, text_lines, write_parts

PathLike = str | os.PathLike


def write_cdt(matrix: pd.DataFrame, path: PathLike, *, channel: str | None = None,
              per_base: bool = False) -> None:
    """Write one matrix as a Java TreeView CDT (Cluster 3.0 "clustered data table").

    Layout (tab-separated, written atomically; gzipped when ``path`` ends in ``.gz``)::

        GID      UNIQID  NAME  GWEIGHT  <bin> <bin> …
        EWEIGHT                          1     1     …
        GENE0X   <id>    <name>  1      v     v     …

    ``GID`` is ``GENE<i>X`` (0-based row number, as Cluster writes it), ``UNIQID``
    ``chrom:start-end(strand)``, ``NAME`` the region name; column headers are the bins' first
    offsets (``<channel>:<offset>`` when several channels are written side by side). Rows keep
    the matrix order; missing values (NaN) are empty cells. Values are the matrix's bin sums,
    or per-base means with ``per_base=True``.

    Parameters
    ----------
    matrix
        One bamcover matrix.
    path
        The file.
    channel
        Write only this channel (default: all, side by side).
    per_base
        Divide the bin sums by the bin size.
    """
    c = cube(matrix)
    channels = [channel] if channel is not None else c.channels
    if channel is not None and channel not in c.channels:
        raise BamcoverError(f"channel {channel!r} not in the matrix ({c.channels})")
    idx = [c.channels.index(ch) for ch in channels]

    def values(rows: slice) -> np.ndarray:            # a part of the rows at a time
        part = c.take(np.arange(rows.start, rows.stop))[:, idx, :].reshape(
            rows.stop - rows.start, -1)
        return part / c.bin_size if per_base else part

    if len(channels) == 1:
        heads = [str(int(o)) for o in c.offsets]
    else:
        heads = [f"{ch}:{int(o)}" for ch in channels for o in c.offsets]
    regs = c.regions
    uniq = (regs["chrom"] + ":" + regs["start"].astype(str) + "-" + regs["end"].astype(str)
            + "(" + regs["strand"] + ")")
    text = {"GID": np.array([f"GENE{i}X" for i in range(len(regs))], dtype=object),
            "UNIQID": uniq.to_numpy(dtype=object),
            "NAME": regs["name"].to_numpy(dtype=object),
            "GWEIGHT": np.ones(len(regs), dtype=np.int64)}
    parts = [lambda rows=rows: text_lines({k: v[rows] for k, v in text.items()}, values(rows),
                                          True) for rows in row_parts(len(regs), len(heads))]
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        opener = gzip.open if path.endswith(GZ_SUFFIX) else open
        with opener(tmp, "wb") as fh:
            fh.write(("\t".join(["GID", "UNIQID", "NAME", "GWEIGHT", *heads]) + "\n").encode())
            fh.write(("\t".join(["EWEIGHT", "", "", ""] + ["1"] * len(heads)) + "\n").encode())
            write_parts(fh, parts)


def read_cdt(path: PathLike) -> pd.DataFrame:
    """Read a CDT file.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``UNIQID``, with ``NAME`` and ``GWEIGHT`` columns followed by the data
        columns (floats, NaN for empty cells), in file order; the ``EWEIGHT`` (and ``AID``)
        rows are dropped, the column weights are in ``attrs['eweight']``.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    first = table.columns[0]
    has_gid = first == "GID"
    id_col = table.columns[1] if has_gid else first
    data_start = 4 if has_gid else 3
    special = table[first].isin(["EWEIGHT", "AID"])
    ew = table.loc[table[first] == "EWEIGHT"]
    rows = table.loc[~special]
    values = rows.iloc[:, data_start:].replace("", np.nan).astype(np.float64)
    out = pd.concat([rows[[table.columns[data_start - 2], table.columns[data_start - 1]]],
                     values], axis=1)
    out.index = pd.Index(rows[id_col].to_numpy(), name=id_col)
    out = out.rename(columns={table.columns[data_start - 2]: "NAME",
                              table.columns[data_start - 1]: "GWEIGHT"})
    out["GWEIGHT"] = out["GWEIGHT"].astype(np.float64)
    if len(ew):
        out.attrs["eweight"] = ew.iloc[0, data_start:].astype(np.float64).tolist()
    return out
