"""deepTools' ``computeMatrix`` format (``.mat.gz``): writing bamcover matrices so that
``plotHeatmap`` and ``plotProfile`` read them, and reading deepTools matrices back."""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._lazy import pd
from ..errors import BamcoverError
from ..matrices import Cube, Matrices, as_matrices, bin_size_of, cube, matrix_from_cube
from ..outputs import atomic_path
from ..schema import MISSING_STATUS, READS, STATUS_OK
from ..text import GZIP_LEVEL, row_parts, text_lines, write_parts
from ..version import __version__
from .tables import body_length_of, first_units, ordered_unique, summed

PathLike = str | os.PathLike

#: bamcover reference points → deepTools' ``ref point`` (deepTools only knows TSS/TES/center)
DEEPTOOLS_REF_POINT = {"start": "TSS", "end": "TES", "center": "center", "summit": "center",
                       "TSS": "TSS", "TES": "TES"}


def aligned_cubes(matrices: Matrices) -> tuple[list[str], list[str], dict[tuple[str, str], Cube]]:
    """Every (sample, group) as a :class:`~bamcover.matrices.Cube`, checked to line up.

    Parameters
    ----------
    matrices
        ``{(sample, group): matrix}``.

    Returns
    -------
    tuple
        ``(samples, groups, cubes)``.

    Raises
    ------
    BamcoverError
        Unless every sample has every group over the same regions (chrom, start, end) and
        bins.
    """
    samples = ordered_unique(s for s, _ in matrices)
    groups = ordered_unique(g for _, g in matrices)
    cubes = {}
    for s in samples:
        for g in groups:
            if (s, g) not in matrices:
                raise BamcoverError(f"sample {s!r} has no matrix for group {g!r}; every sample "
                                    "needs every group")
            cubes[(s, g)] = cube(matrices[(s, g)])
    ref = cubes[(samples[0], groups[0])]
    for (s, g), c in cubes.items():
        first = cubes[(samples[0], g)]
        if not np.array_equal(c.offsets, ref.offsets):
            raise BamcoverError(f"sample {s!r}, group {g!r}: bins differ from those of "
                                f"{samples[0]!r}; all matrices need the same window and bins")
        same = (len(c.regions) == len(first.regions)
                and (c.regions[["chrom", "start", "end"]].to_numpy()
                     == first.regions[["chrom", "start", "end"]].to_numpy()).all())
        if not same:
            raise BamcoverError(f"group {g!r}: samples {samples[0]!r} and {s!r} have different "
                                "regions; compute every sample over the same region file")
    return samples, groups, cubes


def write_deeptools_matrix(matrices, path: PathLike, *, upstream: int | None = None,
                           downstream: int | None = None, bin_size: int | None = None,
                           reference_point: str = "center", units: str | None = None,
                           drop_missing: bool = True, sort_regions: str = "keep",
                           proc_number: int = 1, body_length: int | None = None,
                           threads: int = 1, scores=None) -> None:
    """Write matrices in deepTools' ``computeMatrix reference-point`` format (or, with
    ``body_length``, its ``scale-regions`` format), so that ``plotHeatmap -m`` and
    ``plotProfile -m`` (and ``computeMatrixOperations``) read them.

    The file (gzipped, written atomically) is what ``heatmapper.save_matrix`` writes: a line
    ``@`` + JSON header (``upstream``, ``downstream``, ``body``, ``bin size``, ``ref point``,
    ``unscaled 5 prime``, ``unscaled 3 prime`` as per-sample lists; ``verbose``, ``bin avg
    type``, ``missing data as zero``, ``min threshold``, ``max threshold``, ``scale``, ``skip
    zeros``, ``nan after end``, ``proc number``, ``sort regions``, ``sort using``;
    ``group_labels``, ``group_boundaries``, ``sample_labels``, ``sample_boundaries``), then
    one line per region: BED6 (``chrom start end name score strand``) and the
    values of every sample side by side; groups are stacked in dict order. A ``bamcover`` key
    in the header (ignored by deepTools) records samples, channels, units and the reference
    point so that :func:`read_deeptools_matrix` restores them.

    **Values.** bamcover bins hold the *sum* of per-base coverage over the bin; deepTools'
    bins hold the *mean* (``bin avg type: mean``). The export divides by the bin size, so
    deepTools sees per-base mean coverage exactly as its own ``computeMatrix`` on a
    1-bp-resolution coverage bigWig would give (``bamCoverage --binSize 1``). NaN (bins beyond
    a chromosome end) is written as ``nan``, which deepTools masks. Scale-regions bins
    already hold per-base means, and log2 ratios (control runs) are not sums: both are
    written as they are.

    Parameters
    ----------
    matrices
        ``{(sample, group): matrix}`` (or one matrix). Every sample needs every group, over
        the same regions and bins. A strand-wise matrix becomes two deepTools samples,
        ``"<sample> sense"`` and ``"<sample> antisense"``.
    upstream, downstream, bin_size
        Default: from the bins (offsets ``-upstream … downstream-1``); if given they must agree.
    reference_point
        bamcover's (``start``, ``end``, ``center``, ``summit``) or deepTools' name; deepTools
        only knows ``TSS``, ``TES`` and ``center``, so ``start`` → ``TSS``, ``end`` → ``TES``,
        ``summit`` → ``center`` (pass ``--refPointLabel summit`` to deepTools for the label).
    units
        ``"reads"``/``"CPM"`` recorded for bamcover; default from the matrices' attrs.
    drop_missing
        Leave out regions no sample has data for (status ``off_chromosome`` or
        ``unknown_chromosome`` in every sample), as ``computeMatrix`` skips regions it finds
        no score for.
    sort_regions
        ``sort regions`` header entry: ``keep`` (rows as written) tells deepTools tools that
        the matrix is unsorted.
    body_length
        Scale-regions matrices: the scaled body's bases (bins ``0 … body_length - bin
        size`` are the body); default from the matrices' ``attrs['body_length']``, which
        scale-regions runs record (0: reference-point). The header then says ``body`` =
        body_length, ``ref point`` = null, ``upstream`` and ``downstream`` the unscaled
        flanks, as ``computeMatrix scale-regions`` writes it.
    threads
        Rows are formatted and gzipped in parts on this many threads (the file is the same
        for any number; each part is a gzip member of its own).
    scores
        The regions' BED scores (column 5, e.g. ``read_regions(...)["score"]``), one per
        region in input order, for the score column; a dict ``{group: scores}`` with several
        region groups. Written as ``computeMatrix`` writes them: a number as a float
        (``214`` → ``214.0``), ``.`` where a region has none; other text as it is. Default:
        ``.`` for every region, as ``computeMatrix`` writes for BED3 regions.
    """
    matrices = as_matrices(matrices)
    if reference_point not in DEEPTOOLS_REF_POINT:
        raise BamcoverError(f"reference point {reference_point!r}: expected one of "
                            f"{sorted(DEEPTOOLS_REF_POINT)}")
    samples, groups, cubes = aligned_cubes(matrices)
    if body_length is None:
        body_length = body_length_of(*matrices.values())
    bins = _bins(cubes[(samples[0], groups[0])].offsets, int(body_length or 0),
                 upstream, downstream, bin_size)
    columns, labels = _sample_columns(samples, groups, cubes)
    blocks, kept, bounds = _kept_rows(samples, groups, cubes, drop_missing)
    units = units or first_units(matrices.values()) or READS
    header = _header(bins, reference_point, units, columns, labels, kept, bounds,
                     proc_number, sort_regions)
    score_of = {g: _deeptools_scores(scores, g, matrices[(samples[0], g)],
                                     len(cubes[(samples[0], g)].regions)) for g in groups}
    per_base = bins.size != 1 and not bins.body and summed(units)
    parts = [functools.partial(_region_lines, [cubes[(s, g)] for s in samples], rows[piece],
                               score_of[g], bins.size if per_base else 1)
             for g, rows in blocks for piece in row_parts(len(rows), len(bins.offsets)
                                                          * len(columns))]
    line = ("@" + json.dumps(header, separators=(",", ":")) + "\n").encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write_parts(fh, [lambda: line, *parts], threads, gzip_level=GZIP_LEVEL)


@dataclass(frozen=True)
class _Bins:
    """The bins of a deepTools matrix: their offsets, the bin size, the unscaled flanks
    and the scaled body (0: reference-point)."""

    offsets: np.ndarray
    size: int
    up: int
    down: int
    body: int


def _bins(offsets: np.ndarray, body: int, upstream: int | None, downstream: int | None,
          bin_size: int | None) -> _Bins:
    """The layout the matrices' bins give, checked against what the caller gave."""
    size = bin_size_of(offsets)
    up, down = int(-offsets[0]), int(offsets[-1] + size) - body
    if body and (body % size or body < 0 or down < 0):
        raise BamcoverError(f"body_length={body} does not fit the matrices' bins "
                            f"({offsets[0]}…{offsets[-1]}, bin size {size})")
    for name, given, actual in (("upstream", upstream, up), ("downstream", downstream, down),
                                ("bin_size", bin_size, size)):
        if given is not None and int(given) != actual:
            raise BamcoverError(f"{name}={given} but the matrices' bins give {actual}")
    if up < 0 or down < 0:
        raise BamcoverError(f"bins {offsets[0]}…{offsets[-1]} do not contain offset 0; "
                            "deepTools needs upstream ≥ 0 and downstream ≥ 0")
    return _Bins(offsets, size, up, down, body)


def _sample_columns(samples: list[str], groups: list[str], cubes: dict[tuple[str, str], Cube]
                    ) -> tuple[list[tuple[str, str]], list[str]]:
    """deepTools' samples: one per bamcover sample × channel, and their labels
    (``"<sample> <channel>"`` for strand-wise channels)."""
    columns = [(s, ch) for s in samples for ch in cubes[(s, groups[0])].channels]
    labels = [s if ch == "total" else f"{s} {ch}" for s, ch in columns]
    if len(set(labels)) != len(labels):
        raise BamcoverError(f"duplicate deepTools sample labels {labels}")
    return columns, labels


def _kept_rows(samples: list[str], groups: list[str], cubes: dict[tuple[str, str], Cube],
               drop_missing: bool) -> tuple[list[tuple[str, np.ndarray]], list[str], list[int]]:
    """The rows written of each group (without those no sample has data for, with
    ``drop_missing``), the groups that keep any, and the group boundaries."""
    blocks, bounds = [], [0]
    for g in groups:
        first = cubes[(samples[0], g)]
        keep = np.ones(len(first.regions), dtype=bool)
        if drop_missing:
            missing = np.ones(len(first.regions), dtype=bool)
            for s in samples:
                missing &= cubes[(s, g)].regions["status"].isin(MISSING_STATUS).to_numpy()
            keep = ~missing
        blocks.append((g, np.flatnonzero(keep)))
        bounds.append(bounds[-1] + int(keep.sum()))
    kept = [g for g, rows in blocks if len(rows)]
    if not kept:
        raise BamcoverError("no region has data in any sample; nothing to write")
    if len(kept) < len(groups):
        blocks = [b for b in blocks if len(b[1])]
        bounds = [0, *np.cumsum([len(b[1]) for b in blocks]).tolist()]
    return blocks, kept, bounds


def _header(bins: _Bins, reference_point: str, units: str, columns: list[tuple[str, str]],
            labels: list[str], kept: list[str], bounds: list[int], proc_number: int,
            sort_regions: str) -> dict:
    """The ``@`` header line's JSON, as ``computeMatrix`` writes it, plus bamcover's key."""
    nb, ns = len(bins.offsets), len(columns)
    ref = None if bins.body else DEEPTOOLS_REF_POINT[reference_point]
    return {
        "upstream": [bins.up] * ns,
        "downstream": [bins.down] * ns,
        "body": [bins.body] * ns,
        "bin size": [bins.size] * ns,
        "ref point": [ref] * ns,
        "verbose": False,
        "bin avg type": "mean",
        "missing data as zero": False,
        "min threshold": None,
        "max threshold": None,
        "scale": 1,
        "skip zeros": False,
        "nan after end": False,
        "proc number": proc_number,
        "sort regions": sort_regions,
        "sort using": "mean",
        "unscaled 5 prime": [0] * ns,
        "unscaled 3 prime": [0] * ns,
        "group_labels": kept,
        "group_boundaries": bounds,
        "sample_labels": labels,
        "sample_boundaries": list(range(0, nb * ns + 1, nb)),
        "bamcover": {"version": __version__, "columns": [list(c) for c in columns],
                     "units": units,
                     **({"scale-regions": True, "values": "per-base mean coverage"}
                        if bins.body else
                        {"reference point": reference_point,
                         "values": "per-base mean coverage (bin sum / bin size)"
                         if summed(units) else f"{units} per bin (as computed)"})},
    }


def _region_lines(cubes: list[Cube], rows: np.ndarray, scores: np.ndarray | None,
                  divisor: int) -> bytes:
    """The lines of ``rows`` of one group: BED6, then every sample's values side by side
    (``cubes``, one per sample), divided by ``divisor``."""
    regs = cubes[0].regions.iloc[rows]
    vals = [c.take(rows).reshape(len(rows), -1) for c in cubes]
    vals = vals[0] if len(vals) == 1 else np.concatenate(vals, axis=1)
    if divisor != 1:
        vals /= divisor
    text = {"chrom": regs["chrom"].to_numpy(dtype=object),
            "start": regs["start"].to_numpy(dtype=np.int64),
            "end": regs["end"].to_numpy(dtype=np.int64),
            "name": regs["name"].to_numpy(dtype=object),
            "score": (np.full(len(regs), ".", dtype=object) if scores is None
                      else scores[rows]),
            "strand": regs["strand"].to_numpy(dtype=object)}
    return text_lines(text, vals, nan_as_empty=False)


def _deeptools_scores(scores, group: str, matrix: pd.DataFrame,
                      n_regions: int) -> np.ndarray | None:
    """The score column of ``group``'s rows as ``computeMatrix`` writes it (see
    :func:`write_deeptools_matrix`), one per region of ``matrix`` (``n_regions``, in the
    order of :func:`cube`); None without scores."""
    if isinstance(scores, Mapping):
        scores = scores.get(group)
    if scores is None:
        return None
    given = np.asarray(scores, dtype=object).astype(str)
    # the matrix's regions by their number in the region file (rows may be a subset)
    index = matrix.index
    ids = np.asarray(pd.unique(index.get_level_values("region")) if "region" in index.names
                     else np.arange(n_regions), dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(given)):
        raise BamcoverError(f"scores of group {group!r}: {len(given)} for regions numbered "
                            f"up to {ids.max()}; give one score per region of the region file")
    values, codes = np.unique(given[ids], return_inverse=True)

    def written(text: str) -> str:
        if text in (".", ""):
            return "."
        try:
            return str(float(text))      # deepTools: strtod, then Python's float repr
        except ValueError:
            return text

    return np.array([written(v) for v in values], dtype=object)[codes.reshape(-1)]


def read_deeptools_matrix(path: PathLike) -> tuple[Matrices, dict]:
    """Read a deepTools ``computeMatrix reference-point`` matrix (``.mat.gz``).

    Parameters
    ----------
    path
        The gzipped matrix.

    Returns
    -------
    ``(matrices, meta)``: ``{(sample, group): matrix}`` in bamcover's layout (index ``region,
    chrom, start, end, name, strand, status, channel`` with status ``ok`` and channel
    ``total`` — or the samples/channels recorded by :func:`write_deeptools_matrix`; one
    column per bin labelled by its first offset ``-upstream + i × bin size``), and ``meta``,
    the JSON header (per-sample entries as lists). NaN is kept. deepTools stores per-bin
    *means*; they are multiplied by the bin size so that the values are bin sums like
    bamcover's (plots divide by the bin size again, so they show deepTools' numbers); the
    log2 ratios of a bamcover control run were written as they are and are read so.
    Scaled-region matrices (``computeMatrix scale-regions``) are refused: their bins are not
    offsets from a reference point.
    """
    path = os.fspath(path)
    try:
        with gzip.open(path, "rt") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise BamcoverError(f"{path}: not a gzipped deepTools matrix ({exc})") from None
    if not first.startswith("@"):
        raise BamcoverError(f"{path}: not a deepTools matrix (no '@' header line)")
    meta = json.loads(first[1:])
    samples_labels = list(meta["sample_labels"])
    ns = len(samples_labels)
    for key in ("upstream", "downstream", "body", "bin size", "ref point",
                "unscaled 5 prime", "unscaled 3 prime"):
        value = meta.get(key, 0)
        meta[key] = value if isinstance(value, list) else [value] * ns
    if any(int(b or 0) > 0 for b in meta["body"]) or \
            any(int(u or 0) > 0 for u in meta["unscaled 5 prime"] + meta["unscaled 3 prime"]):
        raise BamcoverError(f"{path}: a scale-regions matrix; only reference-point matrices "
                            "can be read (their bins are offsets from the reference point)")
    with gzip.open(path, "rt") as fh:
        fh.readline()
        ncols = len(fh.readline().rstrip("\n").split("\t"))
    table = pd.read_csv(path, sep="\t", header=None, skiprows=1, compression="gzip",
                        dtype={i: str for i in range(6)}, keep_default_na=False,
                        na_values={i: ["nan", "NaN", "-nan", ""] for i in range(6, ncols)})
    values = table.iloc[:, 6:].to_numpy(dtype=np.float64)
    starts = table[1].str.split(",").str[0].astype(np.int64).to_numpy()
    ends = table[2].str.split(",").str[-1].astype(np.int64).to_numpy()
    regions = pd.DataFrame({"chrom": table[0].to_numpy(), "start": starts, "end": ends,
                            "name": table[3].to_numpy(), "strand": table[5].to_numpy(),
                            "status": STATUS_OK})
    extra = meta.get("bamcover") or {}
    columns = extra.get("columns")
    if not columns or len(columns) != ns:
        columns = [[label, "total"] for label in samples_labels]
    units = extra.get("units") or "signal"
    # log2 ratios are written as they are; without "(as computed)" they were divided by the
    # bin size like sums
    as_computed = not summed(units) and str(extra.get("values", "")).endswith("(as computed)")
    sb, gb = meta["sample_boundaries"], meta["group_boundaries"]
    if sb[-1] != values.shape[1] or gb[-1] != len(table):
        raise BamcoverError(f"{path}: header boundaries {sb[-1]} columns × {gb[-1]} rows do "
                            f"not match the data ({values.shape[1]} × {len(table)})")
    out: Matrices = {}
    for gi, glabel in enumerate(meta["group_labels"]):
        rows = slice(gb[gi], gb[gi + 1])
        regs = regions.iloc[rows].reset_index(drop=True)
        by_sample: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for si, (smp, ch) in enumerate(columns):
            size = int(meta["bin size"][si])
            block = values[rows, sb[si]:sb[si + 1]] * (1 if as_computed else size)
            offs = -int(meta["upstream"][si]) + size * np.arange(block.shape[1])
            by_sample.setdefault(str(smp), []).append((str(ch), offs, block))
        for smp, parts in by_sample.items():
            offs = parts[0][1]
            if any(not np.array_equal(p[1], offs) for p in parts):
                raise BamcoverError(f"{path}: channels of sample {smp!r} have different bins")
            cubev = np.stack([p[2] for p in parts], axis=1)
            attrs = {"units": units, "reference_point": extra.get("reference point")
                     or meta["ref point"][0], "source": "deepTools"}
            out[(smp, str(glabel))] = matrix_from_cube(regs, [p[0] for p in parts], offs,
                                                       cubev, attrs)
    meta["units"] = units
    return out, meta
