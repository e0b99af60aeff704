"""Regions: reading BED/narrowPeak files, reference points and windows.

Coordinates are 0-based, half-open, as in BED. Row order is kept everywhere.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib

import numpy as np

from . import kernels
from ._lazy import is_frame, pd
from .errors import BamcoverError
from .options import Options

COLUMNS = ["chrom", "start", "end", "name", "score", "strand"]
SKIP_PREFIXES = ("track", "browser", "#")
#: BAM reference lengths are < 2^31, so no BED coordinate on a BAM chromosome is larger.
MAX_POSITION = 2**31 - 1
STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SUMMIT_OFFSET = r"-?\d{1,18}"        # what the compiled parser reads as a column-10 integer

RegionsLike = "str | os.PathLike | pd.DataFrame | pybedtools.BedTool"


class RegionColumns(dict):
    """The columns of a region file (name → numpy array) and the file they came from
    (``source``), so that a later error, such as ``--reference-point summit`` on a file
    without summits, can name it."""

    source: str = "regions"


def _read_bytes(source: str) -> tuple[bytes, str]:
    """The whole (gunzipped) content of a region file and the name to report it by.

    The file is opened once and read once, so FIFOs, process substitution (``<(zcat x)``)
    and ``-`` (stdin) work: gzip is told by the magic bytes of what was read, not by
    opening the file a second time."""
    name = "<stdin>" if source == STDIN else source
    try:
        if source == STDIN:
            stdin = getattr(sys.stdin, "buffer", None)
            if stdin is None:
                raise BamcoverError(f"{name}: no standard input to read regions from")
            data = stdin.read()
        else:
            with open(source, "rb") as fh:
                data = fh.read()
    except FileNotFoundError:
        raise BamcoverError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise BamcoverError(f"{name}: is a directory, not a region file") from None
    except PermissionError:
        raise BamcoverError(f"{name}: permission denied") from None
    except OSError as exc:
        raise BamcoverError(f"{name}: unreadable region file ({exc.strerror or exc})") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            try:
                data = gzip.decompress(data)
            except gzip.BadGzipFile:    # zero padding after the last member, as gzip skips
                data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
        except EOFError:
            raise BamcoverError(f"{name}: truncated gzip file (it ends before the gzip "
                                "end-of-stream marker)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise BamcoverError(f"{name}: corrupt gzip file ({exc})") from None
    return data, name


def _line_of(data: bytes, pos: int) -> int:
    """1-based line number of byte ``pos``."""
    return data.count(b"\n", 0, pos) + 1


def _clean_bytes(data: bytes, name: str) -> bytes:
    """The text of a region file without UTF-8 BOMs (at its start, or at a line start where
    files were concatenated), refusing what is not UTF-8 text, naming the line: UTF-16, NUL
    bytes (a binary file), invalid UTF-8. Cheap: a memchr and an ASCII test; the rest only
    for non-ASCII files."""
    if data[:3] == _UTF8_BOM:
        data = data[3:]
    if data[:2] in _UTF16_BOMS:
        raise BamcoverError(f"{name}: UTF-16 text; save the region file as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise BamcoverError(f"{name}: line {_line_of(data, nul)}: NUL byte (a binary file, "
                            "not BED text?)")
    if not data.isascii():
        data = data.replace(b"\n" + _UTF8_BOM, b"\n")
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise BamcoverError(f"{name}: line {_line_of(data, exc.start)}: not UTF-8 text "
                                f"(byte 0x{data[exc.start]:02x})") from None
    return data


def read_regions(source: RegionsLike) -> pd.DataFrame:
    """Read regions from a BED3/BED6+/narrowPeak file (plain or gzipped; ``-`` is stdin),
    a DataFrame, a ``pybedtools.BedTool``, or the :class:`RegionColumns` already read from
    a file (keeping its name for messages).

    ``track``, ``browser`` and ``#`` lines, blank lines and a UTF-8 BOM are skipped; row
    order is kept; '.' or a missing strand counts as '+' for windows (the column keeps what
    the file said). A file is narrowPeak when every line has exactly 10 columns with an
    integer in column 10, or when its name ends in ``.narrowPeak`` (``.gz``).

    Returns
    -------
    DataFrame with ``chrom, start, end, name, score, strand`` (name '.' and strand '.'
    when absent), ``summit`` (absolute summit position for narrowPeak, else -1) and
    ``line`` (1-based line number in the file, for messages); ``attrs["source"]`` names
    the file.
    """
    if is_frame(source):
        return _from_frame(source)
    cols = source if isinstance(source, RegionColumns) else region_columns(source)
    out = pd.DataFrame(cols)
    out.attrs["source"] = cols.source
    return out


def is_bedtool(obj) -> bool:
    """Whether ``obj`` is a ``pybedtools.BedTool`` (the one place that asks; pybedtools is
    not imported for it)."""
    return type(obj).__name__ == "BedTool"


def region_columns(source: RegionsLike) -> RegionColumns:
    """The columns of :func:`read_regions` as numpy arrays (str columns as object arrays).
    A plain region file is parsed by the compiled kernel, without pandas."""
    if is_frame(source):
        frame = _from_frame(source)
        return _named({c: col.to_numpy() for c, col in frame.items()}, "<DataFrame>")
    if is_bedtool(source):
        fn = source.fn
        if isinstance(fn, str) and os.path.exists(fn):
            return _parse(fn)
        return _parse_data(str(source).encode(), "<BedTool>")
    return _parse(os.fspath(source))


def _named(cols: dict, name: str) -> RegionColumns:
    out = RegionColumns(cols)
    out.source = name
    return out


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
    out.attrs["source"] = "<DataFrame>"
    return out


def _parse(path: str) -> RegionColumns:
    return _parse_data(*_read_bytes(path))


def _parse_data(data: bytes, name: str) -> RegionColumns:
    """Columns of a region file's bytes: the compiled parser for plain files, else the
    checked line-by-line parser, which names the offending line."""
    data = _clean_bytes(data, name)
    cols = _plain_columns(data, name)
    if cols is None:
        raw, line_no, fields = _checked_table(data.decode(), name)
        cols = _table_columns(raw, line_no, fields, name)
    _validate(cols, name)
    return _named(cols, name)


def _named_narrowpeak(name: str) -> bool:
    """A file whose name says narrowPeak: column 10 must then be a summit offset."""
    return name.lower().removesuffix(".gz").endswith(".narrowpeak")


def _plain_columns(data: bytes, name: str = "") -> dict[str, np.ndarray] | None:
    """The common case, parsed in one compiled pass (:func:`.kernels.bed_columns`); None
    when anything is unusual (or without the kernel): the checked parser then reads the
    text again and names the offending line.

    The kernel takes column 10 of every 10-column line as a summit offset; summits are kept
    only when the whole file is narrowPeak-shaped (every line 10 columns) or so named. All
    lines having a summit proves the shape for free; only a mix needs the tabs counted."""
    parsed = kernels.bed_columns(data)
    if parsed is None:
        return None
    cols = dict(zip(COLUMNS + ["summit"], parsed, strict=True))
    summit = cols["summit"]
    has = summit >= 0
    if not _named_narrowpeak(name) and has.any() and not has.all() \
            and data.count(b"\t") != 9 * len(summit):
        cols["summit"] = np.full(len(summit), -1, np.int64)
    cols["line"] = np.arange(1, len(cols["start"]) + 1)
    return cols


def _checked_table(text: str, name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Any region file, line by line: skipped lines, spaces, short rows and bad numbers
    are found and reported with their line numbers. Lines end at '\\n', '\\r\\n' or '\\r'
    (not at the other breaks ``str.splitlines`` knows, which would shift line numbers).

    Returns the table (str columns, start and end as int64, at least 10 columns), the line
    number and the number of fields of each row."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    keep = [i for i, line in enumerate(lines)
            if line.strip() and not line.startswith(SKIP_PREFIXES)]
    if not keep:
        raise BamcoverError(f"{name}: no regions (the file is empty or has only headers)")
    data = [lines[i] for i in keep]
    line_no = np.asarray(keep, dtype=np.int64) + 1
    sep = "\t" if "\t" in data[0] else r"\s+"
    fields = np.fromiter((row.count("\t") + 1 if sep == "\t" else len(row.split())
                          for row in data), np.int64, len(data))
    try:
        raw = pd.read_csv(io.StringIO("\n".join(data)), sep=sep, header=None, dtype=str,
                          keep_default_na=False, na_filter=False, quoting=3,
                          names=range(max(int(fields.max()), 10)),
                          engine="c" if sep == "\t" else "python")
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
        try:
            raw[col] = values.astype(np.int64)
        except (OverflowError, ValueError):
            digits = values.str.lstrip("+-").str.lstrip("0").str.len().to_numpy()
            i = np.flatnonzero(digits > 18)[0]
            raise BamcoverError(f"{name}: line {line_no[i]}: {label} {values.iloc[i]!r} is "
                                f"out of range (BAM positions are 0 to {MAX_POSITION})"
                                ) from None
    return raw, line_no, fields


def _table_columns(raw: pd.DataFrame, line_no: np.ndarray, fields: np.ndarray,
                   name: str) -> dict[str, np.ndarray]:
    """The columns of a checked table. Column 10 is a summit offset only in a narrowPeak:
    a file so named (where a non-integer is an error), or one whose every line has exactly
    10 columns with an integer (or nothing) in column 10 — not BED12's blockCount, not the
    text of a BED6+4."""
    def text(col: int) -> np.ndarray:
        return raw[col].replace("", ".").to_numpy(object)

    out = {"chrom": raw[0].to_numpy(object), "start": raw[1].to_numpy(np.int64),
           "end": raw[2].to_numpy(np.int64), "name": text(3), "score": text(4),
           "strand": text(5)}
    summit = np.full(len(raw), -1, dtype=np.int64)
    offs = raw[9]
    is_peak = (offs != "").to_numpy()
    if is_peak.any() and (_named_narrowpeak(name) or (fields == 10).all()):
        ok = offs.where(is_peak, "-1").str.fullmatch(_SUMMIT_OFFSET).to_numpy()
        if not ok.all() and _named_narrowpeak(name):
            i = np.flatnonzero(~ok)[0]
            raise BamcoverError(f"{name}: line {line_no[i]}: narrowPeak summit offset "
                                f"{offs.iloc[i]!r} is not an integer")
        if ok.all():
            offs = offs.where(is_peak, "-1").astype(np.int64).to_numpy()
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
    for values, label in ((start, "start"), (end, "end")):
        if (values > MAX_POSITION).any():
            i = np.flatnonzero(values > MAX_POSITION)[0]
            raise BamcoverError(f"{name}: {row_word} {line[i]}: {label} {values[i]} is beyond "
                                f"any BAM chromosome (BAM positions are < 2^31)")
    if (start > end).any():
        i = np.flatnonzero(start > end)[0]
        raise BamcoverError(f"{name}: {row_word} {line[i]}: start > end ({start[i]} > {end[i]})")
    strand_ok = (strand == "+") | (strand == "-") | (strand == ".")
    if not strand_ok.all():
        i = np.flatnonzero(~strand_ok)[0]
        raise BamcoverError(f"{name}: {row_word} {line[i]}: strand "
                            f"{strand[i]!r} is not '+', '-' or '.'")


def _source(regions, source: str) -> str:
    """The name of the file the regions came from, when they remember it."""
    named = getattr(regions, "source", None) if isinstance(regions, RegionColumns) else \
        getattr(regions, "attrs", {}).get("source")
    return named or source


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
    missing = summit < 0
    if missing.any():
        name = _source(regions, source)
        if missing.all():
            raise BamcoverError(f"{name}: --reference-point summit needs a narrowPeak file "
                                "(10 columns, the summit offset in column 10, or a "
                                ".narrowPeak name); no line here has a summit")
        line = np.asarray(regions["line"])[np.flatnonzero(missing)[0]]
        raise BamcoverError(f"{name}: line {line}: no narrowPeak summit (column 10 is "
                            "negative or empty) for --reference-point summit")
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
