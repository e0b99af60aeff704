"""Generated reads and regions against the brute-force reference, over all options."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
import pysam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bamcover

from . import oracle

L = 1500          # a short chromosome, so windows hit both ends often


@st.composite
def read_sets(draw):
    recs = []
    n = draw(st.integers(0, 60))
    for i in range(n):
        pos = draw(st.integers(0, L - 1))
        m1 = draw(st.integers(1, 80))
        shape = draw(st.sampled_from(["M", "MDM", "MNM", "SM", "MIM"]))
        gap = draw(st.integers(1, 40))
        m2 = draw(st.integers(1, 40))
        cigar = {"M": f"{m1}M", "MDM": f"{m1}M{gap}D{m2}M", "MNM": f"{m1}M{gap}N{m2}M",
                 "SM": f"{gap}S{m1}M", "MIM": f"{m1}M{gap}I{m2}M"}[shape]
        flag = draw(st.sampled_from([0, 16, 0x400, 0x410, 0x100, 0x800, 0x200, 0x4]))
        mapq = draw(st.sampled_from([0, 5, 60]))
        recs.append(dict(name=f"r{i}", flag=flag, pos=pos, cigar=cigar, mapq=mapq,
                         mpos=-1, tlen=0))
    for i in range(draw(st.integers(0, 25))):
        left = draw(st.integers(0, L - 40))
        tlen = draw(st.integers(20, 1400))
        right_end = min(left + tlen, L)
        tlen = right_end - left
        mlen = min(draw(st.integers(5, 30)), tlen)
        read1_left = draw(st.booleans())
        proper = draw(st.sampled_from([0x2, 0x2, 0x2, 0]))
        dup = draw(st.sampled_from([0, 0, 0x400]))
        lf = 0x1 | proper | 0x20 | (0x40 if read1_left else 0x80) | dup
        rf = 0x1 | proper | 0x10 | (0x80 if read1_left else 0x40) | dup
        rpos = right_end - mlen
        recs.append(dict(name=f"p{i}", flag=lf, pos=left, cigar=f"{mlen}M",
                         mapq=draw(st.sampled_from([0, 60])), mpos=rpos, tlen=tlen))
        recs.append(dict(name=f"p{i}", flag=rf, pos=rpos, cigar=f"{mlen}M", mapq=60,
                         mpos=left, tlen=-tlen))
    return recs


def write_bam(recs, path):
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": L}]}
    tmp = path + ".unsorted.bam"
    with pysam.AlignmentFile(tmp, "wb", header=header) as out:
        for r in recs:
            a = pysam.AlignedSegment(out.header)
            a.query_name = r["name"]
            a.flag = r["flag"]
            a.reference_id = 0
            a.reference_start = r["pos"]
            a.mapping_quality = r["mapq"]
            a.cigarstring = r["cigar"]
            qlen = sum(int(n) for n, op in oracle.CIGAR.findall(r["cigar"]) if op in "MIS=X")
            a.query_sequence = "A" * qlen
            if r["mpos"] >= 0:
                a.next_reference_id = 0
                a.next_reference_start = r["mpos"]
                a.template_length = r["tlen"]
            out.write(a)
    pysam.sort("-o", path, tmp)
    pysam.index(path)
    os.unlink(tmp)


def as_oracle(r):
    return oracle.Rec(r["flag"], "c1", r["pos"], r["mapq"], r["cigar"],
                      "c1" if r["mpos"] >= 0 else "*", r["tlen"])


regions_st = st.lists(
    st.tuples(st.integers(0, L + 200), st.integers(0, 300), st.sampled_from("+-.")),
    min_size=1, max_size=12)

options_st = st.fixed_dictionaries({
    "fragment_size": st.one_of(st.none(), st.integers(1, 300)),
    "shift": st.integers(-20, 20),
    "shift_reverse": st.one_of(st.none(), st.integers(-20, 20)),
    "pairs": st.booleans(),
    "max_fragment_length": st.sampled_from([1000, 200]),
    "min_mapq": st.sampled_from([0, 1, 10]),
    "ignore_duplicates": st.booleans(),
})

window_st = st.fixed_dictionaries({
    "upstream": st.integers(0, 400),
    "downstream": st.integers(1, 400),
    "bin_size": st.integers(1, 9),
    "orient": st.booleans(),
    "strand_wise": st.booleans(),
    "reference_point": st.sampled_from(["start", "end", "center"]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(read_sets(), regions_st, options_st, window_st, st.integers(1, 2))
def test_matrix_and_density_equal_reference(recs, regions, read_opts, window_opts, processes):
    with tempfile.TemporaryDirectory() as tmp:
        bam = os.path.join(tmp, "x.bam")
        write_bam(recs, bam)
        regs = pd.DataFrame({"chrom": "c1", "start": [s for s, _, _ in regions],
                             "end": [s + w for s, w, _ in regions],
                             "strand": [d for _, _, d in regions]})
        got = bamcover.matrix(regs, bam, processes=processes, chunk_bases=200,
                              **read_opts, **window_opts)
        o = oracle.Opts(**read_opts)
        fwd, rev = oracle.chromosome_coverage([as_oracle(r) for r in recs], "c1", L, o)
        rows = [(s, s + w, d, -1) for s, w, d in regions]
        expected = oracle.window_matrix(rows, fwd, rev, L, **window_opts)
        np.testing.assert_array_equal(got.to_numpy(np.float64).reshape(expected.shape), expected)

        dens = bamcover.density(regs, bam, processes=processes, **read_opts)
        ivs = [oracle.covered(as_oracle(r), o, L) for r in recs]
        ivs = [iv for iv in ivs if iv is not None]
        for i, (s, w, _) in enumerate(regions):
            want = sum(1 for a, b, _ in ivs if a < s + w and b > s) if s < L else 0
            if s >= L:
                assert dens["status"].iat[i] == "off_chromosome"
            assert dens["x_count"].iat[i] == want, (i, s, w)
        assert dens["x_library_size"].iat[0] == sum(oracle.in_library(as_oracle(r), o)
                                                     for r in recs)
