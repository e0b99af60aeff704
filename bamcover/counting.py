"""Counting: group windows into chunks and turn one chunk's reads into per-bin counts.

A chunk is a run of windows on one chromosome, in genome order. Its windows are merged
into disjoint blocks; every record overlapping a block (plus the fetch margin) is read
once, its covered interval is added to a difference array over the blocks, and two
cumulative sums give per-bin sums for any window by two lookups per bin. All integer, so
results are identical whatever the chunking or the number of processes. Scale-regions bins
(fractional bases) are exact integer integrals too, divided once into float64 means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .kernels import overflow_room, scratch
from .options import Options
from .reads import Bam, intervals
from .regions import flank_lengths
from .schema import STATUS_CLIPPED, STATUS_EMPTY, STATUS_OFF, STATUS_OK, STATUS_UNKNOWN

INT32_MAX = np.iinfo(np.int32).max


@dataclass
class Chunk:
    """Windows (or, for density, regions) on one chromosome, sorted by start."""

    bam: Bam
    chrom: str
    rows: np.ndarray          # positions of these regions in the input table
    starts: np.ndarray        # window (or region) starts, genomic, may be < 0
    ends: np.ndarray
    flip: np.ndarray          # window read right-to-left ('-' region, oriented)
    minus: np.ndarray         # region strand is '-' (sense = reverse reads)

    @property
    def length(self) -> int:
        return self.bam.lengths[self.chrom]


def per_chrom(chroms: np.ndarray, values: dict[str, int], default: int) -> np.ndarray:
    """``values[chrom]`` (``default`` when absent) for every row, as int64: one dict lookup
    per distinct chromosome, rows mapped by their run of equal neighbours (region files are
    mostly grouped by chromosome)."""
    chroms = np.asarray(chroms, dtype=object)
    if not len(chroms):
        return np.empty(0, np.int64)
    first = np.flatnonzero(np.r_[True, chroms[1:] != chroms[:-1]])
    run = np.array([values.get(c, default) for c in chroms[first]], dtype=np.int64)
    return np.repeat(run, np.diff(np.r_[first, len(chroms)]))


def make_chunks(bam: Bam, chroms: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                flip: np.ndarray, minus: np.ndarray, rows: np.ndarray, target_bases: int
                ) -> list[Chunk]:
    """Split regions into chunks of nearby regions with about ``target_bases`` window
    bases each, chromosomes in BAM header order."""
    chunks = []
    key = per_chrom(chroms, {c: i for i, c in enumerate(bam.lengths)}, -1)
    order = np.lexsort((starts, key))
    key, sizes = key[order], (ends - starts)[order]
    bounds = np.flatnonzero(np.diff(key)) + 1
    for group in np.split(np.arange(len(order)), bounds):
        if group.size == 0:
            continue
        cum = np.cumsum(sizes[group])
        cut = np.flatnonzero(np.diff(cum // max(target_bases, 1))) + 1
        for part in np.split(group, cut):
            idx = order[part]
            chunks.append(Chunk(bam, str(chroms[idx[0]]), rows[idx], starts[idx], ends[idx],
                                flip[idx], minus[idx]))
    return chunks


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge sorted-by-start intervals; returns block starts, ends and each input's block."""
    reach = np.maximum.accumulate(ends)
    new = np.ones(len(starts), dtype=bool)
    new[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new)
    return starts[first], np.maximum.reduceat(ends, first), np.cumsum(new) - 1


def _fetch_regions(chunk: Chunk, lo: np.ndarray, hi: np.ndarray, margin: int):
    fs = np.clip(lo - margin, 0, chunk.length)
    fe = np.clip(hi + margin, 0, chunk.length)
    fs, fe, _ = _merge(fs, fe)
    return fs, fe


def _diff(s, e, bstart, bend, base, size):
    """Difference array over concatenated blocks (each with one spare slot)."""
    plus, minus = [], []
    k = np.searchsorted(bend, s, side="right")
    live = np.arange(len(s))
    while live.size:
        ok = (k < len(bstart))
        live, k = live[ok], k[ok]
        ok = bstart[k] < e[live]
        live, k = live[ok], k[ok]
        if not live.size:
            break
        lo = np.maximum(s[live], bstart[k]) - bstart[k] + base[k]
        hi = np.minimum(e[live], bend[k]) - bstart[k] + base[k]
        plus.append(lo)
        minus.append(hi)
        more = e[live] > bend[k]   # interval reaches into a later block
        live, k = live[more], k[more] + 1
    plus = np.concatenate(plus) if plus else np.empty(0, np.int64)
    minus = np.concatenate(minus) if minus else np.empty(0, np.int64)
    return (np.bincount(plus, minlength=size).astype(np.int64)
            - np.bincount(minus, minlength=size))


def window_status(chroms: np.ndarray, starts: np.ndarray, ends: np.ndarray, bam: Bam
                  ) -> np.ndarray:
    """Where windows lie on the BAM's chromosomes.

    Parameters
    ----------
    chroms, starts, ends
        The windows (genomic, ``starts`` may be < 0).
    bam
        The BAM whose header gives the chromosome lengths.

    Returns
    -------
    numpy.ndarray
        One status per window (object): ``ok``, ``clipped``, ``off_chromosome`` or
        ``unknown_chromosome`` (see :mod:`bamcover.schema`).
    """
    length = per_chrom(chroms, bam.lengths, -1)
    status = np.full(len(chroms), STATUS_OK, dtype=object)
    status[(starts < 0) | (ends > length)] = STATUS_CLIPPED
    status[(ends <= 0) | (starts >= length)] = STATUS_OFF
    status[length < 0] = STATUS_UNKNOWN
    return status


@dataclass
class ChunkCounts:
    """Per-bin values for a chunk's windows, oriented: ``values`` (n, channels, bins) int32
    sums (reference-point mode) or float64 means (scale-regions mode); ``valid`` (n, bins) is
    False for bins with any base off the chromosome (and empty bodies)."""

    rows: np.ndarray
    values: np.ndarray
    valid: np.ndarray
    reads: int


@dataclass
class _Blocks:
    """A chunk's windows merged into disjoint blocks laid end to end (each block with one
    spare slot), and the covered intervals of every record overlapping them."""

    cs: np.ndarray        # windows clipped to the chromosome
    ce: np.ndarray
    bstart: np.ndarray
    bend: np.ndarray
    block: np.ndarray     # each window's block
    base: np.ndarray      # each block's first slot
    total: int
    s: np.ndarray
    e: np.ndarray
    rev: np.ndarray

    def index(self, pos: np.ndarray) -> np.ndarray:
        """Slots of genomic positions ``pos`` (n, k), clipped to each row's window."""
        b = self.block[:, None]
        return np.clip(pos, self.cs[:, None], self.ce[:, None]) - self.bstart[b] + self.base[b]

    def coverage(self, mask) -> tuple[np.ndarray, np.ndarray]:
        """Per-slot coverage by the selected records, and its cumulative sum (one longer)."""
        cov = np.cumsum(_diff(self.s[mask], self.e[mask], self.bstart, self.bend, self.base,
                              self.total + 1)[:self.total])
        cum = np.zeros(self.total + 1, dtype=np.int64)
        np.cumsum(cov, out=cum[1:])
        return cov, cum


def read_blocks(chunk: Chunk, options: Options) -> _Blocks:
    """Merge a chunk's windows into blocks and read the intervals of the records on them."""
    length = chunk.length
    cs = np.clip(chunk.starts, 0, length)
    ce = np.clip(chunk.ends, 0, length)
    bstart, bend, block = _merge(cs, ce)
    blen = bend - bstart
    base = np.zeros(len(bstart), dtype=np.int64)
    base[1:] = np.cumsum(blen + 1)[:-1]
    fs, fe = _fetch_regions(chunk, bstart, bend, options.fetch_margin)
    s, e, rev = intervals(chunk.bam, chunk.chrom, fs, fe, options.read_rules())
    return _Blocks(cs, ce, bstart, bend, block, base, int((blen + 1).sum()), s, e, rev)


def _by_channel(chunk: Chunk, options: Options, blocks: _Blocks, per_reads) -> np.ndarray:
    """``per_reads(mask)`` (n, bins) for all records, or strand-wise for the sense and
    antisense records of each region: (n, channels, bins)."""
    if not options.strand_wise:
        return per_reads(slice(None))[:, None, :]
    fwd, rv = per_reads(blocks.rev == 0), per_reads(blocks.rev == 1)
    m = chunk.minus[:, None]
    return np.stack([np.where(m, rv, fwd), np.where(m, fwd, rv)], axis=1)


def window_counts(chunk: Chunk, options: Options) -> ChunkCounts:
    """Per-bin read coverage of every window in ``chunk`` (sums; in scale-regions mode the
    means of :func:`scaled_counts`)."""
    if options.scale_regions:
        return scaled_counts(chunk, options)
    return counts_from_blocks(chunk, options, read_blocks(chunk, options))


def counts_from_blocks(chunk: Chunk, options: Options, blocks: _Blocks) -> ChunkCounts:
    """:func:`window_counts` of a chunk whose records are already read."""
    length, size, nbins = chunk.length, options.bin_size, options.n_bins
    if kernels.has_compiled_counting():
        return _compiled_window_counts(chunk, options, blocks)
    edges = chunk.starts[:, None] + size * np.arange(nbins + 1)
    valid = (edges[:, :-1] >= 0) & (edges[:, 1:] <= length)
    pos = blocks.index(edges)

    def bin_sums(mask):
        cum = blocks.coverage(mask)[1]
        return cum[pos[:, 1:]] - cum[pos[:, :-1]]

    sums = _by_channel(chunk, options, blocks, bin_sums)
    sums[~np.broadcast_to(valid[:, None, :], sums.shape)] = 0
    if sums.size and sums.max() > INT32_MAX:
        raise OverflowError("a bin sum exceeds 2^31; use a smaller --bin-size")
    flip = chunk.flip
    sums[flip] = sums[flip][:, :, ::-1]
    valid[flip] = valid[flip][:, ::-1]
    return ChunkCounts(chunk.rows, sums.astype(np.int32), valid, len(blocks.s))


def _compiled_window_counts(chunk: Chunk, options: Options, blocks: _Blocks) -> ChunkCounts:
    """The same sums as the numpy path, from the kernel's one-pass loop."""
    n, nbins = len(chunk.starts), options.n_bins
    cums, _ = coverages(blocks, options, cumulative=True)
    cum_a, cum_b = cums[0], cums[1] if len(cums) > 1 else None
    values = np.empty((n, 2 if options.strand_wise else 1, nbins), dtype=np.int32)
    valid = np.empty((n, nbins), dtype=np.uint8)
    top = kernels.window_sums(
        cum_a, cum_b, np.ascontiguousarray(chunk.starts, np.int64), blocks.cs, blocks.ce,
        _slot_offsets(blocks), chunk.flip.astype(np.uint8), chunk.minus.astype(np.uint8),
        options.bin_size, nbins, chunk.length, values, valid)
    if top > INT32_MAX:
        raise OverflowError("a bin sum exceeds 2^31; use a smaller --bin-size")
    return ChunkCounts(chunk.rows, values, valid.view(bool), len(blocks.s))


def _slot_offsets(blocks: _Blocks) -> np.ndarray:
    """Per window: slot of genomic position p is p + offset."""
    return blocks.base[blocks.block] - blocks.bstart[blocks.block]


def coverages(blocks: _Blocks, options: Options, cumulative: bool
              ) -> tuple[list[np.ndarray], int]:
    """Compiled kernel: coverage of all records (or forward, reverse when strand-wise) in
    reused buffers, per slot or ``cumulative`` (mod 2³²: bin sums are two lookups); and the
    largest coverage."""

    def cov(slot: int, which: int) -> tuple[np.ndarray, int]:
        buf = scratch(slot, blocks.total + cumulative)
        return buf, kernels.coverage(blocks.s, blocks.e, blocks.rev, which, blocks.bstart,
                                     blocks.bend, blocks.base, buf, cumulative)

    parts = [cov(0, 0), cov(1, 1)] if options.strand_wise else [cov(0, -1)]
    top = max(t for _, t in parts)
    if options.bin_size * top > INT32_MAX:
        raise OverflowError("a bin sum exceeds 2^31; use a smaller --bin-size")
    return [c for c, _ in parts], top


def window_histogram(chunk: Chunk, options: Options, blocks: _Blocks,
                     covs: list[np.ndarray], hist: np.ndarray) -> np.ndarray:
    """Compiled kernel, profile only: count every valid bin sum of the chunk's windows
    into ``hist[value, channel × bins + bin]`` (oriented, sense/antisense by region
    strand). ``covs`` are per slot for bin size 1, else cumulative. Returns the values too
    large for ``hist`` as keys ``cell << 32 | value`` (a view of a reused buffer)."""
    over = overflow_room(len(chunk.starts) * hist.shape[1])
    n = kernels.window_hist(
        covs[0], covs[1] if len(covs) > 1 else None,
        np.ascontiguousarray(chunk.starts, np.int64), _slot_offsets(blocks),
        chunk.flip.astype(np.uint8), chunk.minus.astype(np.uint8), options.bin_size,
        options.n_bins, chunk.length, hist, over)
    return over[:n]


def scaled_edges(starts: np.ndarray, ends: np.ndarray, flip: np.ndarray, options: Options
                 ) -> np.ndarray:
    """Scale-regions mode: the bin edges of each window ``[starts, ends)`` in genomic order,
    as exact integers ``genomic position × nb`` (nb = body bins): flank edges every
    ``bin_size`` bases, body edge j at ``body_start × nb + j × L`` (L = body length)."""
    nb, size = options.body_bins, options.bin_size
    left, right = flank_lengths(flip, options)
    bstart, bend = starts + left, ends - right
    j = np.arange(options.n_bins + 1) - (left // size)[:, None]   # edge index from the body
    body = bstart[:, None] * nb + np.clip(j, 0, nb) * (bend - bstart)[:, None]
    flank = (np.where(j < 0, bstart[:, None], bend[:, None])
             + (j - np.clip(j, 0, nb)) * size) * nb
    return np.where((j < 0) | (j > nb), flank, body)


def scaled_counts(chunk: Chunk, options: Options) -> ChunkCounts:
    """Scale-regions mode: the mean per-base coverage of every bin (float64).

    With the integer edges E of :func:`scaled_edges` and C the cumulative coverage, the
    integral of coverage from the block start up to E/nb, times nb, is the integer
    ``X(E) = nb·C(⌊E/nb⌋) + (E mod nb)·cov(⌊E/nb⌋)`` (bases cut by an edge count by the
    fraction inside), and a bin's value is ``(X(E₁) − X(E₀)) / (E₁ − E₀)``: one division of
    two exact integers, i.e. the exact mean correctly rounded. ``E₁ − E₀`` is ``L`` for
    body bins and ``bin_size × nb`` for flank bins (whose value is thus ``sum / bin_size``).
    A bin is invalid (NaN in the matrix) when any base it weighs lies off the chromosome,
    and body bins of an empty region (L = 0) are invalid.
    """
    nb, length = options.body_bins, chunk.length
    blocks = read_blocks(chunk, options)
    edges = scaled_edges(chunk.starts, chunk.ends, chunk.flip, options)
    width = np.diff(edges, axis=1)
    valid = (edges[:, :-1] >= 0) & (edges[:, 1:] <= length * nb) & (width > 0)
    floor = edges // nb
    frac = edges - floor * nb
    pos = blocks.index(floor)

    def integrals(mask):
        cov, cum = blocks.coverage(mask)
        if cum[-1] and nb * int(cum[-1]) >= 2 ** 62:
            raise OverflowError("coverage too deep for exact scaled bins; split the regions")
        x = nb * cum[pos] + frac * cov[pos]
        return np.diff(x, axis=1)

    dx = _by_channel(chunk, options, blocks, integrals)
    if dx.size and np.abs(dx).max() >= 2 ** 53:
        raise OverflowError("a scaled bin integral exceeds 2^53; use a smaller --body-length")
    values = np.zeros(dx.shape, dtype=np.float64)
    ok = np.broadcast_to(valid[:, None, :], dx.shape)
    np.divide(dx, np.broadcast_to(width[:, None, :], dx.shape), out=values, where=ok)
    flip = chunk.flip
    values[flip] = values[flip][:, :, ::-1]
    valid[flip] = valid[flip][:, ::-1]
    return ChunkCounts(chunk.rows, values, valid, len(blocks.s))


@dataclass
class ChunkDensity:
    rows: np.ndarray
    counts: np.ndarray   # (n, channels) int64
    reads: int


def region_counts(chunk: Chunk, options: Options) -> ChunkDensity:
    """Reads whose covered interval overlaps each region ``[start, end)`` of ``chunk``."""
    length = chunk.length
    lo, hi = np.clip(chunk.starts, 0, length), np.clip(chunk.ends, 0, length)
    order = np.argsort(lo, kind="stable")
    fs, fe = _fetch_regions(chunk, lo[order], np.maximum(hi, lo)[order], options.fetch_margin)
    s, e, rev = intervals(chunk.bam, chunk.chrom, fs, fe, options.read_rules())

    def overlaps(mask):
        ss, ee = np.sort(s[mask]), np.sort(e[mask])
        # s < end and e > start  ==  #(s < end) - #(e <= start), since s < e
        return (np.searchsorted(ss, chunk.ends, side="left")
                - np.searchsorted(ee, chunk.starts, side="right"))

    if options.strand_wise:
        fwd, rv = overlaps(rev == 0), overlaps(rev == 1)
        counts = np.stack([np.where(chunk.minus, rv, fwd), np.where(chunk.minus, fwd, rv)], 1)
    else:
        counts = overlaps(slice(None))[:, None]
    return ChunkDensity(chunk.rows, counts.astype(np.int64), len(s))


def status_notes(status: np.ndarray, chroms: np.ndarray, bam: Bam) -> list[str]:
    """One sentence per kind of region that could not be computed, for the log.

    Parameters
    ----------
    status
        Each region's status (:mod:`bamcover.schema`).
    chroms
        Each region's chromosome.
    bam
        The BAM counted (its chromosome names suggest a 'chr' prefix mismatch).

    Returns
    -------
    list of str
        Unknown chromosomes (with a hint when the BAM names them with or without 'chr'),
        windows entirely off their chromosome, and empty scale-regions bodies.
    """
    status = np.asarray(status, object)
    notes = []
    unknown = status == STATUS_UNKNOWN
    if unknown.any():
        names = list(dict.fromkeys(np.asarray(chroms, object)[unknown]))
        hint = ""
        for c in names:
            alt = c[3:] if c.startswith("chr") else "chr" + c
            if alt in bam.lengths:
                hint = f"; the BAM uses '{alt}' not '{c}'?"
                break
        notes.append(f"{unknown.sum()} regions on chromosomes absent from {bam.name} "
                     f"(e.g. {names[0]}{hint}); their rows are NaN")
    off = status == STATUS_OFF
    if off.any():
        notes.append(f"{off.sum()} regions have windows entirely beyond their chromosome's "
                     "end; their rows are NaN")
    empty = status == STATUS_EMPTY
    if empty.any():
        notes.append(f"{empty.sum()} regions have length 0 (start == end); their scaled body "
                     "bins are NaN")
    return notes
