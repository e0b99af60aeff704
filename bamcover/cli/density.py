"""``bamcover density``: reads per region in each BAM, with CPM and RPKM."""

from __future__ import annotations

import logging

import click

from ..densities import density
from ..outputs import check_outputs, write_table
from ..reads import open_bam
from ..regions import read_regions
from ..schema import label_from_path
from .common import (
    absolute,
    handle_errors,
    job_backend,
    log,
    options_from,
    read_options,
    record,
    slurm_options,
    summarise,
)
from .tasks import finish_task


@click.command(name="density")
@click.argument("regions", type=click.Path())
@click.argument("bams", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", default="-", show_default=True,
              help="Table (.tsv, .csv, .gz, .parquet); '-' is stdout.")
@click.option("--labels", default=None, help="Comma-separated sample labels [file stems].")
@read_options
@slurm_options
@handle_errors
def density_cmd(regions, bams, output, labels, quiet, slurm, jobs, workdir, no_wait,
                **params):
    """Reads overlapping each region of REGIONS in each BAM, with CPM and RPKM."""
    executor = job_backend(params, slurm)
    options = options_from(params)
    check_outputs({"-o": output}, [regions, *bams])
    if quiet:
        log.setLevel(logging.WARNING)
    regs = read_regions(regions)
    opened = [open_bam(b) for b in bams]
    names = labels.split(",") if labels else [label_from_path(b.path) for b in opened]
    if slurm:
        outputs = {"output": absolute(output)}
        from .. import coverage_tasks

        task = coverage_tasks.submit_density(regs, opened, options, executor=executor, jobs=jobs,
                                      labels=names, workdir=workdir, outputs=outputs,
                                      region_file=regions)
        finish_task(task, no_wait, quiet, permissive=False, outputs=outputs)
        return
    table = density(regs, opened, options, progress=not quiet, labels=names)
    for bam_, label in zip(opened, names, strict=False):
        summarise(table["status" if len(opened) == 1 else f"{label}_status"], regs["chrom"], bam_)
    write_table(table, output)
    record([output], [regions, *[p for b in opened for p in (b.path, b.index)]], options,
            {n: int(table[f"{n}_library_size"].iat[0]) for n in names})
