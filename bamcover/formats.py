"""Tables in and out: tidy profiles and matrices, deepTools matrices, CDT, and ``load``.

The data model shared by the API, the plots and the files:

* **tidy profile**: one row per sample × group × channel × offset, columns ``sample, group,
  channel, offset, mean, median, std, sem, n`` (statistics over regions of the per-bin values;
  ``offset`` is the bin's first offset).
* **matrix**: bamcover's per-region matrix (index levels ``region, chrom, start, end, name,
  strand, status, channel``; one column per bin, labelled by its first offset; values are the
  bin's *sum* of per-base coverage). Several samples and region groups are a dict
  ``{(sample, group): matrix}``.

Optional ``DataFrame.attrs``: ``units`` (``"reads"``, ``"CPM"``, ``"log2 ratio"`` or
``"difference"`` for control runs, or ``"signal"`` when the unit is unknown, e.g. a deepTools
matrix from a bigWig), ``reference_point`` and, for control runs, ``controls`` (``{sample:
control label}``). They are kept in parquet files and in the deepTools matrix header; TSV
files lose them, and :func:`load` reads them back from the provenance record beside the file.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from ._lazy import pd
from .errors import BamcoverError
from .matrices import Cube, Matrices, as_matrices, bin_size_of, cube, matrix_from_cube
from .outputs import atomic_path
from .schema import (
    BODY,
    CONTROL_UNITS,
    CONTROLS,
    DEFAULT_GROUP,
    DIFFERENCE,
    LOG2_RATIO,
    MATRIX_FILE_COLUMNS,
    MATRIX_INDEX,
    MISSING_STATUS,
    PROFILE_COLUMNS,
    STATS,
    TEXT_COLUMNS,
    TIDY_MATRIX_COLUMNS,
    label_from_path,
    separator,
)
from .statistics import nan_statistics
from .text import GZIP_LEVEL, row_parts, text_lines, write_parts

PathLike = str | os.PathLike

#: bamcover reference points → deepTools' ``ref point`` (deepTools only knows TSS/TES/center)
DEEPTOOLS_REF_POINT = {"start": "TSS", "end": "TES", "center": "center", "summit": "center",
                       "TSS": "TSS", "TES": "TES"}


# ----------------------------------------------------------------------------------------
# small helpers


def units_of(df: pd.DataFrame | None) -> str | None:
    """The unit a table's values are in, from its attrs: ``"reads"``, ``"CPM"``,
    ``"signal"`` (unknown), or None when the attrs do not say."""
    if df is None:
        return None
    attrs = df.attrs
    if attrs.get("units"):
        return str(attrs["units"])
    normalize = attrs.get("normalize")
    if normalize == "cpm":
        return "CPM"
    if normalize == "none":
        return "reads"
    return None


def summed(units: str | None) -> bool:
    """Whether a bin's value adds up its bases (reads, CPM, differences of them), so that
    bin / bin size is a per-base value; a log2 ratio of two bins' sums does not."""
    return units != LOG2_RATIO


def body_length_of(*frames) -> int | None:
    """The scaled body length that the frames' attrs record (scale-regions data), or None
    (reference-point data). Frames that disagree are an error: they cannot share an axis."""
    bodies = {int(f.attrs.get(BODY) or 0) for f in frames if f is not None}
    if len(bodies) > 1:
        raise BamcoverError("scale-regions data (bodies of "
                            f"{sorted(b for b in bodies if b)} bp) mixed with other data; "
                            "plot tables of one kind and one body length together")
    body = max(bodies, default=0)
    return body or None


def _recorded(path: str) -> dict:
    """What a TSV cannot keep, from the provenance record written beside ``path``: the
    scale-regions body length (``body_length``) and, for a control run, its ``units``
    (``operation``) and ``controls``, ``{sample: control label}``."""
    try:
        with open(path + ".provenance.json") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return {}
    out: dict = {}
    for key in ("options", "task_options"):
        opts = record.get(key) or {}
        if opts.get("scale_regions"):
            out[BODY] = int(opts["body_length"])
            break
    params = (record.get("command") or {}).get("parameters") or {}
    if params.get("control"):
        operation = (record.get("options") or {}).get("operation") or params.get("operation")
        out["units"] = LOG2_RATIO if operation == "log2" else DIFFERENCE
        out[CONTROLS] = _controls(params)
    return out


def _controls(params: dict) -> dict[str, str]:
    """``{sample: control label}`` of a ``bamcover profile --control`` run from its
    parameters: samples labelled as the run labelled them (``--labels``, else BAM names), one
    control for every sample or one per sample; a control is labelled by its file name
    without ``.bam``. ``{}`` when they do not match."""
    bams = [os.path.basename(p) for p in params.get("inputs") or []
            if str(p).lower().endswith(".bam")]
    samples = params["labels"].split(",") if params.get("labels") else \
        [label_from_path(b) for b in bams]
    controls = [label_from_path(p) if p.lower().endswith(".bam") else os.path.basename(p)
                for p in str(params["control"]).split(",")]
    if len(controls) == 1:
        controls *= len(samples)
    return dict(zip(samples, controls, strict=True)) if len(controls) == len(samples) else {}


def _ordered_unique(values) -> list:
    return list(dict.fromkeys(values))


# ----------------------------------------------------------------------------------------
# profiles


def tidy_profile(wide: pd.DataFrame, sample: str = "sample",
                 group: str = DEFAULT_GROUP) -> pd.DataFrame:
    """Convert the wide profile of :func:`bamcover.profile` (index ``offset``; columns
    ``<channel>_mean``, ``_median``, ``_std``, ``_sem``, ``_n``) to the tidy table.

    Returns
    -------
    DataFrame with columns ``sample, group, channel, offset, mean, median, std, sem, n``, one
    row per channel × offset (channels in column order). ``attrs`` are kept, plus ``units``
    (``"CPM"`` when the profile was normalised, else ``"reads"``).
    """
    if "offset" in wide.columns:
        wide = wide.set_index("offset")
    channels = _ordered_unique(c.rsplit("_", 1)[0] for c in wide.columns
                               if "_" in str(c) and str(c).rsplit("_", 1)[1] in STATS)
    if not channels:
        raise BamcoverError("not a bamcover profile: no <channel>_mean columns")
    offsets = np.asarray(wide.index, dtype=np.int64)
    parts = []
    for ch in channels:
        part = pd.DataFrame({"sample": sample, "group": group, "channel": ch,
                             "offset": offsets})
        for stat in STATS:
            col = f"{ch}_{stat}"
            if col not in wide:
                raise BamcoverError(f"not a bamcover profile: column {col} missing")
            part[stat] = wide[col].to_numpy()
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["n"] = out["n"].astype(np.int64)
    out.attrs.update(wide.attrs)
    out.attrs["units"] = units_of(wide) or "reads"
    return out


def profile_from_matrices(matrices, sample: str = "sample",
                          group: str = DEFAULT_GROUP) -> pd.DataFrame:
    """The tidy profile of one or several matrices: per sample × group × channel × bin the
    mean, median, std (ddof = 1), sem and n over the regions with a value (NaN skipped), as
    :func:`bamcover.profile` computes them."""
    matrices = as_matrices(matrices, sample, group)
    parts = []
    units = None
    for (smp, grp), mat in matrices.items():
        c = cube(mat)
        units = units or units_of(mat)
        for k, ch in enumerate(c.channels):
            mean, median, std, sem, n = nan_statistics(c.values[:, k, :])
            parts.append(pd.DataFrame({
                "sample": smp, "group": grp, "channel": ch, "offset": c.offsets,
                "mean": mean, "median": median, "std": std, "sem": sem,
                "n": n.astype(np.int64)}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PROFILE_COLUMNS)
    out.attrs["units"] = units or "reads"
    body = body_length_of(*matrices.values())
    if body:
        out.attrs[BODY] = body
    return out


# ----------------------------------------------------------------------------------------
# matrix files written by `bamcover profile --matrix`


def matrix_from_table(flat: pd.DataFrame) -> pd.DataFrame:
    """A matrix file's table (``chrom start end name strand channel status`` then one column
    per bin headed by its offset) back in bamcover's matrix layout."""
    missing = [c for c in MATRIX_FILE_COLUMNS if c not in flat.columns]
    if missing:
        raise BamcoverError(f"not a bamcover matrix table: columns {missing} missing")
    bins = [c for c in flat.columns if c not in MATRIX_FILE_COLUMNS]
    try:
        offsets = [int(str(c)) for c in bins]
    except ValueError:
        raise BamcoverError(f"not a bamcover matrix table: bin headers {bins[:3]}… are not "
                            "integer offsets") from None
    chan = flat["channel"].astype(str).to_numpy()
    channels = _ordered_unique(chan)
    nch = len(channels)
    if len(flat) % nch == 0 and (chan == np.tile(np.array(channels, dtype=object),
                                                   len(flat) // nch)).all():
        region = np.arange(len(flat)) // nch
    else:
        key = flat[["chrom", "start", "end", "name", "strand"]].astype(str).agg("\t".join, axis=1)
        region, _ = pd.factorize(key, sort=False)
    index = pd.MultiIndex.from_arrays([
        region,
        flat["chrom"].astype(str).to_numpy(),
        flat["start"].astype(np.int64).to_numpy(),
        flat["end"].astype(np.int64).to_numpy(),
        flat["name"].astype(str).to_numpy(),
        flat["strand"].astype(str).to_numpy(),
        flat["status"].astype(str).to_numpy(),
        chan.astype(object),
    ], names=MATRIX_INDEX)
    out = pd.DataFrame(flat[bins].to_numpy(dtype=np.float64), index=index,
                       columns=pd.Index(offsets, name="offset"))
    out.attrs.update(flat.attrs)
    return out


def matrix_table(matrix: pd.DataFrame) -> pd.DataFrame:
    """bamcover's matrix as its file table (the layout ``bamcover profile --matrix``
    writes)."""
    flat = matrix.reset_index()
    out = flat[[*MATRIX_FILE_COLUMNS, *matrix.columns]].rename(columns=str)
    out.attrs.update(matrix.attrs)
    return out


# ----------------------------------------------------------------------------------------
# tidy (long) matrices


def tidy_matrix(matrices, sample: str = "sample", group: str = DEFAULT_GROUP) -> pd.DataFrame:
    """One row per region × sample × channel × bin: ``sample, group, region, chrom, start,
    end, name, strand, status, channel, offset, value`` (``value`` as stored in the matrix:
    the bin's sum of per-base coverage). Write it with
    :func:`bamcover.outputs.write_table` (TSV or parquet)."""
    matrices = as_matrices(matrices, sample, group)
    parts = []
    for (smp, grp), mat in matrices.items():
        c = cube(mat)
        nreg, nch, nb = c.values.shape
        r = np.repeat(np.arange(nreg), nch * nb)
        parts.append(pd.DataFrame({
            "sample": smp,
            "group": grp,
            "region": r,
            "chrom": c.regions["chrom"].to_numpy()[r],
            "start": c.regions["start"].to_numpy()[r],
            "end": c.regions["end"].to_numpy()[r],
            "name": c.regions["name"].to_numpy()[r],
            "strand": c.regions["strand"].to_numpy()[r],
            "status": c.regions["status"].to_numpy()[r],
            "channel": np.tile(np.repeat(np.array(c.channels, dtype=object), nb), nreg),
            "offset": np.tile(c.offsets, nreg * nch),
            "value": c.values.reshape(-1),
        }))
    out = (pd.concat(parts, ignore_index=True) if parts
           else pd.DataFrame(columns=TIDY_MATRIX_COLUMNS))
    units = _first_units(matrices.values())
    if units:
        out.attrs["units"] = units
    return out


def matrices_from_tidy(long: pd.DataFrame) -> Matrices:
    """The inverse of :func:`tidy_matrix`."""
    missing = [c for c in TIDY_MATRIX_COLUMNS if c not in long.columns]
    if missing:
        raise BamcoverError(f"not a tidy matrix table: columns {missing} missing")
    out: Matrices = {}
    for (smp, grp), part in long.groupby(["sample", "group"], sort=False):
        offsets = np.sort(part["offset"].unique())
        channels = _ordered_unique(part["channel"].astype(str))
        reg_code, reg_keys = pd.factorize(part["region"], sort=False)
        first = np.unique(reg_code, return_index=True)[1]
        regions = part.iloc[first][["chrom", "start", "end", "name", "strand", "status"]]
        regions = regions.reset_index(drop=True).astype({"chrom": str, "name": str,
                                                         "strand": str, "status": str})
        values = np.full((len(reg_keys), len(channels), len(offsets)), np.nan)
        values[reg_code, pd.Index(channels).get_indexer(part["channel"].astype(str)),
               np.searchsorted(offsets, part["offset"].to_numpy())] = part["value"].to_numpy()
        out[(str(smp), str(grp))] = matrix_from_cube(regions, channels, offsets, values,
                                                     long.attrs)
    return out


def _first_units(frames) -> str | None:
    for f in frames:
        u = units_of(f)
        if u:
            return u
    return None


# ----------------------------------------------------------------------------------------
# deepTools computeMatrix format


def aligned_cubes(matrices: Matrices) -> tuple[list[str], list[str], dict[tuple[str, str], Cube]]:
    """Samples, groups and the :class:`Cube` of every (sample, group), checking that every
    sample has every group over the same regions (chrom, start, end) and bins."""
    samples = _ordered_unique(s for s, _ in matrices)
    groups = _ordered_unique(g for _, g in matrices)
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
    offsets = cubes[(samples[0], groups[0])].offsets
    size = bin_size_of(offsets)
    if body_length is None:
        body_length = body_length_of(*matrices.values())
    body_length = int(body_length or 0)
    up, down = int(-offsets[0]), int(offsets[-1] + size) - body_length
    if body_length and (body_length % size or body_length < 0 or down < 0):
        raise BamcoverError(f"body_length={body_length} does not fit the matrices' bins "
                            f"({offsets[0]}…{offsets[-1]}, bin size {size})")
    for name, given, actual in (("upstream", upstream, up), ("downstream", downstream, down),
                                ("bin_size", bin_size, size)):
        if given is not None and int(given) != actual:
            raise BamcoverError(f"{name}={given} but the matrices' bins give {actual}")
    if up < 0 or down < 0:
        raise BamcoverError(f"bins {offsets[0]}…{offsets[-1]} do not contain offset 0; "
                            "deepTools needs upstream ≥ 0 and downstream ≥ 0")
    columns = [(s, ch) for s in samples for ch in cubes[(s, groups[0])].channels]
    labels = [s if ch == "total" else f"{s} {ch}" for s, ch in columns]
    if len(set(labels)) != len(labels):
        raise BamcoverError(f"duplicate deepTools sample labels {labels}")
    nb, ns = len(offsets), len(columns)

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

    ref = None if body_length else DEEPTOOLS_REF_POINT[reference_point]
    units = units or _first_units(matrices.values()) or "reads"
    header = {
        "upstream": [up] * ns,
        "downstream": [down] * ns,
        "body": [body_length] * ns,
        "bin size": [size] * ns,
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
                        if body_length else
                        {"reference point": reference_point,
                         "values": "per-base mean coverage (bin sum / bin size)"
                         if summed(units) else f"{units} per bin (as computed)"})},
    }
    score_of = {g: _deeptools_scores(scores, g, matrices[(samples[0], g)],
                                     len(cubes[(samples[0], g)].regions)) for g in groups}

    def part(g: str, rows: np.ndarray) -> bytes:
        regs = cubes[(samples[0], g)].regions.iloc[rows]
        vals = [cubes[(s, g)].take(rows).reshape(len(rows), -1) for s in samples]
        vals = vals[0] if len(vals) == 1 else np.concatenate(vals, axis=1)
        if size != 1 and not body_length and summed(units):
            vals /= size
        text = {"chrom": regs["chrom"].to_numpy(dtype=object),
                "start": regs["start"].to_numpy(dtype=np.int64),
                "end": regs["end"].to_numpy(dtype=np.int64),
                "name": regs["name"].to_numpy(dtype=object),
                "score": (np.full(len(regs), ".", dtype=object) if score_of[g] is None
                          else score_of[g][rows]),
                "strand": regs["strand"].to_numpy(dtype=object)}
        return text_lines(text, vals, nan_as_empty=False)

    parts = [functools.partial(part, g, rows[piece]) for g, rows in blocks
             for piece in row_parts(len(rows), nb * ns)]
    line = ("@" + json.dumps(header, separators=(",", ":")) + "\n").encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write_parts(fh, [lambda: line, *parts], threads, gzip_level=GZIP_LEVEL)


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
                            "status": "ok"})
    extra = meta.get("bamcover") or {}
    columns = extra.get("columns")
    if not columns or len(columns) != ns:
        columns = [[label, "total"] for label in samples_labels]
    units = extra.get("units") or "signal"
    # log2 ratios written as they are (older bamcover divided them by the bin size too)
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


# ----------------------------------------------------------------------------------------
# CDT (Cluster 3.0 / Java TreeView)


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
        opener = gzip.open if path.endswith(".gz") else open
        with opener(tmp, "wb") as fh:
            fh.write(("\t".join(["GID", "UNIQID", "NAME", "GWEIGHT", *heads]) + "\n").encode())
            fh.write(("\t".join(["EWEIGHT", "", "", ""] + ["1"] * len(heads)) + "\n").encode())
            write_parts(fh, parts)


def read_cdt(path: PathLike) -> pd.DataFrame:
    """Read a CDT file: a DataFrame indexed by ``UNIQID`` with ``NAME`` and ``GWEIGHT``
    columns followed by the data columns (floats, NaN for empty cells), in file order; the
    ``EWEIGHT`` (and ``AID``) rows are dropped, the column weights are in
    ``attrs['eweight']``."""
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


# ----------------------------------------------------------------------------------------
# load whatever bamcover wrote


@dataclass
class Loaded:
    """What :func:`load` read: a tidy profile (always; derived from the matrices when the file
    held only matrices) and the matrices when the file had them."""

    profile: pd.DataFrame
    matrices: Matrices | None = None
    meta: dict = field(default_factory=dict)
    kind: str = ""

    @property
    def units(self) -> str | None:
        return units_of(self.profile) or self.meta.get("units")


def _is_deeptools(path: str) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        return False
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(1) == b"@"
    except (OSError, EOFError):
        return False


def _read_table(path: str) -> pd.DataFrame:
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    sep = separator(path)
    head = pd.read_csv(path, sep=sep, nrows=0)
    text_cols = [c for c in head.columns if c in TEXT_COLUMNS]
    na = {c: ["nan", "NaN", ""] for c in head.columns if c not in text_cols}
    return pd.read_csv(path, sep=sep, dtype={c: str for c in text_cols},
                       keep_default_na=False, na_values=na)


def load(path: PathLike | list[PathLike], *, sample: str | list[str] | None = None,
         group: str | None = None) -> Loaded:
    """Read any table bamcover wrote, so that plots never recompute coverage.

    Recognised by content: a deepTools matrix (gzipped, ``@`` header line); otherwise a TSV
    (``.tsv``, ``.gz``, ``.csv``) or parquet table that is a tidy profile (``sample, group,
    channel, offset, mean…``), a wide profile (``offset, <channel>_mean…``, the ``-o`` of
    ``bamcover profile``), a matrix (``chrom start end name strand channel status`` + bins,
    the ``--matrix`` file) or a tidy matrix (:func:`tidy_matrix`).

    Parameters
    ----------
    path
        One file, or several whose samples are combined (e.g. a ChIP and a control profile).
    sample, group
        Labels for single-sample files that carry none (default: the file name without its
        suffixes, and ``"regions"``); with several paths, one sample label per path.

    Returns
    -------
    :class:`Loaded` with ``.profile`` (tidy) and ``.matrices`` (``{(sample, group): matrix}``
    or None). A profile is derived from matrices (mean, median, std ddof = 1, sem, n over
    non-NaN regions) when the file holds only matrices.
    """
    if isinstance(path, (list, tuple)):
        labels = sample if isinstance(sample, (list, tuple)) else [None] * len(path)
        if len(labels) != len(path):
            raise BamcoverError(f"{len(labels)} labels for {len(path)} files")
        parts = [load(p, sample=lab, group=group) for p, lab in zip(path, labels, strict=True)]
        return combine(parts)
    if isinstance(sample, (list, tuple)):
        sample = sample[0] if sample else None
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BamcoverError(f"{path}: no such file")
    loaded = _load_one(path, sample, group)
    recorded = _recorded(path)      # a TSV keeps no attrs: the run's provenance record says
    frames = [loaded.profile, *(loaded.matrices or {}).values()]
    body = loaded.profile.attrs.get(BODY) or loaded.meta.get(BODY) or recorded.get(BODY)
    units = None if loaded.meta.get("units") else recorded.get("units")
    controls = recorded.get(CONTROLS)
    if controls and len(controls) == 1 and \
            _ordered_unique(loaded.profile["sample"].astype(str)) == [sample]:
        controls = {sample: next(iter(controls.values()))}     # the caller's label for it
    for frame in frames:
        if body:
            frame.attrs[BODY] = int(body)
        if units:
            frame.attrs["units"] = units
        if controls and not frame.attrs.get(CONTROLS):
            frame.attrs[CONTROLS] = controls
    return loaded


def _load_one(path: str, sample: str | None, group: str | None) -> Loaded:
    smp = sample or label_from_path(path, table=True)
    grp = group or DEFAULT_GROUP
    if _is_deeptools(path):
        mats, meta = read_deeptools_matrix(path)
        if sample and len({s for s, _ in mats}) == 1:
            mats = {(sample, g): m for (_, g), m in mats.items()}
        return Loaded(profile_from_matrices(mats), mats, meta, "deeptools")
    try:
        table = _read_table(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise BamcoverError(f"{path}: cannot read as a table ({exc})") from None
    cols = set(map(str, table.columns))
    meta = dict(table.attrs)
    if {"sample", "group", "channel", "offset", "mean"} <= cols:
        prof = table.astype({"sample": str, "group": str, "channel": str})
        prof.attrs.update(table.attrs)
        prof.attrs.setdefault("units", units_of(table) or "reads")
        return Loaded(prof, None, meta, "tidy profile")
    if {"sample", "group", "region", "channel", "offset", "value"} <= cols:
        mats = matrices_from_tidy(table)
        return Loaded(profile_from_matrices(mats), mats, meta, "tidy matrix")
    if set(MATRIX_FILE_COLUMNS) <= cols and {"sample", "group"} <= cols:
        keys = table[["sample", "group"]].astype(str).agg("\t".join, axis=1)
        mats = {}
        for key in _ordered_unique(keys):
            part = table.loc[keys == key].drop(columns=["sample", "group"])
            mats[tuple(key.split("\t"))] = matrix_from_table(part.reset_index(drop=True))
        return Loaded(profile_from_matrices(mats), mats, meta, "matrix")
    if set(MATRIX_FILE_COLUMNS) <= cols:
        mats = {(smp, grp): matrix_from_table(table)}
        return Loaded(profile_from_matrices(mats), mats, meta, "matrix")
    if "offset" in cols and any(c.endswith("_mean") for c in cols):
        return Loaded(tidy_profile(table, smp, grp), None, meta, "profile")
    raise BamcoverError(f"{path}: not a profile or matrix table bamcover wrote "
                        f"(columns {sorted(cols)[:8]}…)")


def combine(parts: list[Loaded]) -> Loaded:
    """Several loaded files as one: profiles stacked, matrices merged (sample × group keys
    must be distinct)."""
    profiles = [p.profile for p in parts]
    body = body_length_of(*profiles)
    units = _ordered_unique(u for p in profiles if (u := units_of(p))) or ["reads"]
    if len(units) > 1 and set(units) & set(CONTROL_UNITS):
        raise BamcoverError(f"tables in {units} cannot share an axis; plot control runs "
                            "(log2 ratio, difference) only with tables of the same unit")
    controls = {k: v for p in profiles for k, v in (p.attrs.get(CONTROLS) or {}).items()}
    prof = pd.concat(profiles, ignore_index=True)
    prof.attrs["units"] = units[0]
    if body:
        prof.attrs[BODY] = body
    if controls:
        prof.attrs[CONTROLS] = controls
    dup = prof.duplicated(["sample", "group", "channel", "offset"])
    if dup.any():
        row = prof.loc[dup].iloc[0]
        raise BamcoverError(f"sample {row['sample']!r} / group {row['group']!r} appears in more "
                            "than one file; give distinct sample labels")
    mats: Matrices | None = None
    if all(p.matrices is not None for p in parts):
        mats = {}
        for p in parts:
            mats.update(p.matrices)
    meta = {"parts": [p.meta for p in parts]}
    return Loaded(prof, mats, meta, "+".join(p.kind for p in parts))
