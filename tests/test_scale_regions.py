"""Scale-regions mode: a brute-force reference with exact fractions, deepTools
``computeMatrix scale-regions``, chunking/process invariance, the task path and the CLI.

docs/semantics.md: each body ``[start, end)`` of length L is scaled to nb = body_length / bin_size
bins, bin j covering genomic ``[start + j·L/nb, start + (j+1)·L/nb)`` with bases cut by an
edge weighted by the fraction inside; flanks are unscaled bins of bin_size bases; every bin
is the mean per-base coverage; a bin weighing any base off the chromosome is NaN.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import bamcover
from bamcover import BamcoverError, Options, cluster, formats, profiles, tasks
from bamcover.cli import main

from .conftest import CHR22, PEAKS, ROOT, SE_CHIP, STRANDED, need
from .test_oracle import _coverage

FRAGMENT = 200


# --- the reference: exact fractions per base, straight from docs/semantics.md ---------

def _mean(track: np.ndarray, a: Fraction, b: Fraction, chrom_len: int) -> float:
    """Mean of per-base ``track`` over the real interval [a, b): bases cut by an edge count
    by the fraction inside. NaN when empty or when a weighed base is off the chromosome."""
    if a == b or math.floor(a) < 0 or math.ceil(b) > chrom_len:
        return math.nan
    total = Fraction(0)
    for p in range(math.floor(a), math.ceil(b)):
        total += int(track[p]) * (min(b, p + 1) - max(a, p))
    return float(total / (b - a))          # the exact mean, correctly rounded


def scaled_reference(rows, fwd, rev, chrom_len, *, upstream, downstream, body_length,
                     bin_size, orient=True, strand_wise=False) -> np.ndarray:
    """(regions, channels, bins) by the scale-regions rule of docs/semantics.md."""
    size = bin_size
    up, down = -(-upstream // size) * size, -(-downstream // size) * size
    nb = body_length // size
    total = None if strand_wise else fwd + rev
    out = []
    for start, end, strand in rows:
        minus = strand == "-"
        flip = minus and orient
        left, right = (down, up) if flip else (up, down)     # flank bases in genomic order
        length = end - start
        edges = [Fraction(start - left + k * size) for k in range(left // size)]
        edges += [start + Fraction(j * length, nb) for j in range(nb)]
        edges += [Fraction(end + k * size) for k in range(right // size + 1)]
        bins = list(zip(edges[:-1], edges[1:], strict=True))
        if flip:
            bins = bins[::-1]
        if strand_wise:
            tracks = (rev, fwd) if minus else (fwd, rev)      # sense, antisense
        else:
            tracks = (total,)
        out.append([[_mean(t, a, b, chrom_len) for a, b in bins] for t in tracks])
    return np.array(out, dtype=np.float64)


def _peak_regions(n=80) -> pd.DataFrame:
    """~80 real narrowPeak peaks (variable lengths) with the stranded fixture's '+', '-', '.'
    cycle, plus regions whose windows cross both chromosome ends."""
    peaks = pd.read_csv(PEAKS, sep="\t", header=None).iloc[:n]
    strands = [line.split("\t")[5] for line in STRANDED.read_text().splitlines()[:n]]
    regs = pd.DataFrame({"chrom": "chr22", "start": peaks[1], "end": peaks[2],
                         "name": peaks[3], "strand": strands})
    edge = pd.DataFrame({"chrom": "chr22", "start": [100, 5, CHR22 - 300, CHR22 - 40],
                         "end": [400, 95, CHR22 - 10, CHR22 + 60],
                         "name": ["near_start", "at_start", "near_end", "past_end"],
                         "strand": ["+", "-", "-", "+"]})
    return pd.concat([regs, edge], ignore_index=True)


LENGTHS = [1, 3, 17, 99, 100, 101, 250, 333, 999, 1000, 1001, 2500, 7, 60]


def _stranded_regions(n=84) -> pd.DataFrame:
    """BED6 regions of varying lengths (1 … 2500, several shorter than the body's bins)
    around the stranded summits ('+', '-', '.')."""
    bed = pd.read_csv(STRANDED, sep="\t", header=None).iloc[:n]
    length = np.array(LENGTHS)[np.arange(n) % len(LENGTHS)]
    start = bed[1].to_numpy() - length // 3
    return pd.DataFrame({"chrom": "chr22", "start": start, "end": start + length,
                         "name": bed[3], "strand": bed[5]})


def _rows(regs: pd.DataFrame):
    return list(zip(regs["start"], regs["end"], regs["strand"], strict=True))


def _got(regs, **opts) -> np.ndarray:
    m = bamcover.matrix(regs, str(SE_CHIP), fragment_size=FRAGMENT, scale_regions=True,
                        processes=1, **opts)
    nch = 2 if opts.get("strand_wise") else 1
    assert m.columns.tolist() == Options(scale_regions=True, **opts).offsets
    return m.to_numpy(np.float64).reshape(len(regs), nch, -1)


CASES = [
    dict(bin_size=1, upstream=300, downstream=200, body_length=100),
    dict(bin_size=10, upstream=495, downstream=250, body_length=1000),   # 495 → 500
    dict(bin_size=10, upstream=200, downstream=0, body_length=300, strand_wise=True),
]


@pytest.mark.parametrize("orient", [True, False], ids=["orient", "no-orient"])
@pytest.mark.parametrize("window", CASES, ids=str)
@pytest.mark.parametrize("which", ["peaks", "stranded"])
def test_matches_exact_fraction_reference(which, window, orient):
    """Bit-identical to the exact rational mean correctly rounded (both sides round the
    same rational number once, so equality is exact, not to 1 ulp)."""
    regs = _peak_regions() if which == "peaks" else _stranded_regions()
    fwd, rev = _coverage(SE_CHIP, fragment_size=FRAGMENT)
    want = scaled_reference(_rows(regs), fwd, rev, CHR22, orient=orient, **window)
    got = _got(regs, orient=orient, **window)
    np.testing.assert_array_equal(got, want)
    assert np.nansum(want) > 0 and (want % 1 != 0).any()       # fractional means were seen
    if which == "peaks":
        assert np.isnan(want[-4:]).any() and not np.isnan(want[:-4]).any()


def test_profile_statistics_from_the_matrix():
    regs = _stranded_regions()
    res = profiles.compute(regs, str(SE_CHIP), fragment_size=FRAGMENT, scale_regions=True,
                           bin_size=10, upstream=500, downstream=500, body_length=500,
                           strand_wise=True, processes=1)
    v = res.matrix.to_numpy(np.float64).reshape(len(regs), 2, -1)
    p = res.profile
    assert p.index.tolist() == list(range(-500, 1000, 10))
    for c, ch in enumerate(("sense", "antisense")):
        np.testing.assert_allclose(p[f"{ch}_mean"], np.nanmean(v[:, c], axis=0), rtol=1e-13)
        np.testing.assert_array_equal(p[f"{ch}_median"], np.nanmedian(v[:, c], axis=0))
        np.testing.assert_allclose(p[f"{ch}_std"], np.nanstd(v[:, c], axis=0, ddof=1),
                                   rtol=1e-12)
        n = (~np.isnan(v[:, c])).sum(axis=0)
        np.testing.assert_array_equal(p[f"{ch}_n"], n)
        np.testing.assert_allclose(p[f"{ch}_sem"], p[f"{ch}_std"] / np.sqrt(n), rtol=1e-15)


# --- edge cases ------------------------------------------------------------------------------

def test_region_shorter_than_the_body_bins():
    """L = 7 bases over nb = 100 bins: a bin inside one base is that base's coverage; a
    bin across a base boundary weighs both bases by the fraction inside."""
    fwd, rev = _coverage(SE_CHIP, fragment_size=FRAGMENT)
    cov = fwd + rev
    # a place where the 8 bases around differ, so the weighting is visible
    at = next(p for p in range(17_372_800, 17_380_000) if len(set(cov[p:p + 7])) >= 3)
    regs = pd.DataFrame({"chrom": "chr22", "start": [at, at, at], "end": [at + 7, at + 7, at + 1],
                         "strand": ["+", "-", "+"]})
    got = _got(regs, bin_size=1, upstream=0, downstream=0, body_length=100)[:, 0]
    assert got.shape == (3, 100)
    plus, minus, one = got
    for j in range(100):
        lo, hi = Fraction(7 * j, 100), Fraction(7 * (j + 1), 100)
        p = math.floor(lo)
        if math.ceil(hi) - p == 1:                            # inside base p
            assert plus[j] == cov[at + p]
        else:                                                 # across bases p and p+1
            w0, w1 = (p + 1 - lo) * 100, (hi - p - 1) * 100   # integer weights, sum 7
            want = (w0 * int(cov[at + p]) + w1 * int(cov[at + p + 1])) / 7
            assert plus[j] == float(want)
    np.testing.assert_array_equal(minus, plus[::-1])         # '-' reads 5'→3'
    assert (one == cov[at]).all()
    straddling = [14, 28, 42, 57, 71, 85]                     # bins holding a base boundary
    assert len({plus[j] for j in straddling} - set(cov[at:at + 7].tolist())) >= 1


def test_empty_region_and_options():
    regs = pd.DataFrame({"chrom": "chr22", "start": [17_372_900, 17_372_900, CHR22 + 500],
                         "end": [17_372_900, 17_373_000, CHR22 + 500],
                         "strand": ["+", "-", "+"]})
    res = profiles.compute(regs, str(SE_CHIP), fragment_size=FRAGMENT, scale_regions=True,
                           bin_size=10, upstream=100, downstream=100, body_length=100)
    assert res.status.tolist() == ["empty_region", "ok", "off_chromosome"]
    m = res.matrix.to_numpy()
    assert np.isnan(m[0, 10:20]).all() and not np.isnan(m[0, :10]).any()
    assert not np.isnan(m[0, 20:]).any() and np.isnan(m[2]).all()
    assert (res.profile["total_n"].to_numpy() == [2] * 10 + [1] * 10 + [2] * 10).all()
    with pytest.raises(BamcoverError, match="positive multiple of --bin-size 10"):
        Options(scale_regions=True, bin_size=10, body_length=105)
    with pytest.raises(BamcoverError, match="positive multiple"):
        Options(scale_regions=True, body_length=0)
    body_only = Options(scale_regions=True, upstream=0, downstream=0, body_length=5)
    assert body_only.offsets == [0, 1, 2, 3, 4] and body_only.n_bins == 5
    assert Options(bin_size=3).n_bins == 1334                  # body_length unused
    with pytest.raises(BamcoverError, match="length 0"):
        Options(upstream=0, downstream=0)


# --- invariance and the task path --------------------------------------------------------------

SCALED = dict(fragment_size=FRAGMENT, scale_regions=True, bin_size=5, upstream=1000,
              downstream=500, body_length=500, strand_wise=True)


def test_processes_and_chunking_bit_identical():
    regs = pd.concat([_stranded_regions(730), _peak_regions(200)], ignore_index=True)
    base = profiles.compute(regs, str(SE_CHIP), processes=1, chunk_bases=10**9, **SCALED)
    for processes, chunk in ((2, 1), (1, 3000), (2, 40_000), (2, 10**9)):
        res = profiles.compute(regs, str(SE_CHIP), processes=processes, chunk_bases=chunk,
                               **SCALED)
        np.testing.assert_array_equal(res.matrix.to_numpy(), base.matrix.to_numpy())
        pd.testing.assert_frame_equal(res.profile, base.profile, check_exact=True)
    alone = profiles.compute(regs, str(SE_CHIP), processes=2, chunk_bases=5000,
                             with_matrix=False, **SCALED)
    assert alone.matrix is None
    pd.testing.assert_frame_equal(alone.profile, base.profile, check_exact=True)


@pytest.mark.parametrize("with_matrix", [True, False])
def test_local_task_equals_compute(tmp_path, monkeypatch, with_matrix):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    opts = Options(**SCALED)
    task = cluster.submit_profile(PEAKS, str(SE_CHIP), opts, jobs=3, workdir=tmp_path,
                                  executor=tasks.LocalExecutor(processes=2),
                                  with_matrix=with_matrix)
    task.wait(progress=False, poll=0.1, timeout=120)
    got = cluster.collect(tasks.Task.load(task.path))
    local = profiles.compute(PEAKS, str(SE_CHIP), opts, with_matrix=with_matrix)
    pd.testing.assert_frame_equal(got.profile, local.profile, check_exact=True)
    if with_matrix:
        assert got.matrix.index.equals(local.matrix.index)
        np.testing.assert_array_equal(got.matrix.to_numpy(), local.matrix.to_numpy())
    task.clean()


# --- the CLI ----------------------------------------------------------------------------------

def test_cli_writes_scaled_offsets(tmp_path):
    mat, prof = tmp_path / "m.tsv.gz", tmp_path / "p.tsv"
    res = CliRunner().invoke(main, ["profile", str(PEAKS), str(SE_CHIP), "-f", "200",
                                    "--scale-regions", "--body-length", "300", "-b", "10",
                                    "-u", "200", "-d", "100", "--matrix", str(mat),
                                    "-o", str(prof), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    with gzip.open(mat, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    assert header[7:] == [str(o) for o in range(-200, 400, 10)]
    m = pd.read_csv(mat, sep="\t")
    api = bamcover.matrix(PEAKS, str(SE_CHIP), fragment_size=200, scale_regions=True,
                          body_length=300, bin_size=10, upstream=200, downstream=100)
    np.testing.assert_allclose(m.iloc[:, 7:].to_numpy(), api.to_numpy(), rtol=1e-15)
    p = pd.read_csv(prof, sep="\t", index_col="offset")
    assert p.index.tolist() == list(range(-200, 400, 10)) and (p["total_n"] == 730).all()
    bad = CliRunner().invoke(main, ["profile", str(PEAKS), str(SE_CHIP), "--scale-regions",
                                    "--body-length", "95", "-b", "10", "-o",
                                    str(tmp_path / "x.tsv")])
    assert bad.exit_code == 2
    assert "--body-length must be a positive multiple of --bin-size 10" in bad.stderr
    assert not (tmp_path / "x.tsv").exists()


# --- deepTools computeMatrix scale-regions ---------------------------------------------------

SUBSET = slice(117, 157)      # 40 consecutive peaks within ~625 kb of chr22


def _run(*cmd) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def deeptools_bw(tmp_path_factory):
    """bamCoverage --extendReads 200 --binSize 1 over the span of the subset, on a
    ``samtools view -F 0xB04`` copy (bamcover's default filters)."""
    for tool in ("samtools", "bamCoverage", "computeMatrix"):
        need(tool)
    root = tmp_path_factory.mktemp("deeptools_scaled")
    bam = root / "filtered.bam"
    _run("samtools", "view", "-b", "-F", "0xB04", "-o", bam, SE_CHIP)
    _run("samtools", "index", bam)
    peaks = pd.read_csv(PEAKS, sep="\t", header=None).iloc[SUBSET]
    summits = (peaks[1] + peaks[9]).to_numpy()
    lo, hi = int(summits.min()) - 8000, int(summits.max()) + 8000
    bw = root / "x.bw"
    _run("bamCoverage", "-b", bam, "--extendReads", "200", "--binSize", "1",
         "--region", f"chr22:{lo}:{hi}", "-p", "1", "-o", bw)
    strands = [line.split("\t")[5] for line in STRANDED.read_text().splitlines()[SUBSET]]
    return {"root": root, "bw": bw, "summits": summits, "strands": strands}


def _deeptools(info, lengths: np.ndarray, tag: str):
    """(regions, computeMatrix -b 500 -a 500 -m 1000 --binSize 10 values as printed)."""
    start = info["summits"] - lengths // 2
    regs = pd.DataFrame({"chrom": "chr22", "start": start, "end": start + lengths,
                         "name": [f"r{i}" for i in range(len(start))], "score": 0,
                         "strand": info["strands"]})
    bed = info["root"] / f"{tag}.bed"
    regs.to_csv(bed, sep="\t", header=False, index=False)
    out = info["root"] / f"{tag}.gz"
    _run("computeMatrix", "scale-regions", "-S", info["bw"], "-R", bed, "-b", "500", "-a",
         "500", "-m", "1000", "--binSize", "10", "--missingDataAsZero", "--sortRegions",
         "keep", "-p", "1", "-o", out)
    with gzip.open(out, "rt") as fh:
        assert fh.readline().startswith("@")
        df = pd.read_csv(fh, sep="\t", header=None, dtype=str)
    assert df[3].tolist() == regs["name"].tolist()
    return regs, df.iloc[:, 6:].to_numpy()


def _ours(regs) -> np.ndarray:
    m = bamcover.matrix(regs, str(SE_CHIP), fragment_size=200, scale_regions=True,
                        upstream=500, downstream=500, body_length=1000, bin_size=10)
    return m.to_numpy(np.float64)


def test_deeptools_identical_when_length_is_a_multiple_of_100(deeptools_bw):
    """Lengths 100·k: every body bin of deepTools is the mean of k whole bases, as ours;
    identical as deepTools prints them ('%f'), on '+', '-' and '.' regions."""
    lengths = np.array([100, 200, 300, 500, 700, 1000, 1200, 2000])[np.arange(40) % 8]
    regs, want = _deeptools(deeptools_bw, lengths, "m100")
    got = _ours(regs)
    assert want.shape == (40, 200) and set(regs["strand"]) == {"+", "-", "."}
    np.testing.assert_array_equal(np.char.mod("%f", got), want)
    assert (want.astype(float) % 1 != 0).any()


def test_deeptools_matrix_export_is_what_computematrix_writes(deeptools_bw, tmp_path):
    """``--scale-regions --matrix x.mat.gz``: the header ``computeMatrix scale-regions``
    writes (flanks, body, bin size, null reference point) and the same values as it prints
    them; deepTools' own plotProfile and computeMatrixOperations read the file."""
    need("plotProfile")
    lengths = np.array([100, 200, 300, 500, 700, 1000, 1200, 2000])[np.arange(40) % 8]
    regs, want = _deeptools(deeptools_bw, lengths, "export")
    ours = tmp_path / "ours.mat.gz"
    res = CliRunner().invoke(main, [
        "profile", str(deeptools_bw["root"] / "export.bed"), str(SE_CHIP), "-f", "200",
        "--scale-regions", "-u", "500", "-d", "500", "--body-length", "1000", "-b", "10",
        "-q", "-o", str(tmp_path / "p.tsv"), "--matrix", str(ours)])
    assert res.exit_code == 0, res.stderr
    with gzip.open(deeptools_bw["root"] / "export.gz", "rt") as fh:
        theirs = json.loads(fh.readline()[1:])
    with gzip.open(ours, "rt") as fh:
        header = json.loads(fh.readline()[1:])
        table = pd.read_csv(fh, sep="\t", header=None)
    for key in ("upstream", "downstream", "body", "bin size", "ref point",
                "unscaled 5 prime", "unscaled 3 prime", "group_boundaries",
                "sample_boundaries"):
        assert header[key] == theirs[key], key
    assert theirs["body"] == [1000] and theirs["ref point"] == [None]
    assert table[3].tolist() == regs["name"].tolist()
    np.testing.assert_array_equal(np.char.mod("%f", table.iloc[:, 6:].to_numpy(float)), want)
    _run("plotProfile", "-m", ours, "-o", tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    info = subprocess.run(["computeMatrixOperations", "info", "-m", str(ours)], check=True,
                          capture_output=True, text=True).stdout
    assert "Samples" in info and "Groups" in info


def test_deeptools_export_refuses_a_body_the_bins_do_not_hold():
    m = bamcover.matrix(PEAKS, str(SE_CHIP), fragment_size=FRAGMENT, scale_regions=True,
                        upstream=100, downstream=100, body_length=200, bin_size=10)
    with pytest.raises(BamcoverError, match="body_length=205 does not fit"):
        formats.write_deeptools_matrix(m, "/nonexistent/x.mat.gz", body_length=205)


def test_deeptools_export_takes_the_body_from_the_matrix(tmp_path):
    """The API's scale-regions matrix records its body: written without being told, the
    file is still a scale-regions matrix with the means as they are."""
    m = bamcover.matrix(PEAKS, str(SE_CHIP), fragment_size=FRAGMENT, scale_regions=True,
                        upstream=100, downstream=100, body_length=200, bin_size=10)
    formats.write_deeptools_matrix(m, tmp_path / "x.mat.gz")
    with gzip.open(tmp_path / "x.mat.gz", "rt") as fh:
        header = json.loads(fh.readline()[1:])
        table = pd.read_csv(fh, sep="\t", header=None)
    assert (header["body"], header["upstream"], header["downstream"], header["ref point"]) == \
        ([200], [100], [100], [None])
    ok = m.index.get_level_values("status") == "ok"
    np.testing.assert_allclose(table.iloc[:, 6:].to_numpy(float), m.to_numpy()[ok])


def test_deeptools_whole_base_bins_for_other_lengths(deeptools_bw):
    """Other lengths: deepTools splits the body into whole bases (bin k = bases
    ⌊U + k·L/nb⌋ − U … ⌊U + (k+1)·L/nb⌋ − U − 1 of the row, at least one, with U the left
    flank and the bounds from a float ``np.linspace``), bamcover weighs cut bases by the
    fraction inside. Flanks are identical; deepTools' body is the whole-base model below
    exactly; bamcover's body bins average to the exact mean of the body, deepTools' do not.
    Regions shorter than --binSize are skipped by deepTools (zeros here)."""
    peaks = pd.read_csv(PEAKS, sep="\t", header=None).iloc[SUBSET]
    lengths = (peaks[2] - peaks[1]).to_numpy().copy()
    lengths[:8] = [3, 9, 10, 33, 57, 99, 101, 1234]
    regs, want = _deeptools(deeptools_bw, lengths, "any")
    got = _ours(regs)
    fwd, rev = _coverage(SE_CHIP, fragment_size=FRAGMENT)
    cov = fwd + rev
    short = lengths < 10
    assert (want[short].astype(float) == 0).all()
    ok = ~short
    np.testing.assert_array_equal(np.char.mod("%f", got[ok][:, :50]), want[ok][:, :50])
    np.testing.assert_array_equal(np.char.mod("%f", got[ok][:, 150:]), want[ok][:, 150:])
    model = np.zeros((len(regs), 100))
    for i, (s, e, strand) in enumerate(_rows(regs)):
        n = e - s
        pos = np.append(np.linspace(500, 500 + n, 100, endpoint=False, dtype=int) - 500, n)
        body = [cov[s + pos[k]:s + max(pos[k + 1], pos[k] + 1)].mean() for k in range(100)]
        model[i] = body[::-1] if strand == "-" else body
    np.testing.assert_array_equal(np.char.mod("%f", model[ok]), want[ok][:, 50:150])
    differ = np.char.mod("%f", got[ok][:, 50:150]) != want[ok][:, 50:150]
    assert differ.any() and not differ[(lengths[ok] % 100 == 0)].any()
    exact = np.array([cov[s:e].mean() for s, e, _ in _rows(regs)])
    np.testing.assert_allclose(got[ok][:, 50:150].mean(axis=1), exact[ok], rtol=1e-12)
    assert np.abs(want[ok][:, 50:150].astype(float).mean(axis=1) - exact[ok]).max() > 1e-3
