"""Matrices: assembling the per-region matrix and taking it apart again.

Counts arrive in zeroed anonymous mappings (:func:`shared_zeros`) that forked workers
write in place; :func:`matrix_frame` turns them into the DataFrame (rows region ×
channel, index :func:`matrix_index`; one column per bin), block by block, returning each
block's counts to the system. :class:`Cube` is the way back: a matrix as
``values[region, channel, bin]`` and its region table.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from ._lazy import pd
from .errors import BamcoverError
from .kernels import matrix_rows
from .options import Options
from .schema import DEFAULT_GROUP, MATRIX_INDEX, REGION_COLUMNS, STATUS_OK

Matrices = dict[tuple[str, str], "pd.DataFrame"]


def shared_zeros(shape: tuple[int, ...], dtype, shared: bool = True) -> np.ndarray:
    """A zeroed array in its own anonymous mapping, paged in 4 KB as it is written.

    Parameters
    ----------
    shape, dtype
        The array's.
    shared
        Shared: forked workers write their rows of the matrix into it in place, so no
        matrix travels back through a pipe to be copied again. Private: unlike numpy's
        large arrays, never backed by huge pages, which would page in a whole matrix at
        its first writes.

    Returns
    -------
    numpy.ndarray
        Zeros, viewing the mapping.
    """
    count = int(np.prod(shape))
    buf = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1),
                    flags=mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE)
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


def matrix_frame(regions, status: np.ndarray, values: np.ndarray, invalid: np.ndarray,
                 options: Options, factor: float, release: bool = False) -> pd.DataFrame:
    """The matrix as a float DataFrame, built column by column in one conversion, in the
    layout pandas keeps (each bin's column contiguous), so neither pandas nor Arrow
    (parquet) copies it again.

    Parameters
    ----------
    regions, status
        The region table (or dict of columns) and each region's status.
    values
        Counts (or scale-regions means), regions × channels × bins.
    invalid
        Bins off the chromosome (regions × bins): NaN in the frame.
    options
        The run's options (channels, offsets, normalisation).
    factor
        The normalisation factor (see :func:`bamcover.normalisation.factor`).
    release
        ``values`` are this run's own shared counts, not needed after: the counts of each
        converted block go back to the system, so the counts and the frame are never both
        held whole.

    Returns
    -------
    pandas.DataFrame
        One row per region × channel (index :func:`matrix_index`), one column per bin.
    """
    nbins = values.shape[2]
    flat = values.reshape(-1, nbins)
    counts = options.normalize == "none" and options.scale_factor == 1
    # whole counts below 2^24 are exact in float32; anything else is float64
    small = counts and not options.scale_regions and not (values.size and values.max() >= 2 ** 24)
    # private 4 KB pages: the first block writes into every column, and huge pages would
    # then hold the whole frame while all the counts still are
    columns = shared_zeros((nbins, len(flat)), np.float32 if small else np.float64,
                            shared=False)
    kernels.matrix_columns(values, invalid, factor, counts, columns, options.n_processes,
                           _releaser(values, invalid) if release else None)
    data = columns.T
    index = matrix_index(regions, np.asarray(status), options.channels)
    return pd.DataFrame(data, index=index, columns=pd.Index(options.offsets, name="offset"),
                        copy=False)


def _releaser(values: np.ndarray, invalid: np.ndarray):
    """``done(r0, r1)`` for :func:`.kernels.matrix_columns`: where ``values`` and
    ``invalid`` are shared mappings (see :func:`shared_zeros`), the whole pages of
    regions ``[r0, r1)`` of them are removed once converted."""
    nch, nbins = values.shape[1], values.shape[2]
    row_bytes = nch * nbins * values.itemsize
    shared = [(m, size) for m, size in ((_mapping(values), row_bytes),
                                        (_mapping(invalid), nbins))
              if m is not None]

    def done(r0: int, r1: int) -> None:
        for mapping, size in shared:     # only pages wholly inside this block's rows
            _discard(mapping, r0 * size, r1 * size)

    return done


def _mapping(values: np.ndarray) -> mmap.mmap | None:
    """The shared mapping ``values`` views from its first byte (see :func:`shared_zeros`),
    or None."""
    base = values
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    if base is None or len(base) < values.nbytes or not values.flags.c_contiguous:
        return None
    if np.frombuffer(base, np.uint8, count=1).ctypes.data != values.ctypes.data:
        return None
    return base


def _discard(shared: mmap.mmap, start: int, stop: int) -> None:
    """Return the whole pages of ``shared[start:stop]`` to the system (they read as zeros
    after): shared memory is only freed by MADV_REMOVE, not by MADV_DONTNEED."""
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, stop // page * page
    advice = getattr(mmap, "MADV_REMOVE", None)
    if advice is None or last <= first:
        return
    with contextlib.suppress(OSError, ValueError):
        shared.madvise(advice, first, last - first)


def matrix_index(regions, status: np.ndarray, channels: Sequence[str]) -> pd.MultiIndex:
    """The matrix rows: region × channel, with the region's coordinates and status.

    Parameters
    ----------
    regions
        A DataFrame or a dict of columns (``chrom, start, end, name, strand``).
    status
        Each region's status.
    channels
        The channels' names.

    Returns
    -------
    pandas.MultiIndex
        Levels :data:`~bamcover.schema.MATRIX_INDEX`.
    """
    rep = np.repeat(np.arange(len(status)), len(channels))
    return pd.MultiIndex.from_arrays([
        rep,
        *(np.asarray(regions[c])[rep] for c in REGION_COLUMNS),
        np.asarray(status)[rep],
        np.tile(np.array(list(channels), dtype=object), len(status)),
    ], names=MATRIX_INDEX)


# --- the way back: a matrix as arrays ------------------------------------------------------

def bin_size_of(offsets) -> int:
    """The bin size of a matrix's columns.

    Parameters
    ----------
    offsets
        The bin labels (their first offsets).

    Returns
    -------
    int
        The step between them; 1 for a single bin.
    """
    offsets = np.unique(np.asarray(offsets, dtype=np.int64))
    if offsets.size < 2:
        return 1
    steps = np.unique(np.diff(offsets))
    if steps.size != 1:
        raise BamcoverError(f"bin offsets are not evenly spaced (steps {steps.tolist()})")
    return int(steps[0])


@dataclass
class Cube:
    """One matrix as arrays: ``values[region, channel, bin]`` plus the region table. The
    values are read from the matrix when first asked for, or a few regions at a time with
    :meth:`take`."""

    regions: pd.DataFrame          # chrom, start, end, name, strand, status (one row per region)
    channels: list[str]
    offsets: np.ndarray            # bin labels (first offset of each bin)
    rows: np.ndarray               # (regions, channels): the matrix row of each, -1 if none
    matrix: pd.DataFrame = field(repr=False)

    @property
    def bin_size(self) -> int:
        return bin_size_of(self.offsets)

    @functools.cached_property
    def values(self) -> np.ndarray:
        """float64, shape (regions, channels, bins); NaN where the matrix has no row."""
        return self.take(np.arange(len(self.regions)))

    def take(self, regions: np.ndarray) -> np.ndarray:
        """:attr:`values` of some regions only.

        Parameters
        ----------
        regions
            Their numbers.

        Returns
        -------
        numpy.ndarray
            float64 (regions × channels × bins), NaN where the matrix has no row.
        """
        rows = self.rows[regions]
        return matrix_rows(self._data, rows.reshape(-1)).reshape(*rows.shape, -1)

    @functools.cached_property
    def _data(self) -> np.ndarray:
        return self.matrix.to_numpy()     # a view of a one-dtype matrix, not a copy


def cube(matrix: pd.DataFrame) -> Cube:
    """Split a bamcover matrix into arrays.

    Parameters
    ----------
    matrix
        A matrix with index levels ``region … channel`` (``region``, ``name``, ``strand`` and
        ``status`` may be missing).

    Returns
    -------
    Cube
    """
    index = matrix.index
    names = list(index.names)
    missing = [n for n in ("chrom", "start", "end", "channel") if n not in names]
    if missing:
        raise BamcoverError(f"not a bamcover matrix: index levels {missing} missing "
                            f"(expected {MATRIX_INDEX})")
    chan = index.get_level_values("channel").astype(str)
    channels = list(dict.fromkeys(chan))
    ch_code = pd.Index(channels).get_indexer(chan)
    if "region" in names:
        reg_code, _ = pd.factorize(index.get_level_values("region"), sort=False)
    else:
        reg_code = np.arange(len(matrix)) // len(channels)
    nreg = int(reg_code.max()) + 1 if len(reg_code) else 0
    offsets = np.asarray(matrix.columns, dtype=np.int64)
    rows = np.full((nreg, len(channels)), -1, dtype=np.int64)
    rows[reg_code, ch_code] = np.arange(len(matrix))
    first = np.unique(reg_code, return_index=True)[1]
    flat = index.to_frame(index=False).iloc[first]
    regions = pd.DataFrame({
        "chrom": flat["chrom"].astype(str).to_numpy(),
        "start": flat["start"].astype(np.int64).to_numpy(),
        "end": flat["end"].astype(np.int64).to_numpy(),
        "name": flat["name"].astype(str).to_numpy() if "name" in flat else ".",
        "strand": flat["strand"].astype(str).to_numpy() if "strand" in flat else ".",
        "status": flat["status"].astype(str).to_numpy() if "status" in flat else STATUS_OK,
    })
    return Cube(regions, channels, offsets, rows, matrix)


def matrix_from_cube(regions: pd.DataFrame, channels: list[str], offsets, values: np.ndarray,
                     attrs: Mapping | None = None) -> pd.DataFrame:
    """The inverse of :func:`cube`: a matrix in bamcover's layout (rows region × channel).

    Parameters
    ----------
    regions
        One row per region: ``chrom, start, end, name, strand[, status]``.
    channels, offsets
        The channels' names and the bins' labels.
    values
        Values (regions × channels × bins).
    attrs
        The matrix's attrs.

    Returns
    -------
    pandas.DataFrame
    """
    nreg, nch = len(regions), len(channels)
    status = regions["status"].to_numpy() if "status" in regions else np.full(nreg, STATUS_OK)
    index = matrix_index(regions, status, channels)
    out = pd.DataFrame(np.asarray(values, dtype=np.float64).reshape(nreg * nch, -1),
                       index=index,
                       columns=pd.Index([int(o) for o in offsets], name="offset"))
    out.attrs.update(dict(attrs or {}))
    return out


def as_matrices(data, sample: str = "sample", group: str = DEFAULT_GROUP) -> Matrices:
    """A matrix or a dict of them as ``{(sample, group): matrix}``.

    Parameters
    ----------
    data
        One matrix, or a dict keyed by ``(sample, group)`` or by sample.
    sample, group
        The labels of a single matrix, and the group of a dict keyed by sample.

    Returns
    -------
    dict
        ``{(sample, group): matrix}``.
    """
    if isinstance(data, pd.DataFrame):
        return {(sample, group): data}
    if isinstance(data, Mapping):
        out = {}
        for key, mat in data.items():
            key = key if isinstance(key, tuple) else (str(key), group)
            if len(key) != 2:
                raise BamcoverError(f"matrix keys must be (sample, group), not {key!r}")
            out[(str(key[0]), str(key[1]))] = mat
        return out
    raise BamcoverError(f"expected a matrix DataFrame or a dict of them, not {type(data)}")
