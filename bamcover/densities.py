"""Density: reads per region per sample, with CPM and RPKM (the ``density`` API)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

from ._lazy import pd
from .counting import make_chunks, region_counts, window_status
from .errors import BamcoverError
from .options import Options, with_overrides
from .pool import map_local, starmap_local
from .reads import Bam, library_size, open_bam
from .regions import read_regions
from .schema import REGION_COLUMNS, STATUS_MISSING, STATUS_UNKNOWN, label_from_path


def density(regions, bams: str | os.PathLike | Sequence[str | os.PathLike],
            options: Options | None = None, *, labels: Sequence[str] | None = None,
            progress: bool = False, **overrides) -> pd.DataFrame:
    """Reads per region per sample: a read counts if its covered interval overlaps the
    region ``[start, end)``.

    Parameters
    ----------
    regions
        BED/narrowPeak path, DataFrame or BedTool.
    bams
        One BAM path or several.
    options, **overrides
        An :class:`Options` and/or its fields by name.
    labels
        Sample labels (default: the BAM file names without ``.bam``).
    progress
        Show progress bars.

    Returns
    -------
    DataFrame with ``chrom, start, end, name, strand, status`` and, for each sample (and
    channel, with ``strand_wise``), ``<label>[_<channel>]_count``, ``_cpm`` and ``_rpkm``,
    plus ``<label>_library_size`` (reads passing the filters, used for CPM/RPKM).
    """
    options = with_overrides(options, overrides)
    regs, opened, labels = density_inputs(regions, bams, labels)
    sizes = starmap_local(library_size, opened, options.read_rules(),
                          processes=options.n_processes)
    counts = [density_counts(regs, bam, options, progress=progress, label=label)
              for bam, label in zip(opened, labels, strict=True)]
    return density_table(regs, opened, labels, counts, sizes, options)


def density_inputs(regions, bams, labels=None) -> tuple[pd.DataFrame, list[Bam], list[str]]:
    """Read the regions, check the BAMs and settle the sample labels.

    Parameters
    ----------
    regions
        A region file, or a region table as :func:`~bamcover.regions.read_regions` reads.
    bams
        One BAM (path or :class:`~bamcover.reads.Bam`) or several.
    labels
        Sample labels (default: the BAM file names without ``.bam``).

    Returns
    -------
    tuple
        ``(regions, BAMs opened, labels)``.
    """
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
    """Reads overlapping each region.

    Parameters
    ----------
    regs
        The regions (:func:`density_inputs`).
    bam, options
        The BAM and the options (read filters, channels, processes).
    rows
        Count only these regions (default: all).
    progress, label
        Show a progress bar, named ``label``.

    Returns
    -------
    numpy.ndarray
        Counts (regions × channels, float); NaN where not counted (unknown chromosome, or
        not in ``rows``).
    """
    chroms = regs["chrom"].to_numpy()
    starts, ends = regs["start"].to_numpy(np.int64), regs["end"].to_numpy(np.int64)
    minus = regs["strand"].to_numpy() == "-"
    use = np.flatnonzero(window_status(chroms, starts, ends, bam) != STATUS_UNKNOWN)
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
    """Assemble counts, CPM and RPKM per sample.

    Parameters
    ----------
    regs, opened, labels
        The regions, the BAMs and their sample labels (:func:`density_inputs`).
    counts
        Each sample's :func:`density_counts`.
    sizes
        Each sample's library size.
    options
        The channels.
    missing
        Rows whose counts are missing (a failed cluster chunk): status ``missing``.

    Returns
    -------
    pandas.DataFrame
        See :func:`density`.
    """
    out = regs[list(REGION_COLUMNS)].copy()
    starts, ends = regs["start"].to_numpy(np.int64), regs["end"].to_numpy(np.int64)
    length = (ends - starts).astype(np.float64)
    for bam, label, count, size in zip(opened, labels, counts, sizes, strict=True):
        status = window_status(regs["chrom"].to_numpy(), starts, ends, bam)
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
