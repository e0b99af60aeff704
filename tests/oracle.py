"""A brute-force reference written for the tests from the semantics in docs/semantics.md.

It shares no code with bamcover: records come from ``samtools view`` text (or from
hand-built tuples), CIGARs are walked by hand, and coverage is accumulated read by read
into a per-base array of the whole chromosome.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

import numpy as np

CIGAR = re.compile(r"(\d+)([MIDNSHP=X])")


@dataclass
class Rec:
    flag: int
    chrom: str
    pos: int        # 0-based leftmost aligned base
    mapq: int
    cigar: str
    mate_chrom: str
    tlen: int

    @property
    def ref_len(self) -> int:
        return sum(int(n) for n, op in CIGAR.findall(self.cigar) if op in "MDN=X")


def records(bam: str) -> list[Rec]:
    """Every record of ``bam`` (samtools view, no filtering)."""
    out = subprocess.run(["samtools", "view", bam], check=True, capture_output=True,
                         text=True).stdout
    recs = []
    for line in out.splitlines():
        f = line.split("\t")
        rnext = f[2] if f[6] == "=" else f[6]
        recs.append(Rec(int(f[1]), f[2], int(f[3]) - 1, int(f[4]), f[5], rnext, int(f[8])))
    return recs


@dataclass
class Opts:
    fragment_size: int | None = None
    shift: int = 0
    shift_reverse: int | None = None
    pairs: bool = False
    max_fragment_length: int = 1000
    min_mapq: int = 0
    flag_include: int = 0
    flag_exclude: int = 0xB04
    ignore_duplicates: bool = False


def _proper(rec: Rec, o: Opts) -> bool:
    return bool(o.pairs and rec.flag & 0x1 and rec.flag & 0x2 and rec.mate_chrom == rec.chrom
                and rec.tlen != 0 and abs(rec.tlen) <= o.max_fragment_length)


def in_library(rec: Rec, o: Opts) -> bool:
    """Does the record count towards the library size (passes the filters, and is the
    counted mate of a fragment)?"""
    exclude = o.flag_exclude | (0x400 if o.ignore_duplicates else 0)
    if rec.flag & exclude or (rec.flag & o.flag_include) != o.flag_include:
        return False
    if rec.mapq < o.min_mapq:
        return False
    return not (_proper(rec, o) and rec.tlen < 0)


def covered(rec: Rec, o: Opts, chrom_len: int):
    """(start, end, reverse) a record covers, or None; straight from docs/semantics.md."""
    if not in_library(rec, o):
        return None
    sf = o.shift
    sr = o.shift if o.shift_reverse is None else o.shift_reverse
    rev = bool(rec.flag & 0x10)
    if _proper(rec, o):
        left, right = rec.pos + sf, rec.pos + rec.tlen - sr
        strand_rev = rev if rec.flag & 0x40 else bool(rec.flag & 0x20)
        s, e = left, right
        rev = strand_rev
    else:
        start = rec.pos
        end = rec.pos + max(rec.ref_len, 1)
        if o.fragment_size is None:
            s, e = (start - sr, end - sr) if rev else (start + sf, end + sf)
        elif rev:
            five = end - 1 - sr
            s, e = five - o.fragment_size + 1, five + 1
        else:
            five = start + sf
            s, e = five, five + o.fragment_size
    s, e = max(s, 0), min(e, chrom_len)
    return (s, e, rev) if e > s else None


def chromosome_coverage(recs: list[Rec], chrom: str, chrom_len: int, o: Opts):
    """Per-base coverage of ``chrom`` by forward- and reverse-strand reads."""
    fwd = np.zeros(chrom_len, dtype=np.int64)
    rev = np.zeros(chrom_len, dtype=np.int64)
    for rec in recs:
        if rec.chrom != chrom:
            continue
        got = covered(rec, o, chrom_len)
        if got is None:
            continue
        s, e, r = got
        (rev if r else fwd)[s:e] += 1
    return fwd, rev


def window_matrix(regions, fwd, rev, chrom_len, upstream, downstream, bin_size=1,
                  reference_point="center", orient=True, strand_wise=False):
    """Reference matrix (regions × channels × bins) with NaN off the chromosome."""
    up = -(-upstream // bin_size) * bin_size
    down = -(-downstream // bin_size) * bin_size
    nb = (up + down) // bin_size
    channels = 2 if strand_wise else 1
    out = np.full((len(regions), channels, nb), np.nan)
    for i, (start, end, strand, summit) in enumerate(regions):
        minus = strand == "-"
        if reference_point == "center":
            ref = start + (end - start) // 2
        elif reference_point == "start":
            ref = end - 1 if minus else start
        elif reference_point == "end":
            ref = start if minus else end - 1
        else:
            ref = summit
        flip = minus and orient
        offsets = np.arange(-up, down)
        pos = ref - offsets if flip else ref + offsets        # genomic base of each offset
        inside = (pos >= 0) & (pos < chrom_len)
        safe = np.where(inside, pos, 0)
        f = np.where(inside, fwd[safe], 0).reshape(nb, bin_size).sum(1).astype(float)
        r = np.where(inside, rev[safe], 0).reshape(nb, bin_size).sum(1).astype(float)
        bad = ~inside.reshape(nb, bin_size).all(1)
        f[bad] = np.nan
        r[bad] = np.nan
        if strand_wise:
            out[i, 0], out[i, 1] = (r, f) if minus else (f, r)
        else:
            out[i, 0] = f + r
    return out
