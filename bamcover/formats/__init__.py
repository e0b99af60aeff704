"""Tables in and out: tidy profiles and matrices, deepTools matrices, CDT, and ``load``.

The data model shared by the API, the plots and the files is described in
:mod:`bamcover.formats.tables`. Optional ``DataFrame.attrs``: ``units`` (``"reads"``,
``"CPM"``, ``"log2 ratio"`` or ``"difference"`` for control runs, or ``"signal"`` when the
unit is unknown, e.g. a deepTools matrix from a bigWig), ``reference_point`` and, for
control runs, ``controls`` (``{sample: control label}``). They are kept in parquet files
and in the deepTools matrix header; TSV files lose them, and :func:`load` reads them back
from the provenance record beside the file.
"""

from __future__ import annotations

from .._lazy import pd
from ..errors import BamcoverError
from ..matrices import Cube, Matrices, as_matrices, bin_size_of, cube, matrix_from_cube
from ..options import Options
from ..outputs import write_table
from ..schema import (
    BODY,
    CDT_SUFFIX,
    CONTROL_UNITS,
    CONTROLS,
    DEEPTOOLS_SUFFIX,
    DIFFERENCE,
    GZ_SUFFIX,
    LOG2_RATIO,
    MATRIX_FILE_COLUMNS,
    MATRIX_INDEX,
    PROFILE_COLUMNS,
    STATS,
    TIDY_MATRIX_COLUMNS,
)
from .cdt import read_cdt, write_cdt
from .deeptools import (
    DEEPTOOLS_REF_POINT,
    aligned_cubes,
    read_deeptools_matrix,
    write_deeptools_matrix,
)
from .load import Loaded, combine, load
from .tables import (
    body_length_of,
    matrices_from_tidy,
    matrix_from_table,
    matrix_table,
    profile_from_matrices,
    summed,
    tidy_matrix,
    tidy_profile,
    units_of,
)

__all__ = [
    "BODY", "CONTROLS", "CONTROL_UNITS", "Cube", "DEEPTOOLS_REF_POINT", "DIFFERENCE",
    "LOG2_RATIO", "Loaded", "MATRIX_FILE_COLUMNS", "MATRIX_INDEX", "Matrices",
    "PROFILE_COLUMNS", "STATS", "TIDY_MATRIX_COLUMNS", "aligned_cubes", "as_matrices",
    "bin_size_of", "body_length_of", "check_matrix_target", "combine", "cube", "load",
    "matrices_from_tidy", "matrix_from_cube", "matrix_from_table", "matrix_table",
    "profile_from_matrices", "read_cdt", "read_deeptools_matrix", "summed", "tidy_matrix",
    "tidy_profile", "units_of", "write_cdt", "write_deeptools_matrix", "write_matrices",
]


def _is_cdt(path: str) -> bool:
    return path.removesuffix(GZ_SUFFIX).endswith(CDT_SUFFIX)


def check_matrix_target(path: str | None, n_matrices: int) -> None:
    """Refuse, before any work, a matrix format that cannot hold this run.

    Parameters
    ----------
    path
        The matrix file (None: no matrix is written).
    n_matrices
        How many matrices (samples × region groups) the run makes.

    Raises
    ------
    BamcoverError
        For a CDT of more than one matrix.
    """
    if path and _is_cdt(path) and n_matrices != 1:
        raise BamcoverError(f"{path}: a CDT holds one matrix; run one BAM and one region "
                            "file, or write .tsv/.parquet")


def write_matrices(matrices: Matrices, path: str | None, options: Options,
                   long_path: str | None = None, scores: dict | None = None) -> None:
    """Write matrices in the format their file's suffix names.

    Parameters
    ----------
    matrices
        ``{(sample, group): matrix}``.
    path
        ``.mat.gz``: deepTools computeMatrix format; ``.cdt`` (``.cdt.gz``): JavaTreeView
        (one matrix); else a flat table (``sample group`` columns first when there are
        several). None: no matrix file.
    options
        The run's options (reference point, processes for formatting on threads).
    long_path
        Also the tidy long table (:func:`tidy_matrix`) here.
    scores
        The BED scores of each group's regions, for a deepTools matrix's score column.
    """
    if path:
        check_matrix_target(path, len(matrices))
        if path.endswith(DEEPTOOLS_SUFFIX):
            write_deeptools_matrix(matrices, path, reference_point=options.reference_point,
                                   threads=options.n_processes, scores=scores)
        elif _is_cdt(path):
            write_cdt(next(iter(matrices.values())), path)
        elif len(matrices) == 1:
            write_table(matrix_table(next(iter(matrices.values()))), path,
                        threads=options.n_processes)
        else:
            flat = pd.concat([matrix_table(m).assign(sample=s, group=g)
                              for (s, g), m in matrices.items()], ignore_index=True)
            first = ["sample", "group"]
            write_table(flat[first + [c for c in flat.columns if c not in first]], path)
    if long_path:
        write_table(tidy_matrix(matrices), long_path)
