"""Writing what a coverage run made: the profile table and matrices by suffix, with the
stderr summary of regions that could not be computed (local runs and collected tasks)."""

from __future__ import annotations

from .._lazy import pd
from ..errors import BamcoverError
from ..options import Options
from ..outputs import write_table
from .common import log, summarise


def check_matrix_target(path: str | None, options: Options, n_matrices: int) -> None:
    """Refuse, before any work, a matrix format that cannot hold this run."""
    if not path:
        return
    if path.removesuffix(".gz").endswith(".cdt") and n_matrices != 1:
        raise BamcoverError(f"{path}: a CDT holds one matrix; run one BAM and one region "
                            "file, or write .tsv/.parquet")


def write_matrices(matrices: dict, path: str | None, options: Options,
                   long_path: str | None = None, scores: dict | None = None) -> None:
    """Matrices by suffix: ``.mat.gz`` deepTools computeMatrix format (``scores``: the BED
    scores of each group's regions, for its score column), ``.cdt`` JavaTreeView, else a
    flat table (``sample group`` columns first when there are several); and the tidy long
    table at ``long_path``."""
    from .. import formats

    if path:
        check_matrix_target(path, options, len(matrices))
        if path.endswith(".mat.gz"):
            formats.write_deeptools_matrix(matrices, path,
                                           reference_point=options.reference_point,
                                           threads=options.n_processes, scores=scores)
        elif path.removesuffix(".gz").endswith(".cdt"):
            formats.write_cdt(next(iter(matrices.values())), path)
        elif len(matrices) == 1:
            write_table(formats.matrix_table(next(iter(matrices.values()))), path,
                        threads=options.n_processes)
        else:
            flat = pd.concat([formats.matrix_table(m).assign(sample=s, group=g)
                              for (s, g), m in matrices.items()], ignore_index=True)
            first = ["sample", "group"]
            write_table(flat[first + [c for c in flat.columns if c not in first]], path)
    if long_path:
        write_table(formats.tidy_matrix(matrices), long_path)


def write_profile(result, regs, bam_, output, matrix_path, options, long_path=None,
                   key=("sample", "regions")) -> None:
    summarise(result.codes, regs, bam_)
    if result.library_size is not None:
        log.info("library size: %d reads pass the filters in %s", result.library_size, bam_.name)
    if result.matrix is not None:
        write_matrices({key: result.matrix}, matrix_path, options, long_path,
                       scores={key[1]: regs["score"]} if "score" in regs else None)
    write_table(result.columns, output or "-", attrs=result.attrs)
