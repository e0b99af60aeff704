"""Compiled kernels and their numpy fallbacks: every use of ``bamcover._kernel`` outside
reading BAM records goes through here, so no caller asks whether the kernel is there.

A function either dispatches itself (the kernel where it is there, the numpy code
otherwise, with the same bits), or returns None where its caller then does the work
another way, or, for the loops of compiled counting that have no numpy twin at their
level, needs the kernel: callers choose that strategy by :func:`has_compiled_counting`.
Whether the kernel loaded is known only to :mod:`bamcover.reads` (which reads BAM
records with it) and to this module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import reads


def _module():
    """The compiled kernel module, or None (read at each call: a test may set
    ``reads._kernel`` to None to run the fallbacks)."""
    return reads.kernel_module()


def _required():
    """The compiled kernel module, for a loop that has no fallback at its level."""
    kernel = _module()
    if kernel is None:
        raise RuntimeError("needs the compiled kernel (see kernels.has_compiled_counting)")
    return kernel


# --- strategies chosen by whether the kernel is there -----------------------------------

def has_compiled_counting() -> bool:
    """Whether chunks are counted by the compiled one-pass loops (:func:`coverage`,
    :func:`window_sums`, :func:`window_hist`).

    Returns
    -------
    bool
        False where only the numpy counting runs: those three functions then raise.
    """
    return _module() is not None


def has_fast_histograms() -> bool:
    """Whether profile values are counted into dense histogram tables (value × cell),
    which workers may fill in shared memory.

    Returns
    -------
    bool
        False where every value is a sparse key: no table is ever made (and
        :func:`dense_stats` takes only empty ones).
    """
    return _module() is not None


def has_whole_rows() -> bool:
    """Whether :func:`whole_rows` formats numbers (else it always returns None), so a table
    of counts is worth writing in parts by it.

    Returns
    -------
    bool
    """
    return _module() is not None


# --- region files -----------------------------------------------------------------------

def bed_columns(data: bytes) -> tuple[np.ndarray, ...] | None:
    """A plain region file's columns, parsed in one compiled pass.

    Parameters
    ----------
    data
        The file's bytes.

    Returns
    -------
    tuple of numpy.ndarray or None
        The kernel's columns (chrom, start, end, name, score, strand, then the summit: -1
        where a line has none); None when anything is unusual, or without the kernel: the
        caller then parses the text with its checked parser.
    """
    kernel = _module()
    if kernel is None:
        return None
    try:
        return kernel.bed_columns(data)
    except UnicodeDecodeError:          # _clean_bytes ran first, so only when called alone
        return None


# --- reused buffers ---------------------------------------------------------------------

_SCRATCH: dict[tuple[int, str], np.ndarray] = {}


def scratch(slot: int, size: int, dtype=np.uint32) -> np.ndarray:
    """A reusable buffer of ``size`` (fresh pages for every chunk cost more than the
    coverage pass itself)."""
    key = (slot, np.dtype(dtype).str)
    buf = _SCRATCH.get(key)
    if buf is None or buf.size < size:
        buf = _SCRATCH[key] = np.empty(size, dtype=dtype)
    return buf[:size]


def overflow_room(size: int) -> np.ndarray:
    """Room for ``size`` histogram keys that do not fit a dense table (reused: only the
    pages that receive keys are ever touched)."""
    return scratch(2, size, np.int64)


# --- compiled counting (see has_compiled_counting) --------------------------------------

def coverage(s, e, rev, which: int, bstart, bend, base, out: np.ndarray,
             cumulative: bool) -> int:
    """Coverage of the covered intervals ``[s, e)`` on the blocks laid end to end.

    Parameters
    ----------
    s, e, rev
        The records' covered intervals and strands.
    which
        Records counted: -1 all, 0 forward, 1 reverse.
    bstart, bend, base
        The blocks and each block's first slot.
    out
        The per-slot (or ``cumulative``, mod 2³²) coverage, written (uint32).
    cumulative
        Write the cumulative sum (one longer) instead.

    Returns
    -------
    int
        The largest coverage. Needs the kernel (:func:`has_compiled_counting`).
    """
    return _required().coverage(s, e, rev, which, bstart, bend, base, out, cumulative)


def window_sums(cum_a, cum_b, starts, cs, ce, offsets, flip, minus, bin_size: int,
                nbins: int, length: int, values: np.ndarray, valid: np.ndarray) -> int:
    """Per-bin sums of windows from cumulative coverage (``cum_b``: the reverse strand's,
    or None), oriented and sense/antisense by region strand, written into ``values``
    (n, channels, bins) and ``valid`` (n, bins, uint8).

    Returns
    -------
    int
        The largest sum. Needs the kernel (:func:`has_compiled_counting`).
    """
    return _required().window_sums(cum_a, cum_b, starts, cs, ce, offsets, flip, minus,
                                   bin_size, nbins, length, values, valid)


def window_hist(cov_a, cov_b, starts, offsets, flip, minus, bin_size: int, nbins: int,
                length: int, hist: np.ndarray, over: np.ndarray) -> int:
    """Count every valid bin sum of windows into ``hist[value, channel × bins + bin]``;
    values too large for it go to ``over`` as ``cell << 32 | value`` keys.

    Returns
    -------
    int
        The number of keys written to ``over``. Needs the kernel
        (:func:`has_compiled_counting`).
    """
    return _required().window_hist(cov_a, cov_b, starts, offsets, flip, minus, bin_size,
                                   nbins, length, hist, over)


# --- value histograms -------------------------------------------------------------------

def histogram_keys(values: np.ndarray, valid: np.ndarray, shape: tuple[int, int],
                   table_for: Callable[[int], np.ndarray]) -> np.ndarray:
    """Count regions' integer bin values: into a dense table where the kernel is there,
    else all as sparse keys.

    Parameters
    ----------
    values, valid
        Integer values (n, channels, bins), and which bins count (n, bins).
    shape
        (channels, bins).
    table_for
        ``table_for(top)``: the dense table (int32, values × cells) to count values below
        ``top`` into (see ``ProfileStats.table_for``); called only with the kernel.

    Returns
    -------
    numpy.ndarray
        ``cell << 32 | value`` keys (int64, repeated) of the values not counted into the
        table: those above it, or all of them without the kernel or for values not int32.
    """
    kernel = _module()            # None: the numpy fallback
    if kernel is not None and values.dtype == np.int32:
        top = int(values.max()) + 1 if values.size else 1
        over = overflow_room(values.size)
        n = kernel.accumulate(np.ascontiguousarray(values),
                              np.ascontiguousarray(valid).view(np.uint8),
                              table_for(top), over)
        return over[:n]
    v = values.astype(np.int64)
    cell = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape)
    return ((cell[None] << 32) | v)[np.broadcast_to(valid[:, None, :], v.shape)]


def dense_stats(dense: np.ndarray, sparse_n: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of a dense histogram (values × cells): count, sum, sum of squares and the
    two middle values.

    Parameters
    ----------
    dense
        The table (int32); one with rows exists only with the kernel
        (:func:`has_fast_histograms`).
    sparse_n
        Each cell's number of values beyond the table (all larger than its rows).

    Returns
    -------
    tuple of numpy.ndarray
        ``n, total, sumsq, lo, hi`` (int64, per cell); ``lo``, ``hi`` (the values of rank
        ⌊(N−1)/2⌋ and ⌊N/2⌋ among the cell's N values) are -1 where they lie beyond the
        table. An empty table gives zeros and -1.
    """
    if dense.shape[0]:
        return _required().dense_stats(dense, sparse_n)
    ncells = dense.shape[1]  # no table (always so without the kernel): every value is a key
    n, total, sumsq = (np.zeros(ncells, np.int64) for _ in range(3))
    lo, hi = np.full(ncells, -1, np.int64), np.full(ncells, -1, np.int64)
    return n, total, sumsq, lo, hi


# --- matrices and text ------------------------------------------------------------------

def matrix_rows(data: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a matrix as float64, by the kernel where it can.

    Parameters
    ----------
    data
        A 2-D float array; a matrix in pandas' column layout (``data.T`` contiguous) is
        transposed back by the kernel, 64 rows at a time, rather than by numpy's
        strided gather.
    rows
        Row numbers; negative ones give rows of NaN.

    Returns
    -------
    numpy.ndarray
        ``data[rows]`` (float64, rows × columns).
    """
    kernel = _module()
    rows = np.ascontiguousarray(rows, np.int64)
    if kernel is not None and data.dtype in (np.float32, np.float64) \
            and data.T.flags.c_contiguous:
        out = np.empty((len(rows), data.shape[1]))
        kernel.matrix_rows(data.T, rows, out)
        return out
    out = np.full((len(rows), data.shape[1]), np.nan)
    have = rows >= 0
    out[have] = data[rows[have]]
    return out


# Counts converted per step into the matrix frame: a few MB, so each step's counts can be
# handed back to the system while the rest are converted.
_BLOCK_BYTES = 8 << 20


def matrix_columns(values: np.ndarray, invalid: np.ndarray, factor: float, counts: bool,
                   columns: np.ndarray, threads: int = 1,
                   done: Callable[[int, int], None] | None = None) -> None:
    """Fill ``columns`` (bins × region-channel rows) from ``values`` (regions × channels ×
    bins): with the kernel in blocks of regions on ``threads`` threads (it runs without
    the GIL), else by numpy at once.

    Parameters
    ----------
    values
        Counts (or means), regions × channels × bins.
    invalid
        Bins off the chromosome (regions × bins): NaN in ``columns``.
    factor
        Multiplies the values, unless ``counts``.
    counts
        Copy the values as they are.
    columns
        The output (float32 or float64, bins × regions·channels).
    threads
        Threads for the kernel's blocks.
    done
        ``done(r0, r1)`` after the regions ``[r0, r1)`` are converted (only in
        blocks, with the kernel), so their counts can go back to the system.
    """
    if _module() is None:
        nch, nbins = values.shape[1], values.shape[2]
        flat, data = values.reshape(-1, nbins), columns.T
        if counts:
            data[...] = flat
        else:
            np.multiply(flat, factor, out=data)
        data[np.repeat(invalid, nch, axis=0)] = np.nan
        return
    scale = not counts
    nreg, nch, nbins = values.shape
    flat = np.ascontiguousarray(values.reshape(-1, nbins))
    off = np.ascontiguousarray(invalid).view(np.uint8)
    row_bytes = nch * nbins * flat.itemsize
    per = max(64, _BLOCK_BYTES // max(row_bytes, 1))
    starts = range(0, nreg, per)

    def block(r0: int) -> None:
        r1 = min(r0 + per, nreg)
        _required().matrix_columns(flat[r0 * nch:r1 * nch], off[r0:r1], nch, factor, scale,
                                   columns, r0 * nch)
        if done is not None:
            done(r0, r1)

    threads = max(1, min(threads, len(starts)))
    if threads == 1:
        for r0 in starts:
            block(r0)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(block, starts):
            pass


def whole_rows(head: bytes, values: np.ndarray, nan_as_empty: bool, sep: str
               ) -> bytes | None:
    """Lines of whole numbers after the text of each line of ``head``, compiled.

    Parameters
    ----------
    head
        Lines (each ending in a newline) to write the values after.
    values, nan_as_empty, sep
        The numbers (rows × columns), and how to write them, as for
        :func:`bamcover.text.text_lines`.

    Returns
    -------
    bytes or None
        The lines; None when a value is not a whole number below 10⁹, or without the
        kernel (:func:`has_whole_rows`): the caller then formats them another way.
    """
    kernel = _module()
    if kernel is None:
        return None
    ends = np.flatnonzero(np.frombuffer(head, np.uint8) == 10)
    return kernel.whole_rows(head, ends, np.ascontiguousarray(values, np.float64),
                             nan_as_empty, ord(sep))
