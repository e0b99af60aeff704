"""Regions: reading BED/narrowPeak files, reference points and windows.

Coordinates are 0-based, half-open, as in BED. Row order is kept everywhere.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np

from . import reads
from ._lazy import is_frame, pd
from .errors import BamcoverError
from .options import Options

COLUMNS = ["chrom", "start", "end", "name", "score", "strand"]
SKIP_PREFIXES = ("track", "browser", "#")

RegionsLike = "str | os.PathLike | pd.DataFrame | pybedtools.BedTool"


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt") as fh:
            return fh.read()
    except FileNotFoundError:
        raise BamcoverError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BamcoverError(f"{path}: is a directory, not a region file") from None
    except PermissionError:
        raise BamcoverError(f"{path}: permission denied") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise BamcoverError(f"{path}: unreadable region file ({exc})") from None


def read_regions(source: RegionsLike) -> pd.DataFrame:
    """Read regions from a BED3/BED6+/narrowPeak file (plain or gzipped), a DataFrame or
    a ``pybedtools.BedTool``.

    ``track``, ``browser`` and ``#`` lines are skipped; row order is kept; '.' or a
    missing strand counts as '+' for windows (the column keeps what the file said).

    Returns
    -------
    DataFrame with ``chrom, start, end, name, score, strand`` (name '.' and strand '.'
    when absent), ``summit`` (absolute summit position for narrowPeak, else -1) and
    ``line`` (1-based line number in the file, for messages).
    """
    if is_frame(source):
        return _from_frame(source)
    return pd.DataFrame(region_columns(source))


def region_columns(source: RegionsLike) -> dict[str, np.ndarray]:
    """The columns of :func:`read_regions` as numpy arrays (str columns as object arrays).
    A plain region file is parsed by the compiled kernel, without pandas."""
    if is_frame(source):
        return {c: col.to_numpy() for c, col in _from_frame(source).items()}
    if type(source).__name__ == "BedTool":  # pybedtools, without importing it eagerly
        fn = source.fn
        if isinstance(fn, str) and os.path.exists(fn):
            return _parse(Path(fn))
        return _parse_text(str(source), "<BedTool>")
    return _parse(Path(source))


def _from_frame(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("chrom", "start", "end") if c not in df.columns]
    if missing:
        raise BamcoverError(f"regions DataFrame lacks column(s) {', '.join(missing)}")
    out = pd.DataFrame({
        "chrom": df["chrom"].astype(str).to_numpy(),
        "start": df["start"].to_numpy(np.int64),
        "end": df["end"].to_numpy(np.int64),
        "name": df["name"].astype(str).to_numpy() if "name" in df else ".",
        "score": df["score"].astype(str).to_numpy() if "score" in df else ".",
        "strand": df["strand"].astype(str).to_numpy() if "strand" in df else ".",
    })
    out["summit"] = (df["start"].to_numpy(np.int64) + df["summit_offset"].to_numpy(np.int64)
                     if "summit_offset" in df else -1)
    out["line"] = np.arange(1, len(out) + 1)
    _validate(out, "<DataFrame>", row_word="row")
    return out


def _parse(path: Path) -> dict[str, np.ndarray]:
    return _parse_text(_read_text(path), str(path))


def _parse_text(text: str, name: str) -> dict[str, np.ndarray]:
    cols = _plain_columns(text)
    if cols is None:
        raw, line_no = _checked_table(text, name)
        cols = _table_columns(raw, line_no, name)
    _validate(cols, name)
    return cols


def _plain_columns(text: str) -> dict[str, np.ndarray] | None:
    """The common case, parsed in one compiled pass (``_kernel.bed_columns``); None when
    anything is unusual (or without the kernel): the checked parser then reads the text
    again and names the offending line."""
    if reads._kernel is None:
        return None
    parsed = reads._kernel.bed_columns(text.encode())
    if parsed is None:
        return None
    cols = dict(zip(COLUMNS + ["summit"], parsed, strict=True))
    cols["line"] = np.arange(1, len(cols["start"]) + 1)
    return cols


def _checked_table(text: str, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Any region file, line by line: skipped lines, spaces, short rows and bad numbers
    are found and reported with their line numbers."""
    lines = text.splitlines()
    keep = [i for i, line in enumerate(lines)
            if line.strip() and not line.startswith(SKIP_PREFIXES)]
    if not keep:
        raise BamcoverError(f"{name}: no regions (the file is empty or has only headers)")
    data = [lines[i] for i in keep]
    line_no = np.asarray(keep, dtype=np.int64) + 1
    sep = "\t" if "\t" in data[0] else r"\s+"
    width = (max(row.count("\t") for row in data) + 1 if sep == "\t"
             else max(len(row.split()) for row in data))
    try:
        raw = pd.read_csv(io.StringIO("\n".join(data)), sep=sep, header=None, dtype=str,
                          keep_default_na=False, na_filter=False, quoting=3,
                          names=range(max(width, 10)), engine="c" if sep == "\t" else "python")
    except pd.errors.ParserError as exc:
        raise BamcoverError(f"{name}: malformed region line ({exc})") from None
    raw = raw.fillna("")    # short rows (the python engine pads with NaN)
    ncols = (raw != "").sum(axis=1).to_numpy()
    short = np.flatnonzero(ncols < 3)
    if short.size:
        i = short[0]
        raise BamcoverError(f"{name}: line {line_no[i]}: expected at least 3 columns "
                            f"(chrom, start, end), got {ncols[i]}")
    for col, label in ((1, "start"), (2, "end")):
        values = raw[col].str.strip()
        ok = values.str.fullmatch(r"[+-]?\d+").to_numpy()
        if not ok.all():
            i = np.flatnonzero(~ok)[0]
            raise BamcoverError(f"{name}: line {line_no[i]}: {label} {values.iloc[i]!r} "
                                "is not an integer")
        raw[col] = values.astype(np.int64)
    return raw, line_no


def _table_columns(raw: pd.DataFrame, line_no: np.ndarray, name: str) -> dict[str, np.ndarray]:
    def text(col: int) -> np.ndarray:
        return raw[col].replace("", ".").to_numpy(object)

    out = {"chrom": raw[0].to_numpy(object), "start": raw[1].to_numpy(np.int64),
           "end": raw[2].to_numpy(np.int64), "name": text(3), "score": text(4),
           "strand": text(5)}
    summit = np.full(len(raw), -1, dtype=np.int64)
    is_peak = (raw[9] != "").to_numpy()
    if is_peak.any():
        offs = raw[9].where(is_peak, "-1")
        ok = offs.str.fullmatch(r"-?\d+").to_numpy()
        if not ok.all():
            i = np.flatnonzero(~ok)[0]
            raise BamcoverError(f"{name}: line {line_no[i]}: narrowPeak summit offset "
                                f"{offs.iloc[i]!r} is not an integer")
        offs = offs.astype(np.int64).to_numpy()
        summit = np.where(is_peak & (offs >= 0), out["start"] + offs, -1)
    out["summit"] = summit
    out["line"] = line_no
    return out


def _validate(cols, name: str, row_word: str = "line") -> None:
    """Check region columns (a DataFrame or a dict of arrays)."""
    start, end = np.asarray(cols["start"]), np.asarray(cols["end"])
    line, strand = np.asarray(cols["line"]), np.asarray(cols["strand"], dtype=object)
    if len(start) == 0:
        raise BamcoverError(f"{name}: no regions")
    if (start < 0).any():
        i = np.flatnonzero(start < 0)[0]
        raise BamcoverError(f"{name}: {row_word} {line[i]}: negative start ({start[i]})")
    if (start > end).any():
        i = np.flatnonzero(start > end)[0]
        raise BamcoverError(f"{name}: {row_word} {line[i]}: start > end ({start[i]} > {end[i]})")
    strand_ok = (strand == "+") | (strand == "-") | (strand == ".")
    if not strand_ok.all():
        i = np.flatnonzero(~strand_ok)[0]
        raise BamcoverError(f"{name}: {row_word} {line[i]}: strand "
                            f"{strand[i]!r} is not '+', '-' or '.'")


def reference_points(regions: pd.DataFrame, options: Options,
                     source: str = "regions") -> np.ndarray:
    """The reference base of each region (0-based), by ``options.reference_point``.

    start = ``start`` on '+', ``end-1`` on '-'; end = ``end-1`` on '+', ``start`` on '-';
    center = ``start + (end-start)//2``; summit = ``start +`` narrowPeak column 10.
    """
    start = np.asarray(regions["start"], np.int64)
    end = np.asarray(regions["end"], np.int64)
    minus = np.asarray(regions["strand"], object) == "-"
    point = options.reference_point
    if point == "center":
        return start + (end - start) // 2
    if point == "start":
        return np.where(minus, end - 1, start)
    if point == "end":
        return np.where(minus, start, end - 1)
    summit = np.asarray(regions["summit"], np.int64)
    if (summit < 0).any():
        i = np.flatnonzero(summit < 0)[0]
        line = np.asarray(regions["line"])[i]
        raise BamcoverError(f"{source}: line {line}: --reference-point summit "
                            "needs a narrowPeak summit offset (column 10)")
    return summit


def windows(regions: pd.DataFrame, options: Options, source: str = "regions"
            ) -> tuple[np.ndarray, np.ndarray]:
    """Genomic start of each region's window and whether it is read right-to-left.

    A window covers ``options.window_length`` bases. On '+'/'.' regions (or with
    ``orient=False``) offset k is genomic ``ref + k``; on '-' regions offset k is
    ``ref - k``, so the window is ``[ref - downstream + 1, ref + upstream + 1)``.
    """
    ref = reference_points(regions, options, source)
    flip = (np.asarray(regions["strand"], object) == "-") & options.orient
    start = np.where(flip, ref - options.window_downstream + 1, ref - options.window_upstream)
    return start.astype(np.int64), flip


def window_bounds(regions: pd.DataFrame, options: Options, source: str = "regions"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Genomic ``[start, end)`` of each region's window and whether it is read right-to-left.

    Reference-point mode: the fixed-length windows of :func:`windows`. Scale-regions mode:
    the body ``[start, end)`` with ``upstream`` bases on its 5' side and ``downstream`` on
    its 3' side, i.e. ``[start - U, end + D)``, or ``[start - D, end + U)`` on '-' regions
    read 5'→3' (``orient``); windows then vary in length.
    """
    if not options.scale_regions:
        start, flip = windows(regions, options, source)
        return start, start + options.window_length, flip
    flip = (np.asarray(regions["strand"], object) == "-") & options.orient
    left, right = flank_lengths(flip, options)
    start = np.asarray(regions["start"], np.int64) - left
    end = np.asarray(regions["end"], np.int64) + right
    return start, end, flip


def flank_lengths(flip: np.ndarray, options: Options) -> tuple[np.ndarray, np.ndarray]:
    """Scale-regions mode: bases of the unscaled flank left and right of each body in
    genomic order (upstream is on the right of flipped windows)."""
    up, down = options.window_upstream, options.window_downstream
    return (np.where(flip, down, up).astype(np.int64),
            np.where(flip, up, down).astype(np.int64))
