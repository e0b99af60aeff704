"""Normalisation: the factor values are multiplied by, the units they are then in, and the
comparison of a sample with its control."""

from __future__ import annotations

import numpy as np

from .errors import BamcoverError
from .options import Options
from .reads import Bam, library_size
from .schema import DIFFERENCE, LOG2_RATIO, NORMALIZED_UNITS


def factor(bam: Bam, options: Options, size: int | None = None
            ) -> tuple[float, int | None]:
    """The normalisation factor (× ``scale_factor``) and the library size it used.

    Parameters
    ----------
    bam
        The sample's BAM (its library size is counted unless ``size`` is given).
    options
        ``normalize``, ``scale_factor``, ``bin_size`` and the read filters.
    size
        The library size, when already counted (e.g. by a cluster job).

    Returns
    -------
    tuple
        ``(factor, library size)``; the size is None with ``normalize='none'``.
    """
    if options.normalize == "none":
        return options.scale_factor, None
    if size is None:
        size = library_size(bam, options.read_rules())
    if size == 0:
        raise BamcoverError(f"{bam.path}: no reads pass the filters; cannot normalise "
                            f"to {options.normalize.upper()}")
    # rpkm: per kb of the bin's bases; scale-regions values are already per base
    per_kb = 1 if options.scale_regions else options.bin_size
    per = 1e6 / size if options.normalize == "cpm" else 1e9 / (size * per_kb)
    return per * options.scale_factor, size


def units(options: Options, control: bool = False) -> str:
    """What the values are in, for tables and axis labels.

    Parameters
    ----------
    options
        ``normalize``, ``scale_factor`` and ``operation``.
    control
        Whether the values compare a sample with its control.

    Returns
    -------
    str
        ``reads``, ``CPM``, ``RPKM`` (``× <scale factor>`` when scaled), or for a control
        ``log2 ratio`` or ``difference``.
    """
    if control:
        return LOG2_RATIO if options.operation == "log2" else DIFFERENCE
    unit = NORMALIZED_UNITS[options.normalize]
    return unit if options.scale_factor == 1 else f"{unit} × {options.scale_factor:g}"


def versus_control(sample: np.ndarray, control: np.ndarray, library: int,
                   options: Options) -> np.ndarray:
    """A sample's values against its control's.

    Parameters
    ----------
    sample, control
        Their values normalised by ``normalize`` (CPM for ``'none'``), bin by bin.
    library
        The sample's library size: with ``normalize='none'`` both become CPM × library /
        10⁶, the sample's reads (the control scaled to the sample's library).
    options
        ``normalize``, ``scale_factor``, ``operation`` and ``pseudocount``.

    Returns
    -------
    numpy.ndarray
        ``log2((sample + p) / (control + p))`` or ``sample − control``.
    """
    a, b = sample, control
    if options.normalize == "none":     # CPM × sample library / 10⁶: the sample's reads
        a, b = a * library / 1e6, b * library / 1e6
    a, b = a * options.scale_factor, b * options.scale_factor
    p = options.pseudocount
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2((a + p) / (b + p)) if options.operation == "log2" else a - b
