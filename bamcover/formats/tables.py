"""Tables of profiles and matrices: the tidy and wide forms and conversions between them.

* **tidy profile**: one row per sample × group × channel × offset, columns ``sample, group,
  channel, offset, mean, median, std, sem, n`` (statistics over regions of the per-bin values;
  ``offset`` is the bin's first offset).
* **matrix**: bamcover's per-region matrix (index levels ``region, chrom, start, end, name,
  strand, status, channel``; one column per bin, labelled by its first offset; values are the
  bin's *sum* of per-base coverage). Several samples and region groups are a dict
  ``{(sample, group): matrix}``.
* **matrix file table**: ``chrom start end name strand channel status`` then one column
  per bin (:func:`matrix_table`); **tidy matrix**: one row per region × channel × bin.
"""

from __future__ import annotations

import numpy as np

from .._lazy import pd
from ..errors import BamcoverError
from ..matrices import Matrices, as_matrices, cube, matrix_from_cube
from ..schema import (
    BODY,
    DEFAULT_GROUP,
    LOG2_RATIO,
    MATRIX_FILE_COLUMNS,
    MATRIX_INDEX,
    NORMALIZED_UNITS,
    PROFILE_COLUMNS,
    READS,
    STATS,
    TIDY_MATRIX_COLUMNS,
)
from ..statistics import nan_statistics


def ordered_unique(values) -> list:
    """``values`` without repeats, in the order they first come.

    Parameters
    ----------
    values
        Any iterable of hashable values.

    Returns
    -------
    list
    """
    return list(dict.fromkeys(values))


def units_of(df: pd.DataFrame | None) -> str | None:
    """The unit a table's values are in, from its attrs.

    Parameters
    ----------
    df
        A table (or None).

    Returns
    -------
    str or None
        ``"reads"``, ``"CPM"``, ``"signal"`` (unknown), ...; None when the attrs do not say.
    """
    if df is None:
        return None
    attrs = df.attrs
    if attrs.get("units"):
        return str(attrs["units"])
    normalize = attrs.get("normalize")
    if normalize in ("cpm", "none"):
        return NORMALIZED_UNITS[normalize]
    return None


def summed(units: str | None) -> bool:
    """Whether a bin's value adds up its bases.

    Parameters
    ----------
    units
        The values' units (:func:`units_of`).

    Returns
    -------
    bool
        True for reads, CPM and differences of them, so that bin / bin size is a per-base
        value; False for a log2 ratio of two bins' sums.
    """
    return units != LOG2_RATIO


def body_length_of(*frames) -> int | None:
    """The scaled body length that the frames' attrs record.

    Parameters
    ----------
    *frames
        Tables (None ones are skipped).

    Returns
    -------
    int or None
        The body length (scale-regions data), or None (reference-point data).

    Raises
    ------
    BamcoverError
        When frames disagree: they cannot share an axis.
    """
    bodies = {int(f.attrs.get(BODY) or 0) for f in frames if f is not None}
    if len(bodies) > 1:
        raise BamcoverError("scale-regions data (bodies of "
                            f"{sorted(b for b in bodies if b)} bp) mixed with other data; "
                            "plot tables of one kind and one body length together")
    body = max(bodies, default=0)
    return body or None


def tidy_profile(wide: pd.DataFrame, sample: str = "sample",
                 group: str = DEFAULT_GROUP) -> pd.DataFrame:
    """Convert the wide profile of :func:`bamcover.profile` to the tidy table.

    Parameters
    ----------
    wide
        Index (or column) ``offset``; columns ``<channel>_mean``, ``_median``, ``_std``,
        ``_sem``, ``_n``.
    sample, group
        The labels of its rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample, group, channel, offset, mean, median, std, sem, n``, one row per
        channel × offset (channels in column order). ``attrs`` are kept, plus ``units``
        (``"CPM"`` when the profile was normalised, else ``"reads"``).
    """
    if "offset" in wide.columns:
        wide = wide.set_index("offset")
    channels = ordered_unique(c.rsplit("_", 1)[0] for c in wide.columns
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
    out.attrs["units"] = units_of(wide) or READS
    return out


def profile_from_matrices(matrices, sample: str = "sample",
                          group: str = DEFAULT_GROUP) -> pd.DataFrame:
    """The tidy profile of one or several matrices.

    Parameters
    ----------
    matrices
        A matrix or ``{(sample, group): matrix}``.
    sample, group
        The labels of a single matrix.

    Returns
    -------
    pandas.DataFrame
        Per sample × group × channel × bin the mean, median, std (ddof = 1), sem and n over
        the regions with a value (NaN skipped), as :func:`bamcover.profile` computes them
        (see :func:`bamcover.statistics.nan_statistics`).
    """
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
    out.attrs["units"] = units or READS
    body = body_length_of(*matrices.values())
    if body:
        out.attrs[BODY] = body
    return out


def matrix_from_table(flat: pd.DataFrame) -> pd.DataFrame:
    """A matrix file's table back in bamcover's matrix layout.

    Parameters
    ----------
    flat
        ``chrom start end name strand channel status`` then one column per bin headed by
        its offset.

    Returns
    -------
    pandas.DataFrame
    """
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
    channels = ordered_unique(chan)
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
    """bamcover's matrix as its file table (the layout ``bamcover profile --matrix`` writes).

    Parameters
    ----------
    matrix
        A bamcover matrix.

    Returns
    -------
    pandas.DataFrame
        ``chrom start end name strand channel status`` then one column per bin.
    """
    flat = matrix.reset_index()
    out = flat[[*MATRIX_FILE_COLUMNS, *matrix.columns]].rename(columns=str)
    out.attrs.update(matrix.attrs)
    return out


def tidy_matrix(matrices, sample: str = "sample", group: str = DEFAULT_GROUP) -> pd.DataFrame:
    """Matrices as one long table; write it with :func:`bamcover.outputs.write_table`.

    Parameters
    ----------
    matrices
        A matrix or ``{(sample, group): matrix}``.
    sample, group
        The labels of a single matrix.

    Returns
    -------
    pandas.DataFrame
        One row per region × sample × channel × bin: ``sample, group, region, chrom, start,
        end, name, strand, status, channel, offset, value`` (``value`` as stored in the
        matrix: the bin's sum of per-base coverage).
    """
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
    units = first_units(matrices.values())
    if units:
        out.attrs["units"] = units
    return out


def matrices_from_tidy(long: pd.DataFrame) -> Matrices:
    """The inverse of :func:`tidy_matrix`.

    Parameters
    ----------
    long
        A tidy matrix table.

    Returns
    -------
    dict
        ``{(sample, group): matrix}``.
    """
    missing = [c for c in TIDY_MATRIX_COLUMNS if c not in long.columns]
    if missing:
        raise BamcoverError(f"not a tidy matrix table: columns {missing} missing")
    out: Matrices = {}
    for (smp, grp), part in long.groupby(["sample", "group"], sort=False):
        offsets = np.sort(part["offset"].unique())
        channels = ordered_unique(part["channel"].astype(str))
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


def first_units(frames) -> str | None:
    """The units of the first frame whose attrs say.

    Parameters
    ----------
    frames
        Tables.

    Returns
    -------
    str or None
    """
    for f in frames:
        u = units_of(f)
        if u:
            return u
    return None
