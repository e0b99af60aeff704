"""bamcover.statistics: the histogram accumulator and the statistics of float matrices."""

from __future__ import annotations

import pickle

import numpy as np

from bamcover.statistics import ProfileStats, matrix_columns, nan_statistics


def test_histogram_statistics_equal_brute_force(monkeypatch):
    """ProfileStats against numpy on the values spelled out: values added in uneven pieces to
    three accumulators (one pickled, one through the cluster's arrays), merged, with a
    dense table too short for most values, so cells mix dense and sparse parts."""
    monkeypatch.setattr(ProfileStats, "DENSE_CELLS", 0)
    monkeypatch.setattr(ProfileStats, "MIN_HEIGHT", 6)
    rng = np.random.default_rng(5)
    values = rng.poisson(rng.uniform(0.5, 12, size=(1, 2, 9)), size=(400, 2, 9))
    values[:, 0, 0] = 1000                    # one cell all above the table
    values[:, 1, 1] = 0                       # one all in it
    valid = rng.random((400, 9)) > 0.2
    valid[:, 2] = False                       # one empty
    values = values.astype(np.int32)
    lent = np.zeros(ProfileStats.table_shape(2, 9), np.int32)      # a worker's shared table
    parts = [ProfileStats(2, 9, lent), ProfileStats(2, 9), ProfileStats(2, 9)]
    for i, (a, b) in enumerate(((0, 50), (50, 51), (51, 260), (260, 400))):
        parts[min(i, 2)].add(values[a:b], valid[a:b])
    total = ProfileStats(2, 9)
    total.merge(pickle.loads(pickle.dumps(parts[0])))       # without its table...
    total.add_table(lent)                                   # ...which comes on its own
    total.merge(parts[1])
    total.merge(ProfileStats.from_arrays(parts[2].to_arrays()))
    cols = total.columns(range(9), ["sense", "anti"], 1.0)
    for c, name in enumerate(["sense", "anti"]):
        for k in range(9):
            v = values[valid[:, k], c, k].astype(np.int64)
            assert cols[f"{name}_n"][k] == len(v)
            if not len(v):
                assert np.isnan(cols[f"{name}_mean"][k]) and np.isnan(cols[f"{name}_median"][k])
                continue
            assert cols[f"{name}_median"][k] == np.median(v)
            assert cols[f"{name}_mean"][k] == v.sum() / len(v)
            np.testing.assert_allclose(cols[f"{name}_std"][k], v.std(ddof=1), rtol=1e-12)
    # an empty accumulator, read and then sent on, stays empty
    empty = ProfileStats.from_arrays(ProfileStats(2, 9).to_arrays())
    assert (empty.columns(range(9), ["sense", "anti"], 1.0)["sense_n"] == 0).all()
    assert empty.to_arrays()["stats_keys"].size == 0


def test_sums_of_squares_of_huge_bin_sums_stay_exact():
    """Bin sums near 2^31 (wide bins over deep coverage) have squares near 2^62: their sum
    over a few regions leaves int64, and the std must still be the exact one."""
    rng = np.random.default_rng(9)
    values = np.zeros((50, 1, 3), np.int32)
    values[:, 0, 0] = rng.integers(2**30, 2**31 - 1, 50)     # sparse keys, squares ~2^61
    values[:, 0, 1] = rng.integers(0, 40, 50)                 # the dense table
    values[:, 0, 2] = rng.integers(0, 40, 50)
    values[::2, 0, 2] += 2**30                                # both, in one cell
    valid = np.ones((50, 3), bool)
    stats = ProfileStats(1, 3)
    stats.add(values, valid)
    cols = stats.columns(range(3), ["all"], 1.0)
    for k in range(3):
        v = [int(x) for x in values[:, 0, k]]
        n, s, q = len(v), sum(v), sum(x * x for x in v)
        assert cols["all_std"][k] == np.sqrt((n * q - s * s) / (n * (n - 1)))
        np.testing.assert_allclose(cols["all_std"][k], np.std(v, ddof=1), rtol=1e-9)
        assert cols["all_mean"][k] == s / n and cols["all_median"][k] == np.median(v)


def test_nan_statistics_of_a_matrix_with_gaps():
    """Mean, median, std (ddof 1), sem and n over the non-NaN values of each column, NaN
    where a column has none (std, sem: fewer than two); a valid mask gives the same."""
    rng = np.random.default_rng(3)
    v = rng.normal(5, 2, size=(30, 2, 6))
    v[rng.random(v.shape) < 0.3] = np.nan
    v[:, 0, 0] = np.nan                       # no value
    v[1:, 1, 1] = np.nan                      # one value
    mean, median, std, sem, n = nan_statistics(v)
    for c in range(2):
        for k in range(6):
            x = v[:, c, k][~np.isnan(v[:, c, k])]
            assert n[c, k] == len(x)
            if not len(x):
                assert np.isnan(mean[c, k]) and np.isnan(median[c, k])
                continue
            assert median[c, k] == np.median(x)
            np.testing.assert_allclose(mean[c, k], x.mean(), rtol=1e-14)
            if len(x) > 1:
                np.testing.assert_allclose(std[c, k], x.std(ddof=1), rtol=1e-12)
                np.testing.assert_allclose(sem[c, k], x.std(ddof=1) / np.sqrt(len(x)),
                                           rtol=1e-12)
            else:
                assert np.isnan(std[c, k]) and np.isnan(sem[c, k])
    valid = rng.random((30, 6)) > 0.2
    values = rng.uniform(0, 9, size=(30, 2, 6))
    cols = matrix_columns(values, valid, range(6), ["a", "b"], 2.0)
    masked = np.where(valid[:, None, :], values, np.nan)
    mean, median, std, sem, n = nan_statistics(masked)
    assert np.array_equal(cols["a_mean"], mean[0] * 2.0)
    assert np.array_equal(cols["b_median"], median[1] * 2.0)
    assert np.array_equal(cols["b_n"], n[1])
