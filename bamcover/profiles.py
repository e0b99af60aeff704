"""Profiles and normalisation: the public API (``matrix``, ``profile``, ``density``).

Data flow: regions + BAM + options → chunks → per-chunk integer counts → reduction in
input order → pandas tables. Statistics are computed from exact integer sums and value
histograms, so they are bit-identical for any number of processes or chunks. Scale-regions
values are float means: their statistics come from the assembled matrix in input order.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import normalisation, reads
from ._lazy import is_frame, pd
from .counting import (
    counts_from_blocks,
    coverages,
    make_chunks,
    per_chrom,
    read_blocks,
    region_counts,
    window_counts,
    window_histogram,
)
from .errors import BamcoverError
from .matrices import matrix_frame, shared_zeros
from .normalisation import units, versus_control
from .options import Options
from .pool import fold_local, map_local, starmap_local, worker_index, workers_for
from .reads import Bam, library_size, open_bam
from .regions import read_regions, region_columns, window_bounds
from .schema import (
    COMPUTABLE_STATUS,
    STATUS_CLIPPED,
    STATUS_EMPTY,
    STATUS_MISSING,
    STATUS_OFF,
    STATUS_OK,
    STATUS_UNKNOWN,
    label_from_path,
)
from .statistics import ProfileStats, matrix_columns

_Stats = ProfileStats   # re-export for cluster and tests; removed when callers move


def _options(options: Options | None, overrides: dict) -> Options:
    options = options or Options()
    return options.replace(**overrides) if overrides else options


def _status(chroms: np.ndarray, starts: np.ndarray, ends: np.ndarray, bam: Bam) -> np.ndarray:
    length = per_chrom(chroms, bam.lengths, -1)
    status = np.full(len(chroms), STATUS_OK, dtype=object)
    status[(starts < 0) | (ends > length)] = STATUS_CLIPPED
    status[(ends <= 0) | (starts >= length)] = STATUS_OFF
    status[length < 0] = STATUS_UNKNOWN
    return status


@dataclass
class _Prepared:
    regions: pd.DataFrame | dict[str, np.ndarray]    # the columns, for a region file
    bam: Bam
    starts: np.ndarray
    status: np.ndarray
    chunks: list


def _prepare(regions, bam, options: Options, rows: np.ndarray | None = None) -> _Prepared:
    """Read and check the inputs, lay out windows and chunk the computable regions (only
    those in ``rows``, when given)."""
    source = regions if isinstance(regions, (str, os.PathLike)) else "regions"
    if not ((is_frame(regions) or isinstance(regions, dict)) and "line" in regions):
        regions = region_columns(regions)
    bam = bam if isinstance(bam, Bam) else open_bam(bam)
    starts, ends, flip = window_bounds(regions, options, str(source))
    chroms = np.asarray(regions["chrom"], object)
    status = _status(chroms, starts, ends, bam)
    if options.scale_regions:
        empty = np.asarray(regions["start"]) == np.asarray(regions["end"])
        status[empty & np.isin(status, (STATUS_OK, STATUS_CLIPPED))] = STATUS_EMPTY
    use = computable(status)
    if rows is not None:
        use = np.intersect1d(use, rows)
    minus = np.asarray(regions["strand"], object) == "-"
    chunks = make_chunks(bam, chroms[use], starts[use], ends[use], flip[use], minus[use], use,
                         _chunk_bases(options, (ends - starts)[use]))
    return _Prepared(regions, bam, starts, status, chunks)


def computable(status: np.ndarray) -> np.ndarray:
    """Rows whose windows touch a chromosome of the BAM."""
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
    if reads.kernel() is not None:
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


def count_windows(prep: _Prepared, options: Options, rows: np.ndarray, with_matrix: bool,
                  progress: bool = False) -> Counts:
    """Count the prepared chunks (whose regions are all in sorted ``rows``). Scale-regions
    values are float means: they are always kept (``stats`` stays empty) and the profile is
    computed from the assembled matrix in :func:`finish`.

    Each worker folds its chunks into one histogram table, in memory shared with this
    process, and sends back only the rare values too large for it, so the profile needs
    O(chunk) memory; with a matrix, workers also write their rows into it."""
    nch, nbins = len(options.channels), options.n_bins
    stats = ProfileStats(nch, nbins)
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
    if processes > 1 and reads.kernel() is not None and not options.scale_regions:
        # each worker counts into its own table in shared memory: nothing to send back
        tables = [shared_zeros(ProfileStats.table_shape(nch, nbins), np.int32)
                  for _ in range(processes)]

        def new():
            return ProfileStats(nch, nbins, tables[worker_index()])

    for part in fold_local(new, add, prep.chunks, processes, progress, "windows"):
        stats.merge(part)
    for table in tables:
        stats.add_table(table)
    return Counts(stats, rows, values, invalid, stats.reads)


def finish(regions: pd.DataFrame, bam: Bam, status: np.ndarray, counts: Counts,
           options: Options, with_matrix: bool, release: bool = False,
           size: int | None = None) -> Result:
    """Turn the counts of all rows into the profile and matrix tables. ``release``: the
    counts are not used again; their shared memory is freed as the matrix is built.
    ``size``: the library size, if already counted (else it is counted from ``bam``)."""
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
    """
    options = _options(options, overrides)
    prep = _prepare(regions, bam, options)
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
    """Average profile: one row per offset; for every channel the mean, median, std
    (ddof=1), sem and n (regions with data at that offset) over regions.

    Parameters are those of :func:`matrix`. With ``normalize='cpm'`` the statistics are
    scaled by 10⁶ / (reads passing the filters); ``attrs['library_size']`` says how many.
    """
    return compute(regions, bam, options, with_matrix=False, progress=progress,
                   **overrides).profile


def density(regions, bams: str | os.PathLike | Sequence[str | os.PathLike],
            options: Options | None = None, *, labels: Sequence[str] | None = None,
            progress: bool = False, **overrides) -> pd.DataFrame:
    """Reads per region per sample: a read counts if its covered interval overlaps the
    region ``[start, end)``.

    Returns
    -------
    DataFrame with ``chrom, start, end, name, strand, status`` and, for each sample (and
    channel, with ``strand_wise``), ``<label>[_<channel>]_count``, ``_cpm`` and ``_rpkm``,
    plus ``<label>_library_size`` (reads passing the filters, used for CPM/RPKM).
    """
    options = _options(options, overrides)
    regs, opened, labels = density_inputs(regions, bams, labels)
    sizes = starmap_local(library_size, opened, options.read_rules(),
                          processes=options.n_processes)
    counts = [density_counts(regs, bam, options, progress=progress, label=label)
              for bam, label in zip(opened, labels, strict=True)]
    return density_table(regs, opened, labels, counts, sizes, options)


def density_inputs(regions, bams, labels=None) -> tuple[pd.DataFrame, list[Bam], list[str]]:
    """Read the regions, check the BAMs and settle the sample labels."""
    bams = [bams] if isinstance(bams, (str, os.PathLike, Bam)) else list(bams)
    labels = list(labels) if labels is not None else [label_from_path(getattr(b, "path", b))
                                                      for b in bams]
    if len(labels) != len(bams):
        raise BamcoverError(f"{len(labels)} labels for {len(bams)} BAM files")
    if len(set(labels)) != len(labels):
        raise BamcoverError(f"duplicate sample labels {labels}; give distinct --labels")
    regs = regions if isinstance(regions, pd.DataFrame) and "line" in regions \
        else read_regions(regions)
    return regs, [b if isinstance(b, Bam) else open_bam(b) for b in bams], labels


def density_counts(regs: pd.DataFrame, bam: Bam, options: Options,
                   rows: np.ndarray | None = None, progress: bool = False, label: str = ""
                   ) -> np.ndarray:
    """Reads overlapping each region (regions × channels); NaN where not counted (unknown
    chromosome, or not in ``rows``)."""
    chroms = regs["chrom"].to_numpy()
    starts, ends = regs["start"].to_numpy(np.int64), regs["end"].to_numpy(np.int64)
    minus = regs["strand"].to_numpy() == "-"
    use = np.flatnonzero(_status(chroms, starts, ends, bam) != STATUS_UNKNOWN)
    if rows is not None:
        use = np.intersect1d(use, rows)
    chunks = make_chunks(bam, chroms[use], starts[use], ends[use], np.zeros(len(use), bool),
                         minus[use], use, max(1, options.chunk_bases))
    counts = np.full((len(regs), len(options.channels)), np.nan)
    work = functools.partial(region_counts, options=options)
    for part in map_local(work, chunks, options.n_processes, progress, label or "regions"):
        counts[part.rows] = part.counts
    return counts


def density_table(regs: pd.DataFrame, opened: Sequence[Bam], labels: Sequence[str],
                  counts: Sequence[np.ndarray], sizes: Sequence[int], options: Options,
                  missing: np.ndarray | None = None) -> pd.DataFrame:
    """Assemble counts, CPM and RPKM per sample; ``missing`` rows get status 'missing'."""
    out = regs[["chrom", "start", "end", "name", "strand"]].copy()
    starts, ends = regs["start"].to_numpy(np.int64), regs["end"].to_numpy(np.int64)
    length = (ends - starts).astype(np.float64)
    for bam, label, count, size in zip(opened, labels, counts, sizes, strict=True):
        status = _status(regs["chrom"].to_numpy(), starts, ends, bam)
        if missing is not None:
            status[missing] = STATUS_MISSING
        out["status" if len(opened) == 1 else f"{label}_status"] = status
        for c, channel in enumerate(options.channels):
            stem = label if channel == "total" else f"{label}_{channel}"
            out[f"{stem}_count"] = count[:, c]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"{stem}_cpm"] = count[:, c] * 1e6 / size if size else np.nan
                out[f"{stem}_rpkm"] = (count[:, c] * 1e9 / (size * length) if size
                                       else np.nan)
        out[f"{label}_library_size"] = size
    return out


_stem = label_from_path   # re-export for cli; removed when callers move


# --- several samples, several region groups, controls -------------------------------------

@dataclass
class Coverage:
    """A run over several samples and region groups.

    ``profile`` is tidy (``sample, group, channel, offset, mean, median, std, sem, n``);
    ``matrices[(sample, group)]`` is the wide matrix of that pair (see :func:`matrix`);
    ``library_sizes[sample]`` the reads passing the filters (None when not needed).
    """

    profile: pd.DataFrame
    matrices: dict[tuple[str, str], pd.DataFrame]
    library_sizes: dict[str, int | None]
    units: str

    def matrix(self, sample: str, group: str) -> pd.DataFrame:
        return self.matrices[(sample, group)]


def _labelled(items, labels, what: str) -> dict[str, object]:
    if isinstance(items, dict):
        return {str(k): v for k, v in items.items()}
    items = [items] if isinstance(items, (str, os.PathLike, pd.DataFrame)) or \
        type(items).__name__ == "BedTool" else list(items)
    if labels is None:
        labels = [label_from_path(getattr(i, "fn", i)) if not isinstance(i, pd.DataFrame)
                  else f"{what}{k}" for k, i in enumerate(items, 1)]
    labels = list(labels)
    if len(labels) != len(items):
        raise BamcoverError(f"{len(labels)} {what} labels for {len(items)} {what}s")
    if len(set(labels)) != len(labels):
        raise BamcoverError(f"duplicate {what} labels {labels}; give distinct labels")
    return dict(zip(labels, items, strict=True))


def coverage(regions, bams, options: Options | None = None, *, labels=None,
             group_labels=None, control=None, with_matrix: bool = True,
             progress: bool = False, **overrides) -> Coverage:
    """Profiles (and matrices) for every sample × region group in one call.

    Parameters
    ----------
    regions
        A region file/DataFrame/BedTool, or a list or ``{label: regions}`` dict of groups
        (e.g. H3K4me3 peaks and H3K27me3 peaks). Labels default to file stems.
    bams
        A BAM path, or a list or ``{label: path}`` dict of samples.
    control
        A control BAM for every sample, or a ``{sample: control}`` dict: values become
        ``log2((sample + p) / (control + p))`` or ``sample − control`` (``operation``,
        ``pseudocount``), both normalised by ``normalize`` first; with ``normalize='none'``
        the control is scaled to the sample's library size.
    options, **overrides, progress
        As for :func:`matrix`.

    Returns
    -------
    :class:`Coverage`. Without a control, statistics come from exact integer sums (any
    number of processes gives the same bits); with a control they are computed from the
    matrices (mean, median, std ddof=1, sem, n over regions with a value), which are then
    always held in memory.
    """
    from .formats import profile_from_matrices, tidy_profile

    options = _options(options, overrides)
    groups = _labelled(regions, group_labels, "group")
    samples = _labelled(bams, labels, "sample")
    controls = control if isinstance(control, dict) else {s: control for s in samples} \
        if control is not None else {}
    groups = {g: read_regions(r) if not isinstance(r, pd.DataFrame) or "line" not in r else r
              for g, r in groups.items()}
    opened = {s: open_bam(b) if not isinstance(b, Bam) else b for s, b in samples.items()}
    profiles, matrices, sizes = [], {}, {}
    for sample, bam in opened.items():
        ctrl = controls.get(sample)
        for group, regs in groups.items():
            if ctrl is None:
                res = compute(regs, bam, options, with_matrix=with_matrix, progress=progress)
                profiles.append(tidy_profile(res.profile, sample, group))
                if with_matrix:
                    matrices[(sample, group)] = res.matrix
            else:
                mat, size = _versus_control(regs, bam, ctrl, options, progress)
                matrices[(sample, group)] = mat
                profiles.append(profile_from_matrices({(sample, group): mat}))
            sizes[sample] = res.library_size if ctrl is None else size
    prof = pd.concat(profiles, ignore_index=True)
    unit = units(options, control=bool(controls))
    scaled = {"body_length": options.body_length} if options.scale_regions else {}
    prof.attrs.update(units=unit, **scaled)
    for m in matrices.values():
        m.attrs.update(units=unit, **scaled)
    return Coverage(prof, matrices, sizes, unit)


def _versus_control(regs, bam: Bam, control, options: Options, progress: bool
                    ) -> tuple[pd.DataFrame, int]:
    """The sample's matrix against its control's, both normalised."""
    ctrl = control if isinstance(control, Bam) else open_bam(control)
    raw = options.replace(normalize=options.normalize if options.normalize != "none"
                          else "cpm", scale_factor=1.0)
    sample = compute(regs, bam, raw, with_matrix=True, progress=progress)
    base = compute(regs, ctrl, raw, with_matrix=True, progress=progress)
    values = versus_control(sample.matrix.to_numpy(np.float64),
                            base.matrix.to_numpy(np.float64), sample.library_size, options)
    out = pd.DataFrame(values, index=sample.matrix.index, columns=sample.matrix.columns)
    return out, sample.library_size
