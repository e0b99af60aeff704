"""bamcover against the brute-force reference (tests/oracle.py) on the real fixtures."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import bamcover
from bamcover.regions import read_regions

from . import oracle
from .conftest import CHR22, PE_CHIP, PEAKS, SE_CHIP, STRANDED, SUMMITS, need


@functools.cache
def _records(bam):
    need("samtools")
    return oracle.records(str(bam))


@functools.lru_cache(maxsize=8)
def _coverage(bam, **opts):
    return oracle.chromosome_coverage(_records(bam), "chr22", CHR22, oracle.Opts(**opts))


def _regions(path, n=120, extra=()):
    regs = read_regions(path).iloc[:n]
    rows = [(r.start, r.end, r.strand, r.summit) for r in regs.itertuples()]
    return regs, rows + list(extra)


def _compare(bam, region_path, read_opts, window_opts, n=120):
    regs, rows = _regions(region_path, n)
    fwd, rev = _coverage(bam, **read_opts)
    expected = oracle.window_matrix(rows, fwd, rev, CHR22, **window_opts)
    got = bamcover.matrix(regs, str(bam), processes=1, **read_opts, **window_opts)
    nch = expected.shape[1]
    got = got.to_numpy(np.float64).reshape(len(regs), nch, -1)
    np.testing.assert_array_equal(got, expected)
    assert np.nansum(expected) > 0        # the comparison saw reads
    return expected


READ_CASES = [
    dict(),
    dict(fragment_size=200),
    dict(fragment_size=1),
    dict(fragment_size=50, shift=-30),
    dict(fragment_size=1, shift=4, shift_reverse=5),
    dict(shift=7),
    dict(min_mapq=1, ignore_duplicates=True, fragment_size=150),
    dict(flag_exclude=0x4, fragment_size=100),
    dict(flag_include=0x10, fragment_size=100),
]


@pytest.mark.parametrize("read_opts", READ_CASES, ids=lambda d: ",".join(
    f"{k}={v}" for k, v in d.items()) or "defaults")
def test_single_end_read_options(read_opts):
    _compare(SE_CHIP, SUMMITS, read_opts, dict(upstream=1000, downstream=1000))


WINDOW_CASES = [
    dict(upstream=500, downstream=1500, bin_size=1, strand_wise=True),
    dict(upstream=1000, downstream=1000, bin_size=10, strand_wise=True, reference_point="start"),
    dict(upstream=1000, downstream=700, bin_size=300, reference_point="end"),
    dict(upstream=300, downstream=300, bin_size=7, orient=False, strand_wise=True),
    dict(upstream=0, downstream=250, bin_size=25),
]


@pytest.mark.parametrize("window_opts", WINDOW_CASES, ids=str)
def test_windows_on_stranded_regions(window_opts):
    _compare(SE_CHIP, STRANDED, dict(fragment_size=200), window_opts, n=150)


def test_summit_reference_point():
    _compare(SE_CHIP, PEAKS, dict(fragment_size=180),
             dict(upstream=800, downstream=800, reference_point="summit", bin_size=4))


@pytest.mark.parametrize("read_opts", [
    dict(pairs=True),
    dict(pairs=True, fragment_size=150),
    dict(pairs=True, max_fragment_length=250, fragment_size=100),
    dict(pairs=True, shift=4, shift_reverse=5),
    dict(fragment_size=None),
])
def test_paired_end(read_opts):
    _compare(PE_CHIP, STRANDED, read_opts,
             dict(upstream=600, downstream=600, strand_wise=True, bin_size=3), n=150)


def test_pairs_count_fragments_once():
    """A fragment covers each of its bases once, not once per mate."""
    regs, rows = _regions(SUMMITS, 60)
    both = bamcover.matrix(regs, str(PE_CHIP), pairs=True, upstream=300, downstream=300)
    mates = bamcover.matrix(regs, str(PE_CHIP), upstream=300, downstream=300)
    assert both.to_numpy().sum() > 2 * mates.to_numpy().sum()   # inserts ≫ 2 × 36 bp mates
    fwd, rev = _coverage(PE_CHIP, pairs=True)
    expected = oracle.window_matrix(rows, fwd, rev, CHR22, 300, 300)
    np.testing.assert_array_equal(both.to_numpy(np.float64), expected[:, 0])


def test_chromosome_ends_are_nan():
    """Windows hanging off either end of chr22 are NaN there, counted elsewhere."""
    extra = pd.DataFrame({"chrom": ["chr22", "chr22", "chr22", "chr22"],
                          "start": [100, CHR22 - 50, 17_255_632, CHR22 + 5000],
                          "end": [101, CHR22 - 49, 17_255_633, CHR22 + 5001],
                          "strand": ["+", "-", "+", "+"]})
    m = bamcover.matrix(extra, str(SE_CHIP), upstream=1000, downstream=1000, bin_size=10)
    vals = m.to_numpy()
    assert np.isnan(vals[0, :90]).all() and not np.isnan(vals[0, 110:]).any()
    # '-' region near the end: upstream (5') lies beyond the end, i.e. at the start of the row
    assert np.isnan(vals[1, :95]).all() and not np.isnan(vals[1, 110:]).any()
    assert not np.isnan(vals[2]).any()
    assert np.isnan(vals[3]).all()
    status = m.index.get_level_values("status").tolist()
    assert status == ["clipped", "clipped", "ok", "off_chromosome"]


def test_profile_statistics_match_matrix():
    regs, _ = _regions(STRANDED, 200)
    opts = dict(fragment_size=200, upstream=400, downstream=400, bin_size=5, strand_wise=True)
    m = bamcover.matrix(regs, str(SE_CHIP), **opts)
    p = bamcover.profile(regs, str(SE_CHIP), **opts)
    for channel in ("sense", "antisense"):
        sub = m.xs(channel, level="channel").astype(np.float64)
        np.testing.assert_allclose(p[f"{channel}_mean"], sub.mean(), rtol=1e-12)
        np.testing.assert_array_equal(p[f"{channel}_median"], sub.median())
        np.testing.assert_allclose(p[f"{channel}_std"], sub.std(ddof=1), rtol=1e-9)
        np.testing.assert_allclose(p[f"{channel}_sem"], sub.sem(), rtol=1e-9)
        np.testing.assert_array_equal(p[f"{channel}_n"], sub.notna().sum())
    # the CTCF summits: sense reads pile up upstream, antisense downstream of offset 0
    assert p.loc[-100, "sense_mean"] > p.loc[100, "sense_mean"]
    assert p.loc[100, "antisense_mean"] > p.loc[-100, "antisense_mean"]


def test_cpm_normalisation():
    need("samtools")
    regs, _ = _regions(SUMMITS, 50)
    raw = bamcover.profile(regs, str(SE_CHIP), fragment_size=200, min_mapq=1)
    cpm = bamcover.profile(regs, str(SE_CHIP), fragment_size=200, min_mapq=1, normalize="cpm")
    library = sum(1 for r in _records(SE_CHIP) if not r.flag & 0xB04 and r.mapq >= 1)
    assert cpm.attrs["library_size"] == library
    np.testing.assert_allclose(cpm["total_mean"], raw["total_mean"] * 1e6 / library,
                               rtol=1e-12)


def test_density_matches_reference():
    need("samtools")
    regs = read_regions(PEAKS)
    got = bamcover.density(regs, str(SE_CHIP), fragment_size=200, strand_wise=True)
    o = oracle.Opts(fragment_size=200)
    ivs = [oracle.covered(r, o, CHR22) for r in _records(SE_CHIP)]
    ivs = np.array([(s, e, rv) for s, e, rv in filter(None, ivs)])
    minus = regs["strand"].to_numpy() == "-"
    for i, row in enumerate(regs.itertuples()):
        hit = (ivs[:, 0] < row.end) & (ivs[:, 1] > row.start)
        f, r = int((hit & (ivs[:, 2] == 0)).sum()), int((hit & (ivs[:, 2] == 1)).sum())
        sense, anti = (r, f) if minus[i] else (f, r)
        assert got["ctcf_se_chip_sense_count"].iat[i] == sense
        assert got["ctcf_se_chip_antisense_count"].iat[i] == anti
    library = sum(oracle.in_library(r, oracle.Opts(fragment_size=200)) for r in _records(SE_CHIP))
    assert got["ctcf_se_chip_library_size"].iat[0] == library
