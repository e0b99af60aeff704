"""``bamcover profile``: coverage around regions, as a profile and matrices."""

from __future__ import annotations

import logging

import click

from ..errors import BamcoverError
from ..outputs import check_outputs, write_table
from ..profiles import compute
from ..reads import open_bam
from ..regions import read_regions, region_columns
from ..samples import coverage
from ..schema import NORMALIZATIONS, OPERATIONS, REFERENCE_POINTS, label_from_path
from .common import (
    absolute,
    handle_errors,
    job_backend,
    log,
    options_from,
    read_options,
    record,
    slurm_options,
    split_list,
)
from .tasks import finish_task
from .writing import write_profile


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(),
                metavar="REGIONS... BAM...")
@click.option("--output", "-o", default="-", show_default=True,
              help="Profile table (.tsv, .csv, .gz, .parquet); '-' is stdout.")
@click.option("--matrix", "matrix_path", default=None,
              help="Also write the per-region matrix: .tsv, .gz, .parquet, .mat.gz (deepTools "
                   "computeMatrix format) or .cdt (JavaTreeView).")
@click.option("--long", "long_path", default=None,
              help="Also write the matrix as a tidy long table (.tsv, .gz, .parquet): one row "
                   "per region x sample x channel x bin.")
@click.option("--reference-point", type=click.Choice(REFERENCE_POINTS),
              default="center", show_default=True,
              help="Offset 0 of each window: the region's 5' start or 3' end (by its "
                   "strand), its center, or the narrowPeak summit (column 10).")
@click.option("--upstream", "-u", type=int, default=2000, show_default=True,
              help="Bases before the reference point (5' of the region's strand); rounded "
                   "up to a multiple of --bin-size.")
@click.option("--downstream", "-d", type=int, default=2000, show_default=True,
              help="Bases from the reference point on (3'); rounded up to a multiple of "
                   "--bin-size.")
@click.option("--bin-size", "-b", type=int, default=1, show_default=True,
              help="Bases summed per bin; bins are labelled by their first offset.")
@click.option("--no-orient", is_flag=True,
              help="Genomic offsets for '-' regions too (default: read 5'→3').")
@click.option("--scale-regions", is_flag=True,
              help="Scale each region's body to --body-length (deepTools scale-regions), "
                   "with unscaled --upstream/--downstream flanks; every bin is the mean "
                   "per-base coverage. --reference-point is ignored.")
@click.option("--body-length", type=int, default=1000, show_default=True,
              help="With --scale-regions: bases the body is scaled to (a multiple of "
                   "--bin-size).")
@click.option("--normalize", type=click.Choice(NORMALIZATIONS), default="none",
              show_default=True, help="Per million reads passing the filters (rpkm: also per "
                                      "kb of bin).")
@click.option("--scale-factor", type=float, default=1.0, show_default=True,
              help="Multiply every value after normalisation (e.g. a spike-in factor).")
@click.option("--labels", default=None, help="Comma-separated sample labels [BAM stems].")
@click.option("--group-labels", default=None,
              help="Comma-separated region group labels [region file stems].")
@click.option("--control", default=None,
              help="Control BAM (or comma-separated, one per sample): values become "
                   "--operation of sample and control, both normalised.")
@click.option("--operation", type=click.Choice(OPERATIONS), default="log2",
              show_default=True,
              help="With --control: log2((sample + p) / (control + p)) or sample - control.")
@click.option("--pseudocount", type=float, default=1.0, show_default=True,
              help="p of --operation log2, added to both after normalisation.")
@read_options
@slurm_options
@handle_errors
def profile(inputs, output, matrix_path, long_path, reference_point, upstream, downstream,
            bin_size, no_orient, normalize, scale_factor, labels, group_labels, control,
            operation, pseudocount, quiet, slurm, jobs, workdir, no_wait, **params):
    """Coverage around each region of the REGIONS files (BED/narrowPeak; several files are
    region groups) in each BAM (several are samples): the average profile, and with
    --matrix the per-region matrix. One region file and one BAM give the wide profile
    (offset, <channel>_mean, ...); more give the tidy table (sample, group, channel,
    offset, mean, ...)."""
    executor = job_backend(params, slurm)
    options = options_from(params, reference_point=reference_point, upstream=upstream,
                       downstream=downstream, bin_size=bin_size, orient=not no_orient,
                       normalize=normalize, scale_factor=scale_factor, operation=operation,
                       pseudocount=pseudocount, scale_regions=params["scale_regions"],
                       body_length=params["body_length"])
    options.warn_rounding()
    bams = [p for p in inputs if p.lower().endswith(".bam")]
    region_files = [p for p in inputs if not p.lower().endswith(".bam")]
    check_outputs({"-o": output, "--matrix": matrix_path, "--long": long_path},
                  [*inputs, *(split_list(control) or [])])
    if quiet:
        log.setLevel(logging.WARNING)
    if not bams or not region_files:
        raise BamcoverError("give at least one region file and one BAM (files ending in .bam)")
    if matrix_path:
        from ..formats import check_matrix_target  # formats only when a matrix is written

        check_matrix_target(matrix_path, len(bams) * len(region_files))
    if len(bams) > 1 or len(region_files) > 1 or control:
        if slurm:
            raise BamcoverError("--slurm runs one region file and one BAM per task; "
                                "submit one task per sample")
        profile_many(region_files, bams, options, output, matrix_path, long_path, labels,
                      group_labels, control, quiet)
        return
    regs = region_columns(region_files[0])
    bam_ = open_bam(bams[0])
    if slurm:
        outputs = {"output": absolute(output), "matrix": absolute(matrix_path),
                   "long": absolute(long_path)}
        from .. import coverage_tasks

        task = coverage_tasks.submit_profile(
            read_regions(regs), bam_, options, executor=executor, jobs=jobs,
            with_matrix=bool(matrix_path or long_path), workdir=workdir, outputs=outputs,
            group=label_from_path(region_files[0]), region_file=region_files[0])
        finish_task(task, no_wait, quiet, permissive=False, outputs=outputs)
        return
    result = compute(regs, bam_, options, with_matrix=bool(matrix_path or long_path),
                     progress=not quiet)
    write_profile(result, regs, bam_, output, matrix_path, options, long_path,
                   key=(label_from_path(bam_.path), label_from_path(region_files[0])))
    record([output, matrix_path, long_path], [*region_files, bam_.path, bam_.index], options,
            {bam_.name: result.library_size})


def profile_many(region_files, bams, options, output, matrix_path, long_path, labels,
                 group_labels, control, quiet) -> None:
    """Several region files (groups), BAMs (samples) or a control: the tidy profile."""
    controls = split_list(control)
    samples = split_list(labels) or [label_from_path(b) for b in bams]
    names = split_list(group_labels) or [label_from_path(f) for f in region_files]
    if len(names) != len(region_files) or len(set(names)) != len(names):
        raise BamcoverError(f"--group-labels: {len(region_files)} distinct labels needed, "
                            f"one per region file; got {names}")
    groups = {g: read_regions(f) for g, f in zip(names, region_files, strict=True)}
    result = coverage(groups, bams, options, labels=samples, control=controls,
                      with_matrix=bool(matrix_path or long_path or controls),
                      progress=not quiet)
    from ..formats import write_matrices

    write_matrices(result.matrices, matrix_path, options, long_path,
                   scores={g: regs["score"] for g, regs in groups.items()})
    write_table(result.profile, output)
    record([output, matrix_path, long_path], [*region_files, *bams, *(controls or [])],
           options, result.library_sizes)
