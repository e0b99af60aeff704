"""Same input, bit-identical output: any number of processes, any chunking, either reader."""

from __future__ import annotations

import mmap

import numpy as np
import pandas as pd
import pytest

import bamcover
from bamcover import reads
from bamcover.regions import read_regions

from .conftest import PE_CHIP, SE_CHIP, STRANDED

OPTS = dict(fragment_size=200, upstream=1000, downstream=1000, bin_size=5, strand_wise=True)


def _run(bam, processes, chunk_bases, **extra):
    res = bamcover.profiles.compute(STRANDED, str(bam), processes=processes,
                                    chunk_bases=chunk_bases, **{**OPTS, **extra})
    return res.matrix, res.profile


@pytest.mark.parametrize("bam,extra", [(SE_CHIP, {}), (PE_CHIP, {"pairs": True}),
                                       (SE_CHIP, {"normalize": "cpm"})])
def test_processes_and_chunking(bam, extra):
    # in-process first: a reader opened here must not leak into forked workers
    base_m, base_p = _run(bam, 1, 10**9, **extra)
    for processes, chunk in ((2, 2000), (2, 37_000), (1, 2000), (2, 10**9)):
        m, p = _run(bam, processes, chunk, **extra)
        assert m.index.equals(base_m.index)
        np.testing.assert_array_equal(m.to_numpy(), base_m.to_numpy())
        pd.testing.assert_frame_equal(p, base_p, check_exact=True)


def test_region_order_is_kept():
    regs = read_regions(STRANDED).iloc[:200]
    shuffled = regs.sample(frac=1, random_state=7)
    a = bamcover.matrix(regs, str(SE_CHIP), processes=2, chunk_bases=3000, **OPTS)
    b = bamcover.matrix(shuffled, str(SE_CHIP), processes=2, chunk_bases=3000, **OPTS)
    assert b.index.get_level_values("name").tolist()[::2] == shuffled["name"].tolist()
    order = np.argsort(np.repeat(shuffled.index.to_numpy(), 2) * 2 + np.tile([0, 1], 200),
                       kind="stable")
    np.testing.assert_array_equal(b.to_numpy()[order], a.to_numpy())


def test_compiled_kernel_equals_pysam_fallback(monkeypatch):
    assert reads.KERNEL.startswith("htslib"), "setup-env should build the compiled kernel"
    regs = read_regions(STRANDED).iloc[:150]
    for bam, extra in ((SE_CHIP, {"min_mapq": 1}), (PE_CHIP, {"pairs": True, "shift": 3}),
                       (SE_CHIP, {"normalize": "cpm"}),
                       (SE_CHIP, {"scale_regions": True, "body_length": 500})):
        fast = bamcover.profiles.compute(regs, str(bam), processes=1, **OPTS, **extra)
        monkeypatch.setattr(reads, "_kernel", None)    # numpy counting, sparse medians, pysam
        slow = bamcover.profiles.compute(regs, str(bam), processes=1, **OPTS, **extra)
        monkeypatch.undo()
        np.testing.assert_array_equal(fast.matrix.to_numpy(), slow.matrix.to_numpy())
        pd.testing.assert_frame_equal(fast.profile, slow.profile, check_exact=True)


@pytest.mark.parametrize("case", ["counts", "counts from 2^24", "cpm", "scale-regions"])
def test_matrix_frame_kernel_equals_numpy(monkeypatch, case):
    """The kernel's tiled transpose writes the same bits as numpy's copy for every dtype
    pair it is built for: counts stay float32 below 2^24 and become float64 from there (a
    depth no fixture reaches), CPM multiplies in double, scale-regions means are float64."""
    opts = bamcover.Options(upstream=1000, downstream=1000, bin_size=5, strand_wise=True,
                            normalize="cpm" if case == "cpm" else "none",
                            scale_regions=case == "scale-regions", body_length=500)
    regs = read_regions(STRANDED).iloc[:130]
    status = pd.Series(["ok"] * len(regs))
    rng = np.random.default_rng(3)
    values = rng.integers(0, 500, size=(len(regs), 2, opts.n_bins)).astype(np.int32)
    if case == "counts from 2^24":
        values[7, 1, 3] = 2 ** 24
    elif case == "scale-regions":
        values = values / 7
    valid = rng.random((len(regs), opts.n_bins)) > 0.1
    fast = bamcover.matrices.matrix_frame(regs, status, values, ~valid, opts, 0.37)
    monkeypatch.setattr(reads, "_kernel", None)
    slow = bamcover.matrices.matrix_frame(regs, status, values, ~valid, opts, 0.37)
    assert fast.dtypes.iloc[0] == slow.dtypes.iloc[0] == \
        (np.float32 if case == "counts" else np.float64)
    assert fast.to_numpy().tobytes() == slow.to_numpy().tobytes()
    assert np.isnan(fast.to_numpy()).sum() == 2 * (~valid).sum()


@pytest.mark.parametrize("normalize", ["none", "cpm"])
def test_matrix_frame_in_blocks_returns_the_counts_memory(monkeypatch, normalize):
    """Built from this run's shared counts, the frame is converted in blocks of regions on
    two threads, each block's pages of the counts handed back as it goes: the same bits
    as numpy's one-piece copy, and afterwards the shared counts are (nearly) all zeros."""
    opts = bamcover.Options(upstream=1000, downstream=1000, bin_size=5, strand_wise=True,
                            normalize=normalize, processes=2)
    regs = read_regions(STRANDED)
    status = pd.Series(["ok"] * len(regs))
    rng = np.random.default_rng(5)
    shape = (len(regs), 2, opts.n_bins)
    values = bamcover.matrices.shared_zeros(shape, np.int32)
    values[...] = rng.integers(1, 500, size=shape)
    invalid = bamcover.matrices.shared_zeros((len(regs), opts.n_bins), bool)
    invalid[...] = rng.random(invalid.shape) < 0.1
    kept_values, kept_invalid = values.copy(), invalid.copy()
    row_bytes = 2 * opts.n_bins * 4
    monkeypatch.setattr(bamcover.kernels, "_BLOCK_BYTES", 64 * row_bytes)    # 12 blocks
    freed = []
    discard = bamcover.matrices._discard
    monkeypatch.setattr(bamcover.matrices, "_discard",
                        lambda m, a, b: (freed.append((a, b)), discard(m, a, b)))
    fast = bamcover.matrices.matrix_frame(regs, status, values, invalid, opts, 0.37,
                                          release=True)
    monkeypatch.setattr(reads, "_kernel", None)
    slow = bamcover.matrices.matrix_frame(regs, status, kept_values, kept_invalid, opts, 0.37)
    assert fast.to_numpy().tobytes() == slow.to_numpy().tobytes()
    assert len(freed) == 2 * -(-len(regs) // 64)
    # a page that straddles two blocks stays: at most one per block boundary
    page = mmap.PAGESIZE
    assert np.count_nonzero(values) * 4 <= len(freed) / 2 * page
    assert np.count_nonzero(invalid) <= len(freed) / 2 * page
    assert np.isnan(fast.to_numpy()).sum() == 2 * kept_invalid.sum() > 0
    assert np.count_nonzero(kept_values) == kept_values.size


@pytest.mark.parametrize("extra", [{}, {"bin_size": 1, "strand_wise": False},
                                   {"bin_size": 7, "upstream": 990, "reference_point": "start"}])
def test_profile_only_paths_equal_matrix_run(monkeypatch, extra):
    """Without a matrix, bin values go straight into histograms (a dense table for small
    values, sparse keys for the rest and without the kernel); pool workers send them back.
    Tables of height 1, 4 and 30 put the medians of some cells in the dense part, of
    others in the sparse part and of some across the two."""
    opts = {**OPTS, **extra}
    base = bamcover.profiles.compute(STRANDED, str(SE_CHIP), processes=1, **opts).profile
    assert base.filter(like="_median").to_numpy().max() > 4
    for processes, chunk in ((2, 2000), (2, 50_000), (1, 2000)):
        prof = bamcover.profile(STRANDED, str(SE_CHIP), processes=processes, chunk_bases=chunk,
                                **opts)
        pd.testing.assert_frame_equal(prof, base, check_exact=True)
    monkeypatch.setattr(bamcover.statistics.ProfileStats, "DENSE_CELLS", 0)
    for height in (1, 4, 30):
        monkeypatch.setattr(bamcover.statistics.ProfileStats, "MIN_HEIGHT", height)
        for processes, with_matrix in ((1, False), (2, False), (2, True)):
            res = bamcover.profiles.compute(STRANDED, str(SE_CHIP), processes=processes,
                                            chunk_bases=20_000, with_matrix=with_matrix,
                                            **opts)
            pd.testing.assert_frame_equal(res.profile, base, check_exact=True)
    monkeypatch.setattr(reads, "_kernel", None)
    prof = bamcover.profile(STRANDED, str(SE_CHIP), processes=1, chunk_bases=20_000, **opts)
    pd.testing.assert_frame_equal(prof, base, check_exact=True)


def test_kernel_refuses_tables_and_rooms_too_small():
    """The histogram and transposing kernels write without bounds checks: sizes are
    checked once per call."""
    if reads._kernel is None:
        pytest.skip("needs the compiled kernel")
    values = np.ones((3, 2, 5), np.int32)
    valid = np.ones((3, 5), np.uint8)
    with pytest.raises(ValueError, match="room"):
        reads._kernel.accumulate(values, valid, np.zeros((4, 10), np.int32),
                                 np.empty(29, np.int64))
    with pytest.raises(ValueError, match="cell per channel"):
        reads._kernel.accumulate(values, valid, np.zeros((4, 5), np.int32),
                                 np.empty(30, np.int64))
    cov = np.ones(100, np.uint32)
    with pytest.raises(ValueError, match="room"):
        reads._kernel.window_hist(cov, cov, np.array([0, 10]), np.zeros(2, np.int64),
                                  np.zeros(2, np.uint8), np.zeros(2, np.uint8), 1, 5, 100,
                                  np.zeros((4, 10), np.int32), np.empty(19, np.int64))
    # the transposing copy: a block of rows must fit its columns and its mask
    rows, off, columns = np.ones((6, 5), np.int32), np.zeros((3, 5), np.uint8), \
        np.zeros((5, 8), np.float32)
    reads._kernel.matrix_columns(rows, off, 2, 1.0, False, columns, 2)
    assert (columns[:, 2:] == 1).all() and (columns[:, :2] == 0).all()
    for bad in (dict(first=3), dict(off=off[:2]), dict(columns=columns[:4])):
        args = dict(off=off, columns=np.ascontiguousarray(columns), first=2) | bad
        with pytest.raises(ValueError, match="shapes do not match"):
            reads._kernel.matrix_columns(rows, args["off"], 2, 1.0, False, args["columns"],
                                         args["first"])

    # and back: matrix_rows reads rows out of pandas' column layout
    back = np.full((2, 5), 7.0)
    reads._kernel.matrix_rows(columns, np.array([3, -1]), back)
    assert (back[0] == 1).all() and np.isnan(back[1]).all()
    for rows_, out in ((np.array([8, 0]), back), (np.array([0]), back)):
        with pytest.raises(ValueError, match="matrix_rows"):
            reads._kernel.matrix_rows(columns, rows_, out)
    # the line writer: one head line per row of values, no more, no fewer
    values = np.ones((2, 3))
    assert reads._kernel.whole_rows(b"a\nb\n", np.array([1, 3]), values, False) == \
        b"a\t1\t1\t1\nb\t1\t1\t1\n"
    for head, ends in ((b"a\n", np.array([1])), (b"a\nb", np.array([1, 3]))):
        with pytest.raises(ValueError, match="head lines and value rows"):
            reads._kernel.whole_rows(head, ends, values, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matrix_rows_equal_numpy_indexing(dtype):
    """The kernel's transposing gather (used to write text matrices a part at a time) gives
    what numpy's fancy indexing gives, over more than one 64-row block."""
    if reads._kernel is None:
        pytest.skip("needs the compiled kernel")
    rng = np.random.default_rng(5)
    data = np.asfortranarray(rng.integers(0, 1000, (300, 37)).astype(dtype))
    rows = rng.integers(-1, 300, 150)
    out = np.empty((150, 37))
    reads._kernel.matrix_rows(data.T, rows, out)
    want = np.where(rows[:, None] >= 0, data[np.maximum(rows, 0)].astype(np.float64), np.nan)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("with_matrix", [False, True])
def test_bin_sums_beyond_int32_are_refused(monkeypatch, with_matrix):
    """Bin sums are int32 and come from uint32 cumulatives: a bound too small for the
    data must stop the run, never wrap."""
    from bamcover import counting
    monkeypatch.setattr(counting, "INT32_MAX", 3)
    with pytest.raises(OverflowError, match="exceeds 2\\^31"):
        bamcover.profiles.compute(STRANDED, str(SE_CHIP), processes=1,
                                  with_matrix=with_matrix, **OPTS)


def test_dense_histogram_statistics_equal_brute_force():
    """The kernel's two-pass read of a dense histogram against each cell's values spelled
    out: empty cells, single values, even and odd counts, ties, a tall sparse top."""
    if reads._kernel is None:
        pytest.skip("needs the compiled kernel")
    rng = np.random.default_rng(11)
    hist = np.zeros((300, 40), dtype=np.int32)
    hist[:5] = rng.integers(0, 4, size=(5, 40))
    hist[rng.integers(0, 300, 60), rng.integers(0, 40, 60)] += 1
    hist[:, 0] = 0                            # no value at all
    hist[:, 1] = 0
    hist[299, 1] = 1                          # one value, at the top
    hist[:, 2] = 0
    hist[[3, 7], 2] = 2                       # even count, median between two values
    n, total, sumsq, lo, hi = reads._kernel.dense_stats(hist, np.zeros(40, np.int64))
    for c in range(hist.shape[1]):
        values = np.repeat(np.arange(hist.shape[0]), hist[:, c])
        assert n[c] == len(values) and total[c] == values.sum()
        assert sumsq[c] == (values * values).sum()
        if len(values):
            s = np.sort(values)
            assert (lo[c] + hi[c]) / 2 == np.median(values)
            assert (lo[c], hi[c]) == (s[(len(s) - 1) // 2], s[len(s) // 2])
        else:
            assert lo[c] == hi[c] == -1
    # values above the table: the ranks count them, a middle value among them is -1
    above = rng.integers(0, 30, 40)
    above[:3] = (1, 0, 3)
    n2, total2, sumsq2, lo2, hi2 = reads._kernel.dense_stats(hist, above)
    assert (n2 == n).all() and (total2 == total).all() and (sumsq2 == sumsq).all()
    for c in range(hist.shape[1]):
        values = np.r_[np.repeat(np.arange(hist.shape[0]), hist[:, c]),
                       np.full(above[c], 10**6)]
        s = np.sort(values)
        for got, rank in ((lo2[c], (len(s) - 1) // 2), (hi2[c], len(s) // 2)):
            assert got == (s[rank] if 0 <= rank < n[c] else -1)
    assert lo2[0] == hi2[0] == -1             # its one value lies above the table
