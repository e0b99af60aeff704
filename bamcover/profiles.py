"""Profiles and matrices of one BAM over one region set: ``compute``, ``matrix``, ``profile``.

Data flow: regions + BAM + options → chunks (:func:`prepare`) → per-chunk integer counts
→ reduction in input order (:func:`count_windows`, :func:`merge_counts`) → pandas tables
(:func:`finish`). Statistics are computed from exact integer sums and value histograms
(:mod:`bamcover.statistics`), so they are bit-identical for any number of processes or
chunks. Scale-regions values are float means: their statistics come from the assembled
matrix in input order.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import kernels, normalisation
from ._lazy import is_frame, pd
from .counting import (
    counts_from_blocks,
    coverages,
    make_chunks,
    read_blocks,
    window_counts,
    window_histogram,
    window_status,
)
from .matrices import matrix_frame, shared_zeros
from .normalisation import units
from .options import Options, with_overrides
from .pool import fold_local, worker_index, workers_for
from .reads import Bam, open_bam
from .regions import region_columns, window_bounds
from .schema import COMPUTABLE_STATUS, STATUS_CLIPPED, STATUS_EMPTY, STATUS_OK
from .statistics import ProfileStats, matrix_columns


@dataclass
class Prepared:
    """The inputs of a run, checked, and its chunks (:func:`prepare`)."""

    regions: pd.DataFrame | dict[str, np.ndarray]    # the columns, for a region file
    bam: Bam
    starts: np.ndarray
    status: np.ndarray
    chunks: list


def prepare(regions, bam, options: Options, rows: np.ndarray | None = None) -> Prepared:
    """Read and check the inputs, lay out windows and chunk the computable regions.

    Parameters
    ----------
    regions
        A region file, table or BedTool (see :func:`matrix`).
    bam
        A BAM path or :class:`~bamcover.reads.Bam`.
    options
        The run's options.
    rows
        Chunk only these regions (default: all computable ones).

    Returns
    -------
    Prepared
        The region columns, the BAM, window starts, statuses and chunks.
    """
    source = regions if isinstance(regions, (str, os.PathLike)) else "regions"
    if not ((is_frame(regions) or isinstance(regions, dict)) and "line" in regions):
        regions = region_columns(regions)
    bam = bam if isinstance(bam, Bam) else open_bam(bam)
    starts, ends, flip = window_bounds(regions, options, str(source))
    chroms = np.asarray(regions["chrom"], object)
    status = window_status(chroms, starts, ends, bam)
    if options.scale_regions:
        empty = np.asarray(regions["start"]) == np.asarray(regions["end"])
        status[empty & np.isin(status, (STATUS_OK, STATUS_CLIPPED))] = STATUS_EMPTY
    use = computable(status)
    if rows is not None:
        use = np.intersect1d(use, rows)
    minus = np.asarray(regions["strand"], object) == "-"
    chunks = make_chunks(bam, chroms[use], starts[use], ends[use], flip[use], minus[use], use,
                         _chunk_bases(options, (ends - starts)[use]))
    return Prepared(regions, bam, starts, status, chunks)


def computable(status: np.ndarray) -> np.ndarray:
    """Rows whose windows touch a chromosome of the BAM.

    Parameters
    ----------
    status
        Each region's status.

    Returns
    -------
    numpy.ndarray
        Their row numbers, in order.
    """
    return np.flatnonzero(np.isin(status, COMPUTABLE_STATUS))


def _chunk_bases(options: Options, sizes: np.ndarray) -> int:
    """Enough chunks to keep every process busy, never more bases than asked for (nor
    fewer than a mean window's)."""
    total = int(sizes.sum())
    per_process = -(-total // (4 * options.n_processes))
    mean = -(-total // max(len(sizes), 1))
    return max(mean, 1, min(options.chunk_bases, per_process))


@dataclass
class Result:
    """Everything one coverage run produced. The profile is kept as numpy ``columns``
    (``offset`` first) and ``codes`` (each region's status); ``profile`` and ``status`` are
    their pandas forms, made on first use."""

    columns: dict[str, np.ndarray]
    matrix: pd.DataFrame | None
    codes: np.ndarray
    library_size: int | None
    reads_used: int
    attrs: dict = field(default_factory=dict)

    @functools.cached_property
    def profile(self) -> pd.DataFrame:
        """The wide profile: index ``offset``, per channel mean, median, std, sem, n."""
        frame = pd.DataFrame(self.columns).set_index("offset")
        frame.attrs.update(self.attrs)
        return frame

    @functools.cached_property
    def status(self) -> pd.Series:
        return pd.Series(self.codes, name="status")


@dataclass
class Counts:
    """Integer results for some rows: profile accumulators, and per-bin sums for
    ``rows`` (sorted) when a matrix is wanted, with ``invalid`` marking the bins that have
    a base off the chromosome. Counts of disjoint row sets merge exactly.
    Scale-regions mode: ``values`` are always present, float64 per-bin means (exact per
    row, so they merge exactly too), and ``stats`` stays empty."""

    stats: ProfileStats
    rows: np.ndarray
    values: np.ndarray | None
    invalid: np.ndarray | None
    reads: int

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"rows": self.rows, "reads": np.array(self.reads), **self.stats.to_arrays()}
        if self.values is not None:
            arrays.update(values=self.values, invalid=self.invalid)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> Counts:
        return cls(ProfileStats.from_arrays(arrays), arrays["rows"], arrays.get("values"),
                   arrays.get("invalid"), int(arrays["reads"]))


def _add_chunk(stats: ProfileStats, chunk, options: Options) -> None:
    """Profile runs: read one chunk and count its windows' bin values into ``stats``. With
    the compiled kernel the values go from coverage straight into the histogram, never
    held as a regions × bins array."""
    blocks = read_blocks(chunk, options)
    if kernels.has_compiled_counting():
        covs, top = coverages(blocks, options, cumulative=options.bin_size > 1)
        table = stats.table_for(options.bin_size * top + 1)
        stats.add_keys(window_histogram(chunk, options, blocks, covs, table))
        stats.reads += len(blocks.s)
        return
    part = counts_from_blocks(chunk, options, blocks)
    stats.add(part.values, part.valid)
    stats.reads += part.reads


def _add_rows(stats: ProfileStats, chunk, options: Options, rows: np.ndarray, values: np.ndarray,
              invalid: np.ndarray) -> None:
    """Matrix runs: write the chunk's rows into the shared matrix and count them. Only
    rows with a bin off the chromosome touch the zeroed ``invalid`` mask, so its pages are
    only made for them."""
    part = window_counts(chunk, options)
    at = np.searchsorted(rows, part.rows)
    values[at] = part.values
    off = part.valid == 0
    some = off.any(axis=1)
    if some.any():
        invalid[at[some]] = off[some]
    if not options.scale_regions:
        stats.add(part.values, part.valid)
    stats.reads += part.reads


def count_windows(prep: Prepared, options: Options, rows: np.ndarray, with_matrix: bool,
                  progress: bool = False) -> Counts:
    """Count the prepared chunks of one BAM over one region set.

    Scale-regions values are float means: they are always kept (``stats`` stays empty) and
    the profile is computed from the assembled matrix in :func:`finish`. Each worker folds
    its chunks into one histogram table, in memory shared with this process, and sends back
    only the rare values too large for it, so the profile needs O(chunk) memory; with a
    matrix, workers also write their rows into it.

    Parameters
    ----------
    prep
        The prepared inputs (:func:`prepare`), whose regions are all in ``rows``.
    options
        The run's options.
    rows
        The rows counted, sorted.
    with_matrix
        Whether per-bin values are kept for a matrix.
    progress
        Show a progress bar.

    Returns
    -------
    Counts
        The rows' statistics, values (with a matrix) and reads.
    """
    nch, nbins = len(options.channels), options.n_bins
    values = invalid = None
    if with_matrix or options.scale_regions:
        values = shared_zeros((len(rows), nch, nbins),
                               np.float64 if options.scale_regions else np.int32)
        invalid = shared_zeros((len(rows), nbins), bool)
        # rows in no chunk have no bin on a chromosome
        invalid[np.isin(rows, computable(prep.status), invert=True)] = True
        add = functools.partial(_add_rows, options=options, rows=rows, values=values,
                                invalid=invalid)
    else:
        add = functools.partial(_add_chunk, options=options)
    new = functools.partial(ProfileStats, nch, nbins)
    tables = []
    processes = workers_for(options.n_processes, prep.chunks)
    if processes > 1 and kernels.has_fast_histograms() and not options.scale_regions:
        # each worker counts into its own table in shared memory: nothing to send back
        tables = [shared_zeros(ProfileStats.table_shape(nch, nbins), np.int32)
                  for _ in range(processes)]

        def new():
            return ProfileStats(nch, nbins, tables[worker_index()])

    parts = fold_local(new, add, prep.chunks, processes, progress, "windows")
    stats = merge_stats(parts, options, tables)
    return Counts(stats, rows, values, invalid, stats.reads)


def merge_stats(parts: Iterable[ProfileStats], options: Options,
                tables: Iterable[np.ndarray] = ()) -> ProfileStats:
    """The reduction of profile accumulators: exact, so in any order and grouping.

    Parameters
    ----------
    parts
        Accumulators of disjoint sets of windows (workers', or cluster chunks').
    options
        The run's options (channels and bins).
    tables
        Dense tables lent to workers (see :meth:`ProfileStats.add_table`), added after
        ``parts``.

    Returns
    -------
    ProfileStats
        One accumulator of all the windows.
    """
    stats = ProfileStats(len(options.channels), options.n_bins)
    for part in parts:
        stats.merge(part)
    for table in tables:
        stats.add_table(table)
    return stats


def merge_counts(parts: Sequence[Counts], options: Options, with_matrix: bool) -> Counts:
    """The reduction of the counts of disjoint row sets (chunks) into those of all rows.

    Parameters
    ----------
    parts
        Counts of disjoint row sets, in any order.
    options
        The run's options.
    with_matrix
        Whether the parts hold per-bin values for a matrix (scale-regions parts always
        do).

    Returns
    -------
    Counts
        Statistics merged (:func:`merge_stats`), rows sorted, their values and invalid
        bins in that order, reads summed.
    """
    stats = merge_stats((p.stats for p in parts), options)
    rows = np.concatenate([p.rows for p in parts])
    order = np.argsort(rows)
    values = invalid = None
    if with_matrix or options.scale_regions:
        values = np.concatenate([p.values for p in parts])[order]
        invalid = np.concatenate([p.invalid for p in parts])[order]
    return Counts(stats, rows[order], values, invalid, sum(p.reads for p in parts))


def finish(regions: pd.DataFrame, bam: Bam, status: np.ndarray, counts: Counts,
           options: Options, with_matrix: bool, release: bool = False,
           size: int | None = None) -> Result:
    """Turn the counts of all rows into the profile and matrix tables.

    Parameters
    ----------
    regions, bam, status
        The region table, the BAM and each region's status.
    counts
        The counts of all computable rows (:func:`count_windows`, :func:`merge_counts`).
    options, with_matrix
        The run's options; whether the matrix is wanted.
    release
        The counts are not used again: their shared memory is freed as the matrix is built.
    size
        The library size, if already counted (else it is counted from ``bam``).

    Returns
    -------
    Result
    """
    factor, size = normalisation.factor(bam, options, size)
    mat = None
    if with_matrix or options.scale_regions:
        nreg, nch, nbins = len(status), len(options.channels), options.n_bins
        if len(counts.rows) == nreg:
            values, invalid = counts.values, counts.invalid
        else:
            values = np.zeros((nreg, nch, nbins), dtype=counts.values.dtype)
            invalid = np.ones((nreg, nbins), dtype=bool)
            values[counts.rows], invalid[counts.rows] = counts.values, counts.invalid
    if options.scale_regions:
        prof = matrix_columns(values, ~invalid, options.offsets, options.channels, factor)
    else:
        prof = counts.stats.columns(options.offsets, options.channels, factor)
    scaled = {"body_length": options.body_length} if options.scale_regions else {}
    if with_matrix:
        mat = matrix_frame(regions, status, values, invalid, options, factor, release)
        mat.attrs.update(units=units(options), **scaled)
    attrs = {"bam": bam.path, "normalize": options.normalize, "library_size": size,
             "units": units(options), **scaled}
    return Result(prof, mat, np.asarray(status, object), size, counts.reads, attrs)


def compute(regions, bam, options: Options | None = None, *, with_matrix: bool = True,
            progress: bool = False, **overrides) -> Result:
    """Run the windows of ``regions`` over ``bam``: the profile, and the matrix if asked.

    Memory: O(chunk) for the profile; the matrix adds n_regions × channels × bins int32.
    In scale-regions mode the float64 matrix is always held (the profile is computed from it).

    Parameters
    ----------
    regions, bam, options, **overrides, progress
        As for :func:`matrix`.
    with_matrix
        Whether the matrix is made too.

    Returns
    -------
    Result
        The profile (``columns``, ``profile``), the matrix or None, statuses, library size.
    """
    options = with_overrides(options, overrides)
    prep = prepare(regions, bam, options)
    rows = np.arange(len(prep.starts))
    counts = count_windows(prep, options, rows, with_matrix, progress)
    return finish(prep.regions, prep.bam, prep.status, counts, options, with_matrix,
                  release=True)


def matrix(regions, bam, options: Options | None = None, *, progress: bool = False,
           **overrides) -> pd.DataFrame:
    """Per-region coverage matrix.

    Parameters
    ----------
    regions
        BED/narrowPeak path, DataFrame (``chrom, start, end[, name, strand]``) or BedTool.
    bam
        Path of a coordinate-sorted, indexed BAM.
    options, **overrides
        An :class:`Options` and/or its fields by name (``fragment_size=200``).

    Returns
    -------
    DataFrame with one row per region × channel in input order (index levels ``region,
    chrom, start, end, name, strand, status, channel``) and one column per bin, labelled
    by its first offset. NaN marks bins with bases off the chromosome and regions that
    could not be computed (see ``status``).
    """
    return compute(regions, bam, options, with_matrix=True, progress=progress,
                   **overrides).matrix


def profile(regions, bam, options: Options | None = None, *, progress: bool = False,
            **overrides) -> pd.DataFrame:
    """Average profile over regions.

    Parameters
    ----------
    regions, bam, options, **overrides, progress
        As for :func:`matrix`.

    Returns
    -------
    pandas.DataFrame
        One row per offset; for every channel the mean, median, std (ddof=1), sem and n
        (regions with data at that offset) over regions. With ``normalize='cpm'`` the
        statistics are scaled by 10⁶ / (reads passing the filters);
        ``attrs['library_size']`` says how many.
    """
    return compute(regions, bam, options, with_matrix=False, progress=progress,
                   **overrides).profile
