"""Writing what a coverage run made (a local run, or a collected task): the profile table
and the matrices by suffix, with the stderr summary of regions that could not be
computed."""

from __future__ import annotations

from ..outputs import write_table
from .common import log, summarise


def write_profile(result, regs, bam_, output, matrix_path, options, long_path=None,
                  key=("sample", "regions")) -> None:
    """``result`` (a :class:`~bamcover.profiles.Result`) to ``output``, its matrix to
    ``matrix_path``/``long_path``; ``key`` is its (sample, group)."""
    summarise(result.codes, regs["chrom"], bam_)
    if result.library_size is not None:
        log.info("library size: %d reads pass the filters in %s", result.library_size, bam_.name)
    if result.matrix is not None:
        from ..formats import write_matrices  # only for a matrix: a profile run skips it

        write_matrices({key: result.matrix}, matrix_path, options, long_path,
                       scores={key[1]: regs["score"]} if "score" in regs else None)
    write_table(result.columns, output or "-", attrs=result.attrs)
