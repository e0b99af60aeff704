"""Counting: group windows into chunks and turn one chunk's reads into per-bin counts.

A chunk is a run of windows on one chromosome, in genome order. Its windows are merged
into disjoint blocks; every record overlapping a block (plus the fetch margin) is read
once, its covered interval is added to a difference array over the blocks, and two
cumulative sums give per-bin sums for any window by two lookups per bin. All integer, so
results are identical whatever the chunking or the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .options import Options
from .reads import Bam, intervals

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


def make_chunks(bam: Bam, chroms: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                flip: np.ndarray, minus: np.ndarray, rows: np.ndarray, target_bases: int
                ) -> list[Chunk]:
    """Split regions into chunks of nearby regions with about ``target_bases`` window
    bases each, chromosomes in BAM header order."""
    chunks = []
    rank = {c: i for i, c in enumerate(bam.lengths)}
    key = np.array([rank[c] for c in chroms], dtype=np.int64)
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


@dataclass
class ChunkCounts:
    """Per-bin sums for a chunk's windows: ``values`` (n, channels, bins) int32, oriented;
    ``valid`` (n, bins) is False for bins with any base off the chromosome."""

    rows: np.ndarray
    values: np.ndarray
    valid: np.ndarray
    reads: int


def window_counts(chunk: Chunk, options: Options) -> ChunkCounts:
    """Per-bin read coverage of every window in ``chunk``."""
    length, size, nbins = chunk.length, options.bin_size, options.n_bins
    cs = np.clip(chunk.starts, 0, length)
    ce = np.clip(chunk.ends, 0, length)
    bstart, bend, block = _merge(cs, ce)
    blen = bend - bstart
    base = np.zeros(len(bstart), dtype=np.int64)
    base[1:] = np.cumsum(blen + 1)[:-1]
    total = int((blen + 1).sum())

    fs, fe = _fetch_regions(chunk, bstart, bend, options.fetch_margin)
    s, e, rev = intervals(chunk.bam, chunk.chrom, fs, fe, options.read_rules())

    edges = chunk.starts[:, None] + size * np.arange(nbins + 1)
    valid = (edges[:, :-1] >= 0) & (edges[:, 1:] <= length)
    pos = (np.clip(edges, cs[:, None], ce[:, None]) - bstart[block][:, None]
           + base[block][:, None])

    def bin_sums(mask):
        cov = np.cumsum(_diff(s[mask], e[mask], bstart, bend, base, total + 1)[:total])
        cum = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(cov, out=cum[1:])
        return cum[pos[:, 1:]] - cum[pos[:, :-1]]

    if options.strand_wise:
        fwd, rv = bin_sums(rev == 0), bin_sums(rev == 1)
        m = chunk.minus[:, None]
        sums = np.stack([np.where(m, rv, fwd), np.where(m, fwd, rv)], axis=1)
    else:
        sums = bin_sums(slice(None))[:, None, :]
    sums[~np.broadcast_to(valid[:, None, :], sums.shape)] = 0
    if sums.size and sums.max() > INT32_MAX:
        raise OverflowError("a bin sum exceeds 2^31; use a smaller --bin-size")
    flip = chunk.flip
    sums[flip] = sums[flip][:, :, ::-1]
    valid[flip] = valid[flip][:, ::-1]
    return ChunkCounts(chunk.rows, sums.astype(np.int32), valid, len(s))


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
