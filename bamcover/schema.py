"""The names bamcover's tables and files share, defined once.

Region status codes, the columns and index levels of profiles and matrices, the units
values are in, the choices of :class:`~bamcover.options.Options`, file suffix rules, and
:func:`label_from_path`, the one rule that turns a file name into a sample or group label.
"""

from __future__ import annotations

import os
from pathlib import Path

# --- region status ------------------------------------------------------------------------

STATUS_OK = "ok"
STATUS_CLIPPED = "clipped"               # part of the window lies beyond a chromosome end
STATUS_OFF = "off_chromosome"            # nothing of the window lies on the chromosome
STATUS_UNKNOWN = "unknown_chromosome"    # chromosome absent from the BAM header
STATUS_MISSING = "missing"               # its cluster chunk failed (permissive collect)
STATUS_EMPTY = "empty_region"            # scale-regions: start == end, the body bins are NaN
#: statuses of regions whose windows touch a chromosome of the BAM (they are counted)
COMPUTABLE_STATUS = (STATUS_OK, STATUS_CLIPPED, STATUS_EMPTY)
#: statuses of regions without any data (left out of deepTools matrices)
MISSING_STATUS = (STATUS_OFF, STATUS_UNKNOWN)

# --- tables ---------------------------------------------------------------------------------

#: a region's coordinates, as matrix index levels and table columns
REGION_COLUMNS = ("chrom", "start", "end", "name", "strand")
#: statistics of a profile, per channel and bin
STATS = ("mean", "median", "std", "sem", "n")
PROFILE_COLUMNS = ["sample", "group", "channel", "offset", *STATS]
MATRIX_INDEX = ["region", *REGION_COLUMNS, "status", "channel"]
MATRIX_FILE_COLUMNS = [*REGION_COLUMNS, "channel", "status"]
TIDY_MATRIX_COLUMNS = ["sample", "group", "region", *REGION_COLUMNS, "status", "channel",
                       "offset", "value"]
#: text columns of any table bamcover writes (read back as strings)
TEXT_COLUMNS = ("sample", "group", "chrom", "name", "strand", "channel", "status")
#: the group label of a single region set
DEFAULT_GROUP = "regions"

# --- attrs and units --------------------------------------------------------------------------

#: attrs key of scale-regions tables: the scaled body's length (their bins hold per-base
#: means, not sums; offsets 0 … body_length are the body)
BODY = "body_length"
#: attrs key of control runs: ``{sample: control label}``
CONTROLS = "controls"
#: ``units`` of control runs (``--control``): log2((sample + p) / (control + p)), sample − control
LOG2_RATIO, DIFFERENCE = "log2 ratio", "difference"
CONTROL_UNITS = (LOG2_RATIO, DIFFERENCE)
#: ``units`` of normalised values, by ``normalize``
NORMALIZED_UNITS = {"none": "reads", "cpm": "CPM", "rpkm": "RPKM"}
#: ``units`` of raw counts, and of tables whose attrs do not say
READS = NORMALIZED_UNITS["none"]

# --- choices of Options -------------------------------------------------------------------------

REFERENCE_POINTS = ("start", "end", "center", "summit")
NORMALIZATIONS = tuple(NORMALIZED_UNITS)
OPERATIONS = ("log2", "subtract")

# --- choices of figures -----------------------------------------------------------------------

FIGURE_FORMATS = ("png", "pdf", "svg")
#: a profile's shaded band: mean ± s.e.m., or a bootstrap 95 % CI (None: no band)
BANDS = ("sem", "ci95")
#: heatmap row orders: mean coverage, input order, k-means clusters
SORTS = ("mean", "keep", "kmeans")
#: the units a plot can be told its values have
PLOT_UNITS = (READS, NORMALIZED_UNITS["cpm"], LOG2_RATIO, DIFFERENCE)

# --- file names -----------------------------------------------------------------------------

#: extensions a BAM or region file loses in its label (after ``.gz``; any case)
INPUT_EXTENSIONS = frozenset({"bam", "bed", "narrowpeak", "broadpeak", "bedgraph", "txt",
                              "tsv"})
#: suffixes a table file loses in its label, removed in this order
TABLE_SUFFIXES = (".gz", ".parquet", ".tsv", ".csv", ".txt", ".tab", ".mat")
BAM_SUFFIX = ".bam"
#: an index may sit beside a BAM under any of these names (htslib's own search order)
INDEX_SUFFIXES = (".bai", ".csi")
DEEPTOOLS_SUFFIX = ".mat.gz"
CDT_SUFFIX = ".cdt"
PARQUET_SUFFIX = ".parquet"
GZ_SUFFIX = ".gz"


def separator(path: str) -> str:
    """The field separator of a text table: ``,`` for ``.csv`` (gzipped or not), else a
    tab.

    Parameters
    ----------
    path
        The table's file name.

    Returns
    -------
    str
        ``","`` or ``"\\t"``.
    """
    return "," if path.removesuffix(GZ_SUFFIX).endswith(".csv") else "\t"


def label_from_path(path: str | os.PathLike, table: bool = False) -> str:
    """A sample or group label from a file name.

    Parameters
    ----------
    path
        A file path (its directory is dropped).
    table
        False for an input (BAM or region file): ``.gz`` and then one known extension
        (:data:`INPUT_EXTENSIONS`, any case) are dropped. True for a table bamcover
        wrote: each of :data:`TABLE_SUFFIXES` is dropped in turn.

    Returns
    -------
    str
        The label: ``chip.bam`` → ``chip``, ``peaks.narrowPeak.gz`` → ``peaks``,
        ``profile.tsv.gz`` (table) → ``profile``.
    """
    if table:
        name = Path(path).name
        for suffix in TABLE_SUFFIXES:
            name = name.removesuffix(suffix)
        return name
    name = os.path.basename(os.fspath(path)).removesuffix(GZ_SUFFIX)
    stem, dot, ext = name.rpartition(".")
    return stem if dot and ext.lower() in INPUT_EXTENSIONS else name
