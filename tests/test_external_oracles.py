"""bamcover against independent tools on the real CTCF fixtures, compared exactly.

Oracles (run through subprocess, nothing of bamcover is used to build the expectation):

* ``bedtools genomecov -bg`` per-base coverage: ``(none)`` = aligned span (read mode), ``-5`` =
  5' ends (fragment_size=1), ``-fs F`` = F bases from the 5' end in the read's direction
  (checked on hand-made reads below: forward ``[start, start+F)``, reverse ``[end-F, end)``,
  exactly bamcover's rule), ``-strand +/-`` for strand-wise channels, ``-pc`` for paired-end
  fragments (proper pairs only, ``[pos, pos+TLEN)`` through the left mate, counted once; improper
  pairs and singletons are *dropped*, whereas bamcover falls back to the read, so those records
  are compared separately).
* ``bedtools intersect -c`` for density (≥ 1 bp overlap), ``samtools view -c`` for library sizes.
* deepTools ``bamCoverage`` + ``computeMatrix reference-point`` for fragment-extended matrices.

bedtools and deepTools count every mapped record, while bamcover by default drops unmapped,
secondary, QC-fail and supplementary records (0xB04): the oracles therefore read a copy of the
BAM filtered with ``samtools view -F 0xB04`` (``-q Q`` for ``min_mapq``, ``-F 0xF04`` for
``ignore_duplicates``), built once per session in a temporary directory.

The bedGraph of an oracle is turned into per-window arrays here (``BedGraph.at``); the window
layout (reference point, flipping of '-' regions, rounding to whole bins) is re-derived from
docs/semantics.md in ``expected_matrix`` on a plain pandas reading of the region file.
"""

from __future__ import annotations

import functools
import gzip
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bamcover

from .conftest import CHR22 as CHROM_LEN
from .conftest import DATA, PE_CHIP, PE_PEAKS, PEAKS, SE_CHIP, SE_CTRL, STRANDED, SUMMITS

GENOME = DATA / "chr22.genome"
CHROM = "chr22"
DEFAULT_EXCLUDE = "0xB04"      # bamcover's default: 0x4 | 0x100 | 0x200 | 0x800
DEDUP_EXCLUDE = "0xF04"        # ... plus 0x400 (ignore_duplicates)


# --- helpers ------------------------------------------------------------------------------

def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def run(*cmd, stdout=None) -> str:
    """Run a command; return its stdout (text) unless it is redirected to ``stdout``."""
    res = subprocess.run([str(c) for c in cmd], check=True, text=True,
                         stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE)
    return res.stdout if stdout is None else ""


class BedGraph:
    """Sorted, disjoint bedGraph intervals of one chromosome; ``at`` gives per-base values
    (0 between intervals), so intervals are expanded over the windows without a dense array
    of the chromosome."""

    def __init__(self, text: str):
        df = pd.read_csv(io.StringIO(text), sep="\t", header=None,
                         names=["chrom", "start", "end", "value"])
        assert set(df["chrom"]) <= {CHROM}
        self.starts = df["start"].to_numpy(np.int64)
        self.ends = df["end"].to_numpy(np.int64)
        self.values = df["value"].to_numpy(np.float64)
        assert (self.starts[1:] >= self.ends[:-1]).all(), "bedGraph not sorted/disjoint"

    def at(self, pos: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self.starts, pos, side="right") - 1
        j = np.clip(i, 0, None)
        hit = (i >= 0) & (pos < self.ends[j]) if len(self.starts) else np.zeros(pos.shape, bool)
        return np.where(hit, self.values[j] if len(self.starts) else 0, 0.0)

    def __add__(self, other: BedGraph) -> _Sum:
        return _Sum([self, other])


class _Sum:
    def __init__(self, parts):
        self.parts = parts

    def at(self, pos):
        return sum(p.at(pos) for p in self.parts)


@functools.cache
def genomecov(bam: Path, *args: str) -> BedGraph:
    return BedGraph(run("bedtools", "genomecov", "-ibam", bam, "-bg", *args))


def read_bed(path: Path) -> pd.DataFrame:
    """Plain pandas reading of a BED/narrowPeak file (no bamcover code)."""
    df = pd.read_csv(path, sep="\t", header=None)
    out = pd.DataFrame({"chrom": df[0], "start": df[1].astype(np.int64),
                        "end": df[2].astype(np.int64)})
    out["strand"] = df[5].astype(str) if df.shape[1] > 5 else "."
    out["summit"] = df[1] + df[9] if df.shape[1] > 9 else -1
    return out


def reference(regions: pd.DataFrame, point: str) -> np.ndarray:
    """docs/semantics.md: start = start on '+', end-1 on '-'; end = end-1 on '+', start on '-';
    center = start + (end-start)//2; summit = start + column 10."""
    s, e = regions["start"].to_numpy(), regions["end"].to_numpy()
    minus = regions["strand"].to_numpy() == "-"
    return {"center": s + (e - s) // 2,
            "summit": regions["summit"].to_numpy(),
            "start": np.where(minus, e - 1, s),
            "end": np.where(minus, s, e - 1)}[point]


def expected_matrix(regions: pd.DataFrame, plus, minus=None, *, point="center", upstream=1000,
                    downstream=1000, bin_size=1, orient=True, channel="total") -> np.ndarray:
    """The matrix docs/semantics.md defines, from oracle coverage tracks.

    ``plus``/``minus``: per-base tracks of reads on '+'/'-' (``minus=None``: ``plus`` holds all
    reads). ``channel``: total, sense or antisense (relative to the region's strand, '.' = '+').
    """
    up = -(-upstream // bin_size) * bin_size          # rounded up to whole bins
    down = -(-downstream // bin_size) * bin_size
    offsets = np.arange(-up, down)
    ref = reference(regions, point)
    is_minus = regions["strand"].to_numpy() == "-"
    flip = is_minus & orient
    pos = np.where(flip[:, None], ref[:, None] - offsets, ref[:, None] + offsets)
    if channel == "total":
        vals = plus.at(pos) if minus is None else plus.at(pos) + minus.at(pos)
    else:
        same = is_minus[:, None] == (channel == "antisense")   # this channel reads '+' strand
        vals = np.where(same, plus.at(pos), minus.at(pos))
    vals[(pos < 0) | (pos >= CHROM_LEN)] = np.nan
    return vals.reshape(len(regions), -1, bin_size).sum(axis=2)


def values(m: pd.DataFrame, channel: str = "total") -> np.ndarray:
    assert (m.index.get_level_values("status") == "ok").all()
    return m.xs(channel, level="channel").to_numpy(np.float64)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert not bad.size, (f"{len(bad)} of {got.size} cells differ; first (row, bin) "
                          f"{tuple(bad[0])}: bamcover {got[tuple(bad[0])]} vs oracle "
                          f"{want[tuple(bad[0])]}")
    assert np.nansum(want) > 0          # the comparison is not vacuous


# --- session fixtures: filtered BAM copies ---------------------------------------------------

@pytest.fixture(scope="session")
def filtered(tmp_path_factory):
    """``filtered(src, *samtools_view_args)`` -> indexed copy of ``src`` filtered by
    ``samtools view`` (cached per session)."""
    need("samtools")
    root = tmp_path_factory.mktemp("filtered")
    cache: dict = {}

    def make(src: Path, *args: str) -> Path:
        key = (src, args)
        if key not in cache:
            out = root / f"{src.stem}_{len(cache)}.bam"
            run("samtools", "view", "-b", *args, "-o", out, src)
            run("samtools", "index", out)
            cache[key] = out
        return cache[key]

    return make


def se_filter_args(min_mapq: int = 0, ignore_duplicates: bool = False) -> tuple[str, ...]:
    args = ("-F", DEDUP_EXCLUDE if ignore_duplicates else DEFAULT_EXCLUDE)
    return args + (("-q", str(min_mapq)) if min_mapq else ())


# --- the oracle semantics themselves, on hand-made reads --------------------------------------

def test_bedtools_genomecov_semantics(tmp_path):
    """What ``-5``, ``-fs`` and ``-pc`` really do (bedtools 2.30), the basis of the mapping
    used below: -fs extends from the 5' end in the read direction (also for reverse reads);
    -pc counts a proper pair once as [pos, pos+TLEN) and drops improper pairs and singletons."""
    need("samtools", "bedtools")
    sam = tmp_path / "t.sam"
    sam.write_text("\n".join("\t".join(r) for r in [
        ["@HD", "VN:1.0", "SO:coordinate"], ["@SQ", "SN:c", "LN:100000"],
        ["f", "0", "c", "1001", "255", "101M", "*", "0", "0", "*", "*"],
        ["r", "16", "c", "5001", "255", "101M", "*", "0", "0", "*", "*"]]) + "\n")
    bam = tmp_path / "t.bam"
    run("samtools", "view", "-b", "-o", bam, sam)

    def bg(*args):
        return run("bedtools", "genomecov", "-ibam", bam, "-bg", *args)

    assert bg() == "c\t1000\t1101\t1\nc\t5000\t5101\t1\n"
    assert bg("-5") == "c\t1000\t1001\t1\nc\t5100\t5101\t1\n"
    assert bg("-fs", "200") == "c\t1000\t1200\t1\nc\t4901\t5101\t1\n"
    rows = [  # proper (read1 left), improper, singleton + unmapped mate, proper (read2 left)
        ["p1", "99", "c", "1001", "60", "36M", "=", "1265", "300"],
        ["p2", "97", "c", "2001", "60", "36M", "=", "2265", "300"],
        ["p3", "73", "c", "3001", "60", "36M", "=", "3001", "0"],
        ["p3", "133", "c", "3001", "0", "*", "=", "3001", "0"],
        ["p4", "163", "c", "4001", "60", "36M", "=", "4265", "300"],
        ["p1", "147", "c", "1265", "60", "36M", "=", "1001", "-300"],
        ["p2", "145", "c", "2265", "60", "36M", "=", "2001", "-300"],
        ["p4", "83", "c", "4265", "60", "36M", "=", "4001", "-300"]]
    sam.write_text("@HD\tVN:1.0\tSO:coordinate\n@SQ\tSN:c\tLN:100000\n"
                   + "".join("\t".join(r + ["*", "*"]) + "\n" for r in rows))
    run("samtools", "sort", "-o", bam, sam)
    assert bg("-pc") == "c\t1000\t1300\t1\nc\t4000\t4300\t1\n"


# --- 1. per-base coverage vs bedtools genomecov -------------------------------------------------

SE_CASES = {
    # id: (bam, regions, bamcover options, genomecov args)
    "read-center-summits-bin1": (SE_CHIP, SUMMITS, {}, ()),
    "read-center-summits-bin10": (SE_CHIP, SUMMITS, {"bin_size": 10}, ()),
    "read-center-summits-bin300": (SE_CHIP, SUMMITS, {"bin_size": 300}, ()),   # window ±1200
    "5prime-center-summits-bin1": (SE_CHIP, SUMMITS, {"fragment_size": 1}, ("-5",)),
    "5prime-dedup-asym-bin7": (SE_CHIP, SUMMITS, {"fragment_size": 1, "ignore_duplicates": True,
                                                   "upstream": 500, "downstream": 1500,
                                                   "bin_size": 7}, ("-5",)),
    "frag200-summit-peaks-bin1": (SE_CHIP, PEAKS, {"fragment_size": 200,
                                                   "reference_point": "summit"}, ("-fs", "200")),
    "frag200-center-peaks-bin10": (SE_CHIP, PEAKS, {"fragment_size": 200, "bin_size": 10},
                                   ("-fs", "200")),
    "frag200-summit-peaks-bin300": (SE_CHIP, PEAKS, {"fragment_size": 200, "bin_size": 300,
                                                     "reference_point": "summit"},
                                    ("-fs", "200")),
    "frag200-mapq1": (SE_CHIP, SUMMITS, {"fragment_size": 200, "min_mapq": 1}, ("-fs", "200")),
    "read-mapq1-dedup": (SE_CHIP, SUMMITS, {"min_mapq": 1, "ignore_duplicates": True}, ()),
    "frag147-ctrl": (SE_CTRL, SUMMITS, {"fragment_size": 147, "upstream": 2000,
                                        "downstream": 2000}, ("-fs", "147")),
}


@pytest.mark.parametrize("case", list(SE_CASES))
def test_matrix_vs_genomecov(case, filtered):
    need("bedtools")
    bam, regions, opts, args = SE_CASES[case]
    opts = {"upstream": 1000, "downstream": 1000, **opts}
    oracle_bam = filtered(bam, *se_filter_args(opts.get("min_mapq", 0),
                                               opts.get("ignore_duplicates", False)))
    m = bamcover.matrix(regions, bam, processes=2, **opts)
    want = expected_matrix(read_bed(regions), genomecov(oracle_bam, *args),
                           point=opts.get("reference_point", "center"),
                           upstream=opts["upstream"], downstream=opts["downstream"],
                           bin_size=opts.get("bin_size", 1))
    bin_size = opts.get("bin_size", 1)
    up = -(-opts["upstream"] // bin_size) * bin_size
    assert list(m.columns) == list(range(-up, want.shape[1] * bin_size - up, bin_size))
    assert_same(values(m), want)


def _stranded_peaks(tmp_path: Path) -> Path:
    """ctcf_peaks.narrowPeak with strands cycling '+', '-', '.' (even and odd lengths)."""
    df = pd.read_csv(PEAKS, sep="\t", header=None)
    df[5] = np.resize(np.array(["+", "-", "."]), len(df))
    out = tmp_path / "stranded_peaks.narrowPeak"
    df.to_csv(out, sep="\t", header=False, index=False)
    return out


STRAND_CASES = {
    "summits-frag200-bin1": (STRANDED, {"fragment_size": 200}, ("-fs", "200")),
    "summits-read-bin25-asym": (STRANDED, {"upstream": 300, "downstream": 1700, "bin_size": 25},
                                ()),
    "summits-5prime-noorient": (STRANDED, {"fragment_size": 1, "orient": False}, ("-5",)),
    "peaks-start-frag200-asym": ("stranded_peaks", {"fragment_size": 200, "upstream": 400,
                                                    "downstream": 900,
                                                    "reference_point": "start"}, ("-fs", "200")),
    "peaks-end-read-bin3": ("stranded_peaks", {"reference_point": "end", "bin_size": 3,
                                               "upstream": 700, "downstream": 200}, ()),
    "peaks-summit-dedup": ("stranded_peaks", {"reference_point": "summit", "fragment_size": 200,
                                              "ignore_duplicates": True, "min_mapq": 1},
                           ("-fs", "200")),
}


@pytest.mark.parametrize("case", list(STRAND_CASES))
def test_strand_wise_vs_genomecov_strand(case, filtered, tmp_path):
    """sense/antisense vs ``genomecov -strand +`` and ``-strand -``; '-' regions read
    right-to-left (offset k = ref - k) unless orient=False."""
    need("bedtools")
    regions, opts, args = STRAND_CASES[case]
    if regions == "stranded_peaks":
        regions = _stranded_peaks(tmp_path)
    opts = {"upstream": 1000, "downstream": 1000, **opts}
    bam = filtered(SE_CHIP, *se_filter_args(opts.get("min_mapq", 0),
                                            opts.get("ignore_duplicates", False)))
    plus, minus = (genomecov(bam, *args, "-strand", s) for s in "+-")
    m = bamcover.matrix(regions, SE_CHIP, strand_wise=True, processes=2, **opts)
    regs = read_bed(regions)
    assert set(regs["strand"]) == {"+", "-", "."}
    layout = {k: opts[k] for k in ("upstream", "downstream", "bin_size", "orient") if k in opts}
    for channel in ("sense", "antisense"):
        want = expected_matrix(regs, plus, minus, channel=channel,
                               point=opts.get("reference_point", "center"), **layout)
        assert_same(values(m, channel), want)
    # and the two channels add up to the unstranded total
    total = bamcover.matrix(regions, SE_CHIP, processes=2, **opts)
    assert_same(values(m, "sense") + values(m, "antisense"), values(total))


def test_pairs_proper_vs_genomecov_pc(filtered):
    """--pairs on proper pairs only (samtools view -f 2) == genomecov -pc exactly: every
    fragment [pos, pos+TLEN) counted once (TLEN 103..598 <= max_fragment_length 1000)."""
    need("bedtools")
    proper = filtered(PE_CHIP, "-f", "2", "-F", DEFAULT_EXCLUDE)
    m = bamcover.matrix(PE_PEAKS, proper, pairs=True, reference_point="summit",
                        upstream=1000, downstream=1000, processes=2)
    want = expected_matrix(read_bed(PE_PEAKS), genomecov(proper, "-pc"), point="summit")
    assert_same(values(m), want)


def test_pairs_full_bam_vs_genomecov(filtered):
    """On the whole PE BAM bamcover's improper pairs and singletons fall back to their read
    span, which -pc drops: oracle = -pc(proper pairs) + plain coverage(other mapped records)."""
    need("bedtools")
    proper = filtered(PE_CHIP, "-f", "2", "-F", DEFAULT_EXCLUDE)
    rest = filtered(PE_CHIP, "-F", "0xB06")
    m = bamcover.matrix(PE_PEAKS, PE_CHIP, pairs=True, reference_point="summit",
                        bin_size=5, upstream=1000, downstream=1000, processes=2)
    want = expected_matrix(read_bed(PE_PEAKS), genomecov(proper, "-pc") + genomecov(rest),
                           point="summit", bin_size=5)
    assert_same(values(m), want)
    # the fallback matters: without the non-proper records the numbers differ
    assert (want != expected_matrix(read_bed(PE_PEAKS), genomecov(proper, "-pc"),
                                    point="summit", bin_size=5)).any()


def test_pairs_max_fragment_length_fallback_to_fragment_size(filtered):
    """max_fragment_length=300, fragment_size=200: proper pairs with |TLEN| <= 300 are
    fragments (-pc), every other mapped mate is extended to 200 bp (-fs 200)."""
    need("bedtools")
    short = filtered(PE_CHIP, "-f", "2", "-F", DEFAULT_EXCLUDE,
                     "-e", "tlen >= -300 && tlen <= 300")
    rest = filtered(PE_CHIP, "-F", DEFAULT_EXCLUDE,
                    "-e", "!(flag.proper_pair && tlen >= -300 && tlen <= 300)")
    m = bamcover.matrix(PE_PEAKS, PE_CHIP, pairs=True, max_fragment_length=300,
                        fragment_size=200, upstream=1000, downstream=1000, processes=2)
    want = expected_matrix(read_bed(PE_PEAKS), genomecov(short, "-pc")
                           + genomecov(rest, "-fs", "200"))
    assert_same(values(m), want)


# --- 2. density vs bedtools intersect -c, library size vs samtools view -c ---------------------

def intersect_counts(regions: Path, b) -> np.ndarray:
    out = run("bedtools", "intersect", "-c", "-a", regions, "-b", b)
    return np.array([int(line.rsplit("\t", 1)[1]) for line in out.splitlines()], np.float64)


def samtools_count(bam: Path, *args: str) -> int:
    return int(run("samtools", "view", "-c", *args, bam))


DENSITY_CASES = {
    "default": {},
    "mapq1": {"min_mapq": 1},
    "dedup": {"ignore_duplicates": True},
    "mapq1-dedup": {"min_mapq": 1, "ignore_duplicates": True},
}


@pytest.mark.parametrize("case", list(DENSITY_CASES))
def test_density_vs_intersect(case, filtered):
    need("bedtools", "samtools")
    opts = DENSITY_CASES[case]
    args = se_filter_args(opts.get("min_mapq", 0), opts.get("ignore_duplicates", False))
    oracle_bam = filtered(SE_CHIP, *args)
    d = bamcover.density(PEAKS, [SE_CHIP, SE_CTRL], labels=["chip", "ctrl"], processes=2, **opts)
    for label, bam in (("chip", SE_CHIP), ("ctrl", SE_CTRL)):
        ob = oracle_bam if label == "chip" else filtered(SE_CTRL, *args)
        count = intersect_counts(PEAKS, ob)
        size = samtools_count(bam, *args)
        assert (d[f"{label}_library_size"] == size).all()
        np.testing.assert_array_equal(d[f"{label}_count"].to_numpy(), count)
        length = (d["end"] - d["start"]).to_numpy(np.float64)
        np.testing.assert_allclose(d[f"{label}_cpm"].to_numpy(), count * 1e6 / size,
                                   rtol=1e-15, atol=0)
        np.testing.assert_allclose(d[f"{label}_rpkm"].to_numpy(),
                                   count * 1e9 / (size * length), rtol=1e-15, atol=0)
        assert count.sum() > 0
    if case == "mapq1-dedup":   # docs/semantics.md's arithmetic for the fixture
        assert d["chip_library_size"].iat[0] == 45672


def test_density_fragment_vs_intersect_slop(filtered, tmp_path):
    """fragment_size=200: reads turned into 200-bp fragments by bedtools (bamtobed, then
    ``slop -s -r 99`` extends 101-bp reads 3'-ward by strand), then intersect -c."""
    need("bedtools")
    bam = filtered(SE_CHIP, *se_filter_args())
    beds = run("bedtools", "bamtobed", "-i", bam)
    (tmp_path / "reads.bed").write_text(beds)
    reads = pd.read_csv(io.StringIO(beds), sep="\t", header=None)
    assert set(reads[2] - reads[1]) == {101}       # so +99 bases make 200-bp fragments
    frags = tmp_path / "frags.bed"
    run("bedtools", "slop", "-s", "-l", "0", "-r", "99", "-i", tmp_path / "reads.bed",
        "-g", GENOME, stdout=frags.open("w"))
    d = bamcover.density(PEAKS, SE_CHIP, fragment_size=200, processes=2)
    np.testing.assert_array_equal(d["ctcf_se_chip_count"].to_numpy(),
                                  intersect_counts(PEAKS, frags))
    sw = bamcover.density(PEAKS, SE_CHIP, fragment_size=200, strand_wise=True, processes=2)
    plus = intersect_counts(PEAKS, bam)   # sanity: extension changes counts
    assert (d["ctcf_se_chip_count"].to_numpy() != plus).any()
    np.testing.assert_array_equal(sw["ctcf_se_chip_sense_count"].to_numpy()
                                  + sw["ctcf_se_chip_antisense_count"].to_numpy(),
                                  d["ctcf_se_chip_count"].to_numpy())


def test_density_pairs_vs_intersect_fragments(filtered, tmp_path):
    """--pairs density: proper-pair fragments from ``bamtobed -bedpe`` (leftmost mate start to
    rightmost mate end) plus the other mapped records as reads; library size = fragments
    (samtools: proper, TLEN > 0) + other mapped records."""
    need("bedtools", "samtools")
    proper = filtered(PE_CHIP, "-f", "2", "-F", DEFAULT_EXCLUDE)
    rest = filtered(PE_CHIP, "-F", "0xB06")
    byname = tmp_path / "byname.bam"
    run("samtools", "sort", "-n", "-o", byname, proper)
    pe = pd.read_csv(io.StringIO(run("bedtools", "bamtobed", "-bedpe", "-i", byname)),
                     sep="\t", header=None)
    frags = pd.DataFrame({0: pe[0], 1: np.minimum(pe[1], pe[4]), 2: np.maximum(pe[2], pe[5])})
    frags = frags.sort_values([0, 1, 2])
    fbed = tmp_path / "frags.bed"
    frags.to_csv(fbed, sep="\t", header=False, index=False)
    d = bamcover.density(PE_PEAKS, PE_CHIP, pairs=True, processes=2)
    want = intersect_counts(PE_PEAKS, fbed) + intersect_counts(PE_PEAKS, rest)
    np.testing.assert_array_equal(d["ctcf_pe_chip_count"].to_numpy(), want)
    size = (samtools_count(PE_CHIP, "-f", "2", "-F", DEFAULT_EXCLUDE, "-e", "tlen > 0")
            + samtools_count(PE_CHIP, "-F", "0xB06"))
    assert len(frags) == samtools_count(PE_CHIP, "-f", "2", "-F", DEFAULT_EXCLUDE, "-e",
                                        "tlen > 0")
    assert (d["ctcf_pe_chip_library_size"] == size).all()


# --- 3. deepTools bamCoverage + computeMatrix ---------------------------------------------------

SUBSET = slice(117, 157)      # 40 consecutive summits (rows 118..157) within ~625 kb of chr22
MARGIN = 5000


@pytest.fixture(scope="module")
def deeptools_run(tmp_path_factory, filtered):
    """bamCoverage (--extendReads 200, bin 1) over the span of 40 summits, on a -F 0xB04 copy
    of the SE ChIP (deepTools itself drops only unmapped records here)."""
    need("bamCoverage", "computeMatrix")
    root = tmp_path_factory.mktemp("deeptools")
    lines = STRANDED.read_text().splitlines()[SUBSET]
    bed = root / "subset.bed"
    bed.write_text("\n".join(lines) + "\n")
    peaks = pd.read_csv(PEAKS, sep="\t", header=None).iloc[SUBSET].copy()
    peaks[5] = [line.split("\t")[5] for line in lines]        # same '+', '-', '.' cycle
    peak_bed = root / "subset_peaks.narrowPeak"
    peaks.to_csv(peak_bed, sep="\t", header=False, index=False)
    lo = min(int(line.split("\t")[1]) for line in lines) - MARGIN
    hi = max(int(line.split("\t")[2]) for line in lines) + MARGIN
    lo = min(lo, int(peaks[1].min()) - MARGIN)
    hi = max(hi, int(peaks[2].max()) + MARGIN)
    bam = filtered(SE_CHIP, *se_filter_args())
    bw = root / "x.bw"
    run("bamCoverage", "-b", bam, "--extendReads", "200", "--binSize", "1",
        "--region", f"{CHROM}:{lo}:{hi}", "-p", "1", "-o", bw)
    return {"root": root, "bw": bw, "bed": bed, "peaks": peak_bed, "cache": {}}


def compute_matrix(run_info, regions: Path, ref: str, bin_size: int, tag: str):
    """computeMatrix reference-point -a 1000 -b 1000 on the bigWig: (values, strands);
    cached per ``tag`` for the module."""
    if tag not in run_info["cache"]:
        run_info["cache"][tag] = _compute_matrix(run_info, regions, ref, bin_size, tag)
    return run_info["cache"][tag]


def _compute_matrix(run_info, regions: Path, ref: str, bin_size: int, tag: str):
    out = run_info["root"] / f"m_{tag}.gz"
    run("computeMatrix", "reference-point", "--referencePoint", ref, "-S", run_info["bw"],
        "-R", regions, "-a", "1000", "-b", "1000", "--binSize", str(bin_size),
        "--missingDataAsZero", "--sortRegions", "keep", "-p", "1", "-o", out)
    with gzip.open(out, "rt") as fh:
        header = fh.readline()
        assert header.startswith("@")
        df = pd.read_csv(fh, sep="\t", header=None)
    return df.iloc[:, 6:].to_numpy(np.float64), df.iloc[:, 5].to_numpy()


def test_deeptools_center_plus_strand_identical(deeptools_run):
    """'+' and '.' regions: bamcover == computeMatrix, 1-bp bins, exactly."""
    want, strand = compute_matrix(deeptools_run, deeptools_run["bed"], "center", 1, "c1")
    got = values(bamcover.matrix(deeptools_run["bed"], SE_CHIP, fragment_size=200,
                                 upstream=1000, downstream=1000, processes=2))
    plus = strand != "-"
    assert plus.sum() == 27 and want.shape == (40, 2000)
    assert_same(got[plus], want[plus])


def test_deeptools_center_minus_strand_off_by_one(deeptools_run):
    """'-' regions with --referencePoint center: deepTools splits the region at
    mid = start + (end-start)//2 into [mid-D, mid) and [mid, mid+U) and reverses, so its offset
    0 is genomic mid-1; bamcover's offset 0 is mid (the center rule of docs/semantics.md). Hence
    deepTools[:, k] == bamcover[:, k+1] exactly (pins the documented difference)."""
    want, strand = compute_matrix(deeptools_run, deeptools_run["bed"], "center", 1, "c1")
    got = values(bamcover.matrix(deeptools_run["bed"], SE_CHIP, fragment_size=200,
                                 upstream=1000, downstream=1001, processes=2))
    minus = strand == "-"
    assert minus.sum() == 13
    assert_same(got[minus][:, 1:], want[minus])
    assert (got[minus][:, :-1] != want[minus]).any()


def test_deeptools_center_peaks_minus_strand_off_by_one(deeptools_run):
    """Same shift for peaks of even and odd length ('-' regions), equality on '+'/'.'."""
    want, strand = compute_matrix(deeptools_run, deeptools_run["peaks"], "center", 1, "p1")
    got = values(bamcover.matrix(deeptools_run["peaks"], SE_CHIP, fragment_size=200,
                                 upstream=1000, downstream=1001, processes=2))
    minus = strand == "-"
    assert_same(got[~minus][:, :-1], want[~minus])
    assert_same(got[minus][:, 1:], want[minus])


def test_deeptools_tss_identical(deeptools_run):
    """--referencePoint TSS == bamcover reference_point='start' (end-1 on '-'), all strands,
    on the stranded peaks (regions longer than 1 bp, so the strand rule matters)."""
    want, _ = compute_matrix(deeptools_run, deeptools_run["peaks"], "TSS", 1, "tss")
    got = values(bamcover.matrix(deeptools_run["peaks"], SE_CHIP, fragment_size=200,
                                 reference_point="start", upstream=1000, downstream=1000,
                                 processes=2))
    assert_same(got, want)


def test_deeptools_tes_off_by_one(deeptools_run):
    """--referencePoint TES: deepTools puts the boundary after the region's 3' end, so its
    offset 0 is the first base past the region (genomic end on '+', start-1 on '-'), while
    bamcover's reference_point='end' is the last base of the region (end-1 on '+', start on
    '-'). On every strand deepTools[:, k] == bamcover[:, k+1] exactly."""
    want, strand = compute_matrix(deeptools_run, deeptools_run["peaks"], "TES", 1, "tes")
    got = values(bamcover.matrix(deeptools_run["peaks"], SE_CHIP, fragment_size=200,
                                 reference_point="end", upstream=1000, downstream=1001,
                                 processes=2))
    assert set(strand) == {"+", "-", "."}
    assert_same(got[:, 1:], want)
    assert (got[:, :-1] != want).any()


def test_deeptools_bin10_mean_vs_sum(deeptools_run):
    """bin 10: deepTools averages a bin, bamcover sums it: bamcover/10 == deepTools mean
    (exact: an integer sum / 10, printed with 6 decimals). '+'/'.' regions only (the '-'
    regions are shifted by one base, see above)."""
    want, strand = compute_matrix(deeptools_run, deeptools_run["bed"], "center", 10, "c10")
    got = values(bamcover.matrix(deeptools_run["bed"], SE_CHIP, fragment_size=200,
                                 upstream=1000, downstream=1000, bin_size=10, processes=2))
    plus = strand != "-"
    assert want.shape == (40, 200)
    assert_same(got[plus] / 10, want[plus])
