"""The task commands: list, status, wait, collect, cancel, resubmit, clean; and waiting
for and collecting a task that ``profile``/``density --slurm`` submitted."""

from __future__ import annotations

import sys

import click

from .._lazy import pd
from ..errors import BamcoverError
from ..options import DEFAULT_WORKDIR, Options
from ..outputs import check_outputs, write_table
from ..schema import STATUS_MISSING, label_from_path
from .common import find_task, handle_errors, log, record
from .writing import write_profile


def finish_task(task, no_wait: bool, quiet: bool, permissive: bool, outputs: dict) -> None:
    """--no-wait: say where the task is; else wait for it, collect and write outputs."""
    if no_wait:
        click.echo(f"{task.id}\t{task.path}")
        log.info("submitted task %s (%d chunks); 'bamcover status %s' follows it",
                 task.id, task.n_chunks, task.path)
        return
    task.wait(progress=not quiet)
    collect_and_write(task, permissive, outputs)


def collect_and_write(task, permissive: bool, outputs: dict) -> None:
    from .. import coverage_tasks as cluster

    result = cluster.collect(task, permissive=permissive)
    meta = task.manifest["meta"]
    bams = cluster.task_bams(task)           # as submitted: collect never opens a BAM
    if meta["kind"] == "density":
        write_table(result, outputs.get("output") or "-")
        status = result.filter(regex="status$").iloc[:, 0]
        sizes = {n: int(result[f"{n}_library_size"].iat[0]) for n in meta["labels"]}
    else:
        regs = pd.read_parquet(task.path / cluster.REGIONS_FILE)
        write_profile(result, regs, bams[0], outputs.get("output"),
                       outputs.get("matrix"), Options(**meta["options"]), outputs.get("long"),
                       key=(label_from_path(meta["bam"]), meta.get("group", "regions")))
        status = result.status
        sizes = {bams[0].name: result.library_size}
    # the inputs as they were counted (stamped at submission), not as they are now
    record(list(outputs.values()), [], None, sizes, task=task.id,
            task_options=meta.get("options"), inputs=cluster.submitted_inputs(task))
    missing = int((status == STATUS_MISSING).sum())
    if missing:
        log.warning("%d regions are missing (status 'missing'): their chunks have no result",
                    missing)


workdir_option = click.option("--workdir", default=DEFAULT_WORKDIR, show_default=True,
                              help="Where task directories are kept.")
task_argument = click.argument("task")


@click.command(name="tasks")
@workdir_option
@handle_errors
def tasks_cmd(workdir):
    """List tasks with the number of chunks in each state."""
    from ..jobs.lookup import list_tasks

    rows = []
    for task in list_tasks(workdir):
        counts = task.status()["state"].value_counts()
        rows.append({"task": task.id, "kind": task.manifest["meta"].get("kind", "function"),
                     "chunks": task.n_chunks,
                     "states": " ".join(f"{k}:{v}" for k, v in sorted(counts.items())),
                     "path": str(task.path)})
    write_table(pd.DataFrame(rows, columns=["task", "kind", "chunks", "states", "path"]), "-")


@click.command()
@task_argument
@workdir_option
@handle_errors
def status(task, workdir):
    """Per chunk: state, job id, exit code, elapsed, node, log, and the error or log tail."""
    write_table(find_task(task, workdir).status(), "-", index=True)


@click.command()
@task_argument
@workdir_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def wait(task, workdir, quiet):
    """Wait until no chunk is pending or running; exit 1 if any chunk has no result."""
    t = find_task(task, workdir).wait(progress=not quiet)
    failed = t.failed()
    if failed:
        click.echo(f"bamcover: task {t.id}: {len(failed)} chunks without a result; "
                   f"see 'bamcover status {t.id}'", err=True)
        sys.exit(1)


@click.command(name="collect")
@task_argument
@workdir_option
@click.option("--output", "-o", default=None, help="Instead of the path given at submission.")
@click.option("--matrix", "matrix_path", default=None,
              help="Instead of the matrix path given at submission.")
@click.option("--long", "long_path", default=None,
              help="Instead of the tidy long matrix path given at submission.")
@click.option("--permissive", is_flag=True,
              help="Collect an incomplete task; missing regions get status 'missing'.")
@handle_errors
def collect_cmd(task, workdir, output, matrix_path, long_path, permissive):
    """Reduce a finished task into the outputs a local run writes."""
    t = find_task(task, workdir)
    outputs = dict(t.manifest["meta"].get("outputs", {}))
    if output:
        outputs["output"] = output
    for option, path, key in (("--matrix", matrix_path, "matrix"), ("--long", long_path, "long")):
        if path:
            if not t.manifest["meta"].get("with_matrix"):
                raise BamcoverError(f"task {t.id} was submitted without --matrix or --long; "
                                    f"it has no matrix for {option}")
            outputs[key] = path
    from ..coverage_tasks import submitted_inputs

    check_outputs({"-o": outputs.get("output"), "--matrix": outputs.get("matrix"),
                   "--long": outputs.get("long")},
                  [i["path"] for i in submitted_inputs(t)])
    collect_and_write(t, permissive, outputs)


@click.command()
@task_argument
@workdir_option
@handle_errors
def cancel(task, workdir):
    """Cancel every chunk still queued or running."""
    find_task(task, workdir).cancel()


@click.command()
@task_argument
@workdir_option
@handle_errors
def resubmit(task, workdir):
    """Submit again only the failed, cancelled, timed-out or lost chunks."""
    t = find_task(task, workdir)
    again = t.resubmit()
    log.info("task %s: resubmitted %d chunks %s", t.id, len(again), again)


@click.command()
@task_argument
@workdir_option
@handle_errors
def clean(task, workdir):
    """Cancel what still runs and delete the task directory."""
    find_task(task, workdir).clean()
