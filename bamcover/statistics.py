"""Profile statistics, computed in one place: mean, median, std (ddof = 1), sem and n per
channel and bin, over regions.

Integer bin values (reference-point runs) go into :class:`ProfileStats`, an exact value
histogram per cell: adding and merging are the same operation for any chunking, so the
statistics are bit-identical for any number of processes or chunks. Float values
(scale-regions bins, matrices read back, control runs) use :func:`nan_statistics` over the
whole matrix in input order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from . import kernels


class ProfileStats:
    """Streaming per-bin statistics over regions: one exact integer histogram of bin values
    per cell (channel × bin). Counts, sums, sums of squares and medians are all read off it
    at the end, so adding and merging are the same operation for any chunking.

    With the compiled kernel the histogram is a dense table (value × cell) for the small
    values, which hold nearly all bins, grown as values arrive up to a few MB; values above
    it, and all values without the kernel, are sparse (cell << 32 | value) keys."""

    DENSE_CELLS = 1 << 22     # values × cells held densely: 16 MB of int32 counts, in cache
    MIN_HEIGHT = 256          # ... but at least this many values per cell

    def __init__(self, channels: int, bins: int, table: np.ndarray | None = None):
        """``table``: a zeroed dense table of :meth:`table_shape` to count into, which the
        caller owns (a worker's, in memory shared with the parent): it is not pickled."""
        self.shape = (channels, bins)
        self._keys: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._dense: np.ndarray | None = table
        self._lent = table is not None
        self.reads = 0

    @classmethod
    def table_shape(cls, channels: int, bins: int) -> tuple[int, int]:
        """The largest dense table: values × cells."""
        ncells = channels * bins
        return max(cls.MIN_HEIGHT, cls.DENSE_CELLS // max(ncells, 1)), ncells

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dense": None} if self._lent else self.__dict__

    def add_table(self, table: np.ndarray) -> None:
        """Add the counts of a dense table (one lent to a worker)."""
        if self._dense is None:
            self._dense = table
        else:
            self.table_for(table.shape[0])[:table.shape[0]] += table

    def table_for(self, top: int) -> np.ndarray:
        """The dense histogram (values × cells) to count into, grown towards ``top``
        values high as far as its cap.

        Parameters
        ----------
        top
            One more than the largest value about to be counted.

        Returns
        -------
        numpy.ndarray
            The table (int32, values × cells); values at or above its height go to
            :meth:`add_keys` instead.
        """
        cap, ncells = self.table_shape(*self.shape)
        height = 0 if self._dense is None else self._dense.shape[0]
        if min(top, cap) <= height:
            return self._dense
        height = min(max(top, 2 * height, 64), cap)
        grown = np.zeros((height, ncells), dtype=np.int32)
        if self._dense is not None:
            grown[:self._dense.shape[0]] = self._dense
        self._dense = grown
        return grown

    def add_keys(self, keys: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Add values to the sparse part.

        Parameters
        ----------
        keys
            ``cell << 32 | value`` keys (int64), repeated or with ``counts``.
        counts
            How many times each key counts (default: once per occurrence).
        """
        if not keys.size:
            return
        if counts is None:
            keys, counts = np.unique(keys, return_counts=True)
        self._keys.append(keys)
        self._counts.append(counts)
        if len(self._keys) >= 64:
            self._compact_keys()

    def add(self, values: np.ndarray, valid: np.ndarray) -> None:
        """Add regions' per-bin integer values.

        Parameters
        ----------
        values
            Values (n, channels, bins), integers.
        valid
            Which bins count (n, bins).
        """
        self.add_keys(kernels.histogram_keys(values, valid, self.shape, self.table_for))

    def merge(self, other: ProfileStats) -> None:
        """Add another accumulator's counts (exact: integers only)."""
        self.reads += other.reads
        if self._dense is None and not self._keys:         # empty: take other's tables
            self._dense, self._keys, self._counts = \
                other._dense, list(other._keys), list(other._counts)
            return
        if other._dense is not None:
            height = other._dense.shape[0]
            self.table_for(height)[:height] += other._dense
        for keys, counts in zip(other._keys, other._counts, strict=True):
            self.add_keys(keys, counts)

    def to_arrays(self) -> dict[str, np.ndarray]:
        self._compact()
        keys = self._keys[0] if self._keys else np.empty(0, np.int64)
        counts = self._counts[0] if self._counts else np.empty(0, np.int64)
        return {"stats_shape": np.array(self.shape), "stats_keys": keys,
                "stats_counts": counts}

    @classmethod
    def from_arrays(cls, arrays) -> ProfileStats:
        new = cls(*(int(x) for x in arrays["stats_shape"]))
        new._keys, new._counts = [arrays["stats_keys"]], [arrays["stats_counts"]]
        return new

    def _compact(self) -> None:
        """Fold the dense table and all sparse lists into one sorted list of keys."""
        if self._dense is not None:
            keys, counts = _dense_keys(self._dense)
            if keys.size:
                self._keys.append(keys)
                self._counts.append(counts)
            self._dense = None
        self._compact_keys()

    def _compact_keys(self) -> None:
        """Merge the sparse lists into one of sorted unique keys and their counts."""
        if len(self._keys) == 1 and self._keys[0].size > 1 and \
                (np.diff(self._keys[0]) < 0).any():
            order = np.argsort(self._keys[0], kind="stable")
            self._keys, self._counts = [self._keys[0][order]], [self._counts[0][order]]
            return
        if len(self._keys) <= 1:
            return
        keys = np.concatenate(self._keys)
        if not keys.size:
            self._keys, self._counts = [], []
            return
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], np.concatenate(self._counts).astype(np.int64)[order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self._keys, self._counts = [keys[first]], [np.add.reduceat(counts, first)]

    def _sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sparse keys, sorted: their values and counts, and each cell's first key
        (ncells + 1 positions)."""
        self._compact_keys()
        keys = self._keys[0] if self._keys else np.empty(0, np.int64)
        counts = self._counts[0] if self._counts else np.empty(0, np.int64)
        first = np.searchsorted(keys >> 32, np.arange(self.shape[0] * self.shape[1] + 1))
        return keys & 0xFFFFFFFF, counts.astype(np.int64), first

    def _settle(self) -> None:
        """Move sparse keys whose values fit the dense table into it, so that every sparse
        value of a cell is larger than all its dense ones."""
        self._compact_keys()
        if not self._keys:
            return
        keys, counts = self._keys[0], self._counts[0]
        value = keys & 0xFFFFFFFF
        fits = value < self._dense.shape[0]
        if fits.any():                     # keys are unique: plain fancy-index add
            self._dense[value[fits], keys[fits] >> 32] += counts[fits].astype(np.int32)
            self._keys, self._counts = [keys[~fits]], [counts[~fits]]

    def _moments(self, keys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per cell of the sorted sparse ``keys`` (:meth:`_sorted`): number of values,
        their sum and their sum of squares (int64)."""
        value, counts, first = keys

        def per_cell(x):
            cum = np.concatenate([[0], np.cumsum(x, dtype=np.int64)])
            return cum[first[1:]] - cum[first[:-1]]

        return per_cell(counts), per_cell(counts * value), per_cell(counts * value * value)

    def _exact_sumsq(self, keys, n: np.ndarray, sumsq: np.ndarray) -> np.ndarray:
        """``sumsq`` (int64, per cell), with the cells whose sum of squares may exceed
        int64 (n × largest value² ≥ 2⁶²: bin sums near 2³¹, or a tall table for few
        cells) summed again in Python integers: an object array then."""
        value, counts, first = keys
        top = np.full(n.size, max(self._dense.shape[0] - 1, 0), np.float64)
        has = np.flatnonzero(first[1:] > first[:-1])
        top[has] = np.maximum(top[has], value[first[1:][has] - 1])   # keys sorted by value
        risky = np.flatnonzero(n * top * top >= 2.0 ** 62)
        if not risky.size:
            return sumsq
        exact = sumsq.astype(object)
        for c in risky.tolist():
            rows = np.flatnonzero(self._dense[:, c])
            exact[c] = sum(int(x) * v * v for x, v in zip(self._dense[rows, c].tolist(),
                                                          rows.tolist(), strict=True)) + \
                sum(int(x) * v * v for x, v in zip(counts[first[c]:first[c + 1]].tolist(),
                                                   value[first[c]:first[c + 1]].tolist(),
                                                   strict=True))
        return exact

    @staticmethod
    def _ranked(keys, cells: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """The sparse value of rank ``ranks`` (from 0, in increasing order) in each of
        ``cells`` (flat cell numbers) of the sorted ``keys``."""
        value, counts, first = keys
        cum = np.cumsum(counts)
        before = np.where(first[cells] > 0, cum[first[cells] - 1], 0)
        return value[np.searchsorted(cum, before + ranks, side="right")]

    def columns(self, offsets: Sequence[int], channels: Sequence[str], factor: float
                ) -> dict[str, np.ndarray]:
        """The wide profile's columns, read off the histogram.

        Parameters
        ----------
        offsets, channels
            The bins' labels and the channels' names.
        factor
            Multiplies the mean, median, std and sem (normalisation).

        Returns
        -------
        dict
            See :func:`profile_columns`.
        """
        ncells = self.shape[0] * self.shape[1]
        if self._dense is None:
            self._dense = np.zeros((0, ncells), np.int32)
        self._settle()
        keys = self._sorted()
        sparse_n, sparse_sum, sparse_sq = self._moments(keys)
        n, total, sumsq, lo, hi = kernels.dense_stats(self._dense, sparse_n)
        # the middle values beyond the dense table are sparse ones
        for mid, rank in ((lo, (n + sparse_n - 1) // 2), (hi, (n + sparse_n) // 2)):
            cells = np.flatnonzero((mid < 0) & (n + sparse_n > 0))
            mid[cells] = self._ranked(keys, cells, rank[cells] - n[cells])
        n, total = n + sparse_n, total + sparse_sum
        sumsq = self._exact_sumsq(keys, n, sumsq + sparse_sq)
        n, total, sumsq, lo, hi = (a.reshape(self.shape) for a in (n, total, sumsq, lo, hi))
        median = np.where(n > 0, (lo.astype(np.float64) + hi) / 2, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / n
            var = np.full(self.shape, np.nan)
            for idx in zip(*np.nonzero(n > 1), strict=True):
                k, s, q = int(n[idx]), int(total[idx]), int(sumsq[idx])
                var[idx] = (k * q - s * s) / (k * (k - 1))   # exact integers, one rounding
            std = np.sqrt(var)
            sem = std / np.sqrt(n)
        return profile_columns(mean, median, std, sem, n, offsets, channels, factor)


def _dense_keys(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dense histogram (value × cell) as unique (cell << 32 | value) keys and counts."""
    value, cell = np.nonzero(dense)
    return (cell.astype(np.int64) << 32) | value, dense[value, cell].astype(np.int64)


def profile_columns(mean, median, std, sem, n, offsets: Sequence[int],
                    channels: Sequence[str], factor: float) -> dict[str, np.ndarray]:
    """The wide profile table's columns.

    Parameters
    ----------
    mean, median, std, sem, n
        Statistics per channel and bin (channels × bins).
    offsets, channels
        The bins' labels and the channels' names.
    factor
        Multiplies the mean, median, std and sem.

    Returns
    -------
    dict
        ``offset``, then per channel ``<channel>_mean``, ``_median``, ``_std``, ``_sem``
        (scaled) and ``_n``.
    """
    cols = {"offset": np.asarray(offsets, dtype=np.int64)}
    for c, name in enumerate(channels):
        cols[f"{name}_mean"] = mean[c] * factor
        cols[f"{name}_median"] = median[c] * factor
        cols[f"{name}_std"] = std[c] * factor
        cols[f"{name}_sem"] = sem[c] * factor
        cols[f"{name}_n"] = n[c]
    return cols


def nan_statistics(values: np.ndarray, n: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Statistics over regions of float values with gaps: two-pass variance, ddof = 1.

    Parameters
    ----------
    values
        Regions first (regions × …); NaN where a region has no value.
    n
        Values per cell (default: the non-NaN ones).

    Returns
    -------
    tuple of numpy.ndarray
        ``mean, median, std, sem, n`` over axis 0; NaN where no region (std and sem: fewer
        than two) has a value.
    """
    v = values
    if n is None:
        n = np.sum(~np.isnan(v), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN bins give NaN
        mean = np.where(n > 0, np.nansum(v, axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(np.isnan(v), 0.0, v - mean)
        var = np.where(n > 1, np.sum(dev * dev, axis=0) / np.maximum(n - 1, 1), np.nan)
        median = np.nanmedian(v, axis=0) if len(v) else np.full(n.shape, np.nan)
        std = np.sqrt(var)
        sem = std / np.sqrt(n)
    return mean, median, std, sem, n


def matrix_columns(values: np.ndarray, valid: np.ndarray, offsets: Sequence[int],
                   channels: Sequence[str], factor: float) -> dict[str, np.ndarray]:
    """The columns of :meth:`ProfileStats.columns` for float values (scale-regions),
    computed over the regions of the whole matrix (all rows, in input order), so the same
    matrix gives the same bits whatever the chunking.

    Parameters
    ----------
    values
        Per-bin values (regions × channels × bins).
    valid
        Which bins hold a value (regions × bins).
    offsets, channels, factor
        As for :func:`profile_columns`.

    Returns
    -------
    dict
        See :func:`profile_columns`.
    """
    v = np.where(valid[:, None, :], values, np.nan)
    n = np.broadcast_to(valid.sum(axis=0), v.shape[1:])
    return profile_columns(*nan_statistics(v, n), offsets, channels, factor)
