"""Command line: parses arguments and calls the API; results to files or stdout, messages
to stderr."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import os
import sys

import click
import numpy as np

from . import __version__
from ._lazy import pd
from .errors import BamcoverError
from .options import DEFAULT_FLAG_EXCLUDE, DEFAULT_WORKDIR, TN5_SHIFT, Options, parse_flag
from .outputs import (
    PROVENANCE_SUFFIX,
    all_or_nothing,
    check_outputs,
    provenance,
    write_provenance,
    write_table,
)
from .profiles import STATUS_MISSING, STATUS_OFF, STATUS_UNKNOWN, _stem, compute, coverage, density
from .reads import open_bam
from .regions import read_regions, region_columns

log = logging.getLogger("bamcover")


class FragmentSize(click.ParamType):
    name = "F|read"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) or str(value).lower() == "read":
            return None if value is None or str(value).lower() == "read" else value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither an integer nor 'read'", param, ctx)


class _OneLineError(click.ClickException):
    """A bad option value found while parsing: one 'bamcover: error:' line, exit 2 (as
    every other bad input), not click's usage block."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"bamcover: error: {self.message}", err=True)


class SamFlag(click.ParamType):
    """A SAM flag: decimal, 0x hex or 0 octal, as samtools -f/-F read it."""

    name = "FLAG"

    def convert(self, value, param, ctx):
        try:
            return parse_flag(value)
        except ValueError:
            option = param.opts[0] if param is not None else "flag"
            raise _OneLineError(f"{option}: {str(value)!r} is not a flag value "
                                "(decimal, 0x hex or 0 octal)") from None


def read_options(func):
    """Options that decide which reads count and how they cover bases."""
    opts = [
        click.option("--fragment-size", "-f", type=FragmentSize(), default="read",
                     show_default=True,
                     help="Cover F bases from the 5' end in the read's direction "
                          "(1 = 5' ends only), or 'read' for the aligned span."),
        click.option("--shift", type=int, default=None,
                     help="Move 5' ends S bases in the read's direction (negative allowed)."),
        click.option("--shift-reverse", type=int, default=None,
                     help="Shift for reverse reads, if different from --shift."),
        click.option("--tn5", is_flag=True,
                     help=f"Tn5 preset for ATAC/ChIPmentation: --shift {TN5_SHIFT[0]} "
                          f"--shift-reverse {TN5_SHIFT[1]}."),
        click.option("--pairs", is_flag=True,
                     help="A proper pair covers its whole insert, counted once."),
        click.option("--max-fragment-length", type=int, default=1000, show_default=True,
                     help="Longer pairs are treated as single reads with --pairs."),
        click.option("--strand-wise", is_flag=True,
                     help="Two channels, sense and antisense to the region's strand."),
        click.option("--min-mapq", type=int, default=0, show_default=True,
                     help="Skip reads with mapping quality below Q."),
        click.option("--ignore-duplicates", is_flag=True, help="Skip reads flagged 0x400."),
        click.option("--sam-flag-include", type=SamFlag(), default="0", show_default=True,
                     help="Count only reads with all these flag bits."),
        click.option("--sam-flag-exclude", type=SamFlag(), default=hex(DEFAULT_FLAG_EXCLUDE),
                     show_default=True,
                     help="Skip reads with any of these flag bits (replaces the default)."),
        click.option("--processes", "-p", type=int, default=None,
                     help="Worker processes [default: the cores available]."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or notes."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def slurm_options(func):
    """Options that send the work to Slurm as one job array."""
    opts = [
        click.option("--slurm", is_flag=True,
                     help="Run as a Slurm job array (see 'bamcover tasks', 'status', 'collect')."),
        click.option("--jobs", type=click.IntRange(1), default=4, show_default=True,
                     help="Chunks of regions, one array task each."),
        click.option("--cpus-per-job", type=click.IntRange(1), default=1, show_default=True,
                     help="CPUs per array task; its process pool uses them all."),
        click.option("--partition", default=None,
                     help="Slurm partition [the cluster's default]."),
        click.option("--time", "time_limit", default=None, help="Time limit per array task."),
        click.option("--mem", default=None, help="Memory per array task (e.g. 4G)."),
        click.option("--account", default=None,
                     help="Slurm account to charge [your default]."),
        click.option("--sbatch-arg", multiple=True,
                     help="Extra sbatch argument, verbatim (repeatable)."),
        click.option("--workdir", default=DEFAULT_WORKDIR, show_default=True,
                     help="Where task directories are kept."),
        click.option("--no-wait", is_flag=True,
                     help="Submit, print the task id and path, and return."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _executor(kw: dict, slurm: bool):
    """The SlurmExecutor the options describe, or None for a local run (which takes its
    options out of ``kw`` too, and never imports the job layer)."""
    args = dict(cpus_per_job=kw.pop("cpus_per_job"), partition=kw.pop("partition"),
                time=kw.pop("time_limit"), mem=kw.pop("mem"), account=kw.pop("account"),
                sbatch_args=list(kw.pop("sbatch_arg")))
    if not slurm:
        return None
    from .tasks import SlurmExecutor

    return SlurmExecutor(**args)


def _find(task: str, workdir: str):
    from .tasks import find

    return find(task, workdir)


def _options(kw: dict, **extra) -> Options:
    shift, shift_rev = kw.pop("shift"), kw.pop("shift_reverse")
    if kw.pop("tn5"):
        if shift is not None or shift_rev is not None:
            raise BamcoverError("--tn5 sets the shifts; do not combine it with --shift")
        shift, shift_rev = TN5_SHIFT
    return Options(
        fragment_size=kw.pop("fragment_size"),
        shift=shift or 0,
        shift_reverse=shift_rev,
        pairs=kw.pop("pairs"),
        max_fragment_length=kw.pop("max_fragment_length"),
        strand_wise=kw.pop("strand_wise"),
        min_mapq=kw.pop("min_mapq"),
        ignore_duplicates=kw.pop("ignore_duplicates"),
        flag_include=kw.pop("sam_flag_include"),
        flag_exclude=kw.pop("sam_flag_exclude"),
        processes=kw.pop("processes"),
        **extra,
    )


class Interrupted(BaseException):
    """A signal that stops the run (SIGTERM, SIGHUP): raised in the main thread so that
    workers are stopped and temporaries removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def handle_errors(func):
    """Bad input: one line on stderr and exit status 2. The outputs of the command are
    all-or-nothing (:func:`~bamcover.outputs.all_or_nothing`); a signal exits 128 + its
    number with one line, a closed stdout pipe quietly with 141, as Unix tools do."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import signal

        try:
            with all_or_nothing():
                return func(*args, **kwargs)
        except BrokenPipeError:
            _quiet_stdout()
            sys.exit(128 + signal.SIGPIPE)
        except (Interrupted, KeyboardInterrupt) as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            click.echo(f"bamcover: stopped by {signal.Signals(signum).name}; "
                       "no output written", err=True)
            sys.exit(128 + signum)
        except (BamcoverError, OverflowError, OSError) as exc:
            click.echo(f"bamcover: error: {exc}", err=True)
            sys.exit(2)
    return wrapper


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush on exit does not
    report the closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


class _Ordered(click.Group):
    """Commands listed in the order users reach for them, not alphabetically."""

    order = ("profile", "density", "plot", "tasks", "status", "wait", "collect", "resubmit",
             "cancel", "clean")

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [c for c in self.order if c in self.commands]
        return known + sorted(c for c in self.commands if c not in known)


@click.group(cls=_Ordered, context_settings={"help_option_names": ["-h", "--help"],
                                             "max_content_width": 100})
@click.version_option(__version__, prog_name="bamcover")
def main() -> None:
    """Exact, strand-aware, fragment-extended read coverage from BAM files over BED regions."""
    log.handlers[:] = [_StderrHandler()]
    log.propagate = False
    log.setLevel(logging.INFO)


class _StderrHandler(logging.Handler):
    """Log records as 'bamcover: message' lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"bamcover: {record.getMessage()}", err=True)


def _summarise(status: np.ndarray, regions, bam) -> None:
    """One stderr line per kind of region that could not be computed (``regions`` a
    DataFrame or a dict of columns)."""
    status = np.asarray(status, object)
    unknown = status == STATUS_UNKNOWN
    if unknown.any():
        chroms = list(dict.fromkeys(np.asarray(regions["chrom"], object)[unknown]))
        hint = ""
        for c in chroms:
            alt = c[3:] if c.startswith("chr") else "chr" + c
            if alt in bam.lengths:
                hint = f"; the BAM uses '{alt}' not '{c}'?"
                break
        log.warning("%d regions on chromosomes absent from %s (e.g. %s%s); their rows are NaN",
                    unknown.sum(), bam.name, chroms[0], hint)
    off = status == STATUS_OFF
    if off.any():
        log.warning("%d regions have windows entirely beyond their chromosome's end; "
                    "their rows are NaN", off.sum())
    empty = status == "empty_region"
    if empty.any():
        log.warning("%d regions have length 0 (start == end); their scaled body bins are NaN",
                    empty.sum())


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
    from . import formats

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


@main.command()
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
@click.option("--reference-point", type=click.Choice(["start", "end", "center", "summit"]),
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
@click.option("--normalize", type=click.Choice(["none", "cpm", "rpkm"]), default="none",
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
@click.option("--operation", type=click.Choice(["log2", "subtract"]), default="log2",
              show_default=True,
              help="With --control: log2((sample + p) / (control + p)) or sample - control.")
@click.option("--pseudocount", type=float, default=1.0, show_default=True,
              help="p of --operation log2, added to both after normalisation.")
@read_options
@slurm_options
@handle_errors
def profile(inputs, output, matrix_path, long_path, reference_point, upstream, downstream,
            bin_size, no_orient, normalize, scale_factor, labels, group_labels, control,
            operation, pseudocount, quiet, slurm, jobs, workdir, no_wait, **kw):
    """Coverage around each region of the REGIONS files (BED/narrowPeak; several files are
    region groups) in each BAM (several are samples): the average profile, and with
    --matrix the per-region matrix. One region file and one BAM give the wide profile
    (offset, <channel>_mean, ...); more give the tidy table (sample, group, channel,
    offset, mean, ...)."""
    executor = _executor(kw, slurm)
    options = _options(kw, reference_point=reference_point, upstream=upstream,
                       downstream=downstream, bin_size=bin_size, orient=not no_orient,
                       normalize=normalize, scale_factor=scale_factor, operation=operation,
                       pseudocount=pseudocount, scale_regions=kw.pop("scale_regions"),
                       body_length=kw.pop("body_length"))
    options.warn_rounding()
    bams = [p for p in inputs if p.lower().endswith(".bam")]
    region_files = [p for p in inputs if not p.lower().endswith(".bam")]
    check_outputs({"-o": output, "--matrix": matrix_path, "--long": long_path},
                  [*inputs, *(_split(control) or [])])
    if quiet:
        log.setLevel(logging.WARNING)
    if not bams or not region_files:
        raise BamcoverError("give at least one region file and one BAM (files ending in .bam)")
    check_matrix_target(matrix_path, options, len(bams) * len(region_files))
    if len(bams) > 1 or len(region_files) > 1 or control:
        if slurm:
            raise BamcoverError("--slurm runs one region file and one BAM per task; "
                                "submit one task per sample")
        _profile_many(region_files, bams, options, output, matrix_path, long_path, labels,
                      group_labels, control, quiet)
        return
    regs = region_columns(region_files[0])
    bam_ = open_bam(bams[0])
    if slurm:
        outputs = {"output": _abs(output), "matrix": _abs(matrix_path), "long": _abs(long_path)}
        from . import cluster

        frame = pd.DataFrame(regs)
        frame.attrs["source"] = regs.source          # errors name the region file
        task = cluster.submit_profile(frame, bam_, options, executor=executor,
                                      jobs=jobs, with_matrix=bool(matrix_path or long_path),
                                      workdir=workdir, outputs=outputs,
                                      group=_stem(region_files[0]),
                                      region_file=region_files[0])
        _finish_task(task, no_wait, quiet, permissive=False, outputs=outputs)
        return
    result = compute(regs, bam_, options, with_matrix=bool(matrix_path or long_path),
                     progress=not quiet)
    _write_profile(result, regs, bam_, output, matrix_path, options, long_path,
                   key=(_stem(bam_.path), _stem(region_files[0])))
    _record([output, matrix_path, long_path], [*region_files, bam_.path, bam_.index], options,
            {bam_.name: result.library_size})


def _record(outputs, inputs, options, library_sizes, /, **extra) -> None:
    """The provenance record beside every file output; ``extra`` keys win (a collected
    task's ``inputs`` are those stamped at submission)."""
    ctx = click.get_current_context(silent=True)
    command = {"argv": sys.argv, "command": ctx.command_path if ctx else None,
               "parameters": dict(ctx.params) if ctx else {}}
    record = provenance(command, [str(p) for p in inputs],
                        dataclasses.asdict(options) if options is not None else None,
                        library_sizes, extra)
    for out in outputs:
        write_provenance(out, record)


def _split(text: str | None) -> list[str] | None:
    return text.split(",") if text else None


def _profile_many(region_files, bams, options, output, matrix_path, long_path, labels,
                  group_labels, control, quiet) -> None:
    controls = _split(control)
    samples = _split(labels) or [os.path.basename(b)[:-4] for b in bams]
    if controls and len(controls) not in (1, len(bams)):
        raise BamcoverError(f"--control gives {len(controls)} BAMs for {len(bams)} samples")
    if controls:
        controls = dict(zip(samples, controls * len(bams) if len(controls) == 1 else controls,
                            strict=False))
    names = _split(group_labels) or [_stem(f) for f in region_files]
    if len(names) != len(region_files) or len(set(names)) != len(names):
        raise BamcoverError(f"--group-labels: {len(region_files)} distinct labels needed, "
                            f"one per region file; got {names}")
    groups = {g: read_regions(f) for g, f in zip(names, region_files, strict=True)}
    result = coverage(groups, bams, options, labels=samples, control=controls,
                      with_matrix=bool(matrix_path or long_path or controls),
                      progress=not quiet)
    write_matrices(result.matrices, matrix_path, options, long_path,
                   scores={g: regs["score"] for g, regs in groups.items()})
    write_table(result.profile, output)
    ctrl = list(controls.values()) if controls else []
    _record([output, matrix_path, long_path], [*region_files, *bams, *ctrl], options,
            result.library_sizes)


def _abs(path):
    return None if path is None or path == "-" else os.path.abspath(path)


def _write_profile(result, regs, bam_, output, matrix_path, options, long_path=None,
                   key=("sample", "regions")) -> None:
    _summarise(result.codes, regs, bam_)
    if result.library_size is not None:
        log.info("library size: %d reads pass the filters in %s", result.library_size, bam_.name)
    if result.matrix is not None:
        write_matrices({key: result.matrix}, matrix_path, options, long_path,
                       scores={key[1]: regs["score"]} if "score" in regs else None)
    write_table(result.columns, output or "-", attrs=result.attrs)


def _finish_task(task, no_wait: bool, quiet: bool, permissive: bool, outputs: dict) -> None:
    """--no-wait: say where the task is; else wait for it, collect and write outputs."""
    if no_wait:
        click.echo(f"{task.id}\t{task.path}")
        log.info("submitted task %s (%d chunks); 'bamcover status %s' follows it",
                 task.id, task.n_chunks, task.path)
        return
    task.wait(progress=not quiet)
    _collect_and_write(task, permissive, outputs)


def _collect_and_write(task, permissive: bool, outputs: dict) -> None:
    from . import cluster

    result = cluster.collect(task, permissive=permissive)
    meta = task.manifest["meta"]
    regs = pd.read_parquet(task.path / cluster.REGIONS_FILE)
    bams = cluster.task_bams(task)           # as submitted: collect never opens a BAM
    if meta["kind"] == "density":
        write_table(result, outputs.get("output") or "-")
        status = result.filter(regex="status$").iloc[:, 0]
        sizes = {n: int(result[f"{n}_library_size"].iat[0]) for n in meta["labels"]}
    else:
        _write_profile(result, regs, bams[0], outputs.get("output"),
                       outputs.get("matrix"), Options(**meta["options"]), outputs.get("long"),
                       key=(_stem(meta["bam"]), meta.get("group", "regions")))
        status = result.status
        sizes = {bams[0].name: result.library_size}
    # the inputs as they were counted (stamped at submission), not as they are now
    _record(list(outputs.values()), [], None, sizes, task=task.id,
            task_options=meta.get("options"), inputs=cluster.submitted_inputs(task))
    missing = int((status == STATUS_MISSING).sum())
    if missing:
        log.warning("%d regions are missing (status 'missing'): their chunks have no result",
                    missing)


@main.command(name="density")
@click.argument("regions", type=click.Path())
@click.argument("bams", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", default="-", show_default=True,
              help="Table (.tsv, .csv, .gz, .parquet); '-' is stdout.")
@click.option("--labels", default=None, help="Comma-separated sample labels [file stems].")
@read_options
@slurm_options
@handle_errors
def density_cmd(regions, bams, output, labels, quiet, slurm, jobs, workdir, no_wait, **kw):
    """Reads overlapping each region of REGIONS in each BAM, with CPM and RPKM."""
    executor = _executor(kw, slurm)
    options = _options(kw)
    check_outputs({"-o": output}, [regions, *bams])
    if quiet:
        log.setLevel(logging.WARNING)
    regs = read_regions(regions)
    opened = [open_bam(b) for b in bams]
    names = labels.split(",") if labels else [b.name.removesuffix(".bam") for b in opened]
    if slurm:
        outputs = {"output": _abs(output)}
        from . import cluster

        task = cluster.submit_density(regs, opened, options, executor=executor, jobs=jobs,
                                      labels=names, workdir=workdir, outputs=outputs,
                                      region_file=regions)
        _finish_task(task, no_wait, quiet, permissive=False, outputs=outputs)
        return
    table = density(regs, opened, options, progress=not quiet, labels=names)
    for bam_, label in zip(opened, names, strict=False):
        _summarise(table["status" if len(opened) == 1 else f"{label}_status"], regs, bam_)
    write_table(table, output)
    _record([output], [regions, *[p for b in opened for p in (b.path, b.index)]], options,
            {n: int(table[f"{n}_library_size"].iat[0]) for n in names})


# --- tasks -------------------------------------------------------------------------------

workdir_option = click.option("--workdir", default=DEFAULT_WORKDIR, show_default=True,
                              help="Where task directories are kept.")
task_argument = click.argument("task")


@main.command(name="tasks")
@workdir_option
@handle_errors
def tasks_cmd(workdir):
    """List tasks with the number of chunks in each state."""
    from .tasks import list_tasks

    rows = []
    for task in list_tasks(workdir):
        counts = task.status()["state"].value_counts()
        rows.append({"task": task.id, "kind": task.manifest["meta"].get("kind", "function"),
                     "chunks": task.n_chunks,
                     "states": " ".join(f"{k}:{v}" for k, v in sorted(counts.items())),
                     "path": str(task.path)})
    write_table(pd.DataFrame(rows, columns=["task", "kind", "chunks", "states", "path"]), "-")


@main.command()
@task_argument
@workdir_option
@handle_errors
def status(task, workdir):
    """Per chunk: state, job id, exit code, elapsed, node, log, and the error or log tail."""
    write_table(_find(task, workdir).status(), "-", index=True)


@main.command()
@task_argument
@workdir_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def wait(task, workdir, quiet):
    """Wait until no chunk is pending or running; exit 1 if any chunk has no result."""
    t = _find(task, workdir).wait(progress=not quiet)
    failed = t.failed()
    if failed:
        click.echo(f"bamcover: task {t.id}: {len(failed)} chunks without a result; "
                   f"see 'bamcover status {t.id}'", err=True)
        sys.exit(1)


@main.command(name="collect")
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
    t = _find(task, workdir)
    outputs = dict(t.manifest["meta"].get("outputs", {}))
    if output:
        outputs["output"] = output
    for option, path, key in (("--matrix", matrix_path, "matrix"), ("--long", long_path, "long")):
        if path:
            if not t.manifest["meta"].get("with_matrix"):
                raise BamcoverError(f"task {t.id} was submitted without --matrix or --long; "
                                    f"it has no matrix for {option}")
            outputs[key] = path
    from .cluster import submitted_inputs

    check_outputs({"-o": outputs.get("output"), "--matrix": outputs.get("matrix"),
                   "--long": outputs.get("long")},
                  [i["path"] for i in submitted_inputs(t)])
    _collect_and_write(t, permissive, outputs)


@main.command()
@task_argument
@workdir_option
@handle_errors
def cancel(task, workdir):
    """Cancel every chunk still queued or running."""
    _find(task, workdir).cancel()


@main.command()
@task_argument
@workdir_option
@handle_errors
def resubmit(task, workdir):
    """Submit again only the failed, cancelled, timed-out or lost chunks."""
    t = _find(task, workdir)
    again = t.resubmit()
    log.info("task %s: resubmitted %d chunks %s", t.id, len(again), again)


@main.command()
@task_argument
@workdir_option
@handle_errors
def clean(task, workdir):
    """Cancel what still runs and delete the task directory."""
    _find(task, workdir).clean()


# --- figures -----------------------------------------------------------------------------

def _load_plot_inputs(inputs: tuple[str, ...], labels: str | None):
    """The files to plot, combined (one sample per single-sample file). Plots never
    recompute coverage, so a BAM among INPUTS is an error that says what to run instead."""
    from .formats import load

    if any(p.lower().endswith(".bam") for p in inputs):
        raise BamcoverError("bamcover plot draws tables bamcover wrote; run 'bamcover "
                            "profile ... --matrix m.parquet' first")
    names = labels.split(",") if labels else None
    if names is not None and len(names) != len(inputs):
        raise BamcoverError(f"--labels gives {len(names)} labels for {len(inputs)} files")
    return load(list(inputs), sample=names)


def plot_options(func):
    """Options shared by the plot commands."""
    opts = [
        click.option("--output", "-o", required=True,
                     help="Figure file; format by suffix: .png, .pdf or .svg."),
        click.option("--labels", default=None,
                     help="Comma-separated sample labels, one per INPUT "
                          "[file names without suffixes]."),
        click.option("--reference-label", default=None,
                     help="Name of offset 0 on the x axis (summit, TSS, ...) "
                          "[from the file, else 'reference point']."),
        click.option("--kb/--bp", "kb", default=None,
                     help="x axis in kb or bp [kb when the window is wider than 4 kb]."),
        click.option("--units", type=click.Choice(["reads", "CPM", "log2 ratio", "difference"]),
                     default=None,
                     help="Unit of the values [from the file or its provenance record, else "
                          "reads]; a log2 ratio is drawn as it is, the others per base."),
        click.option("--title", default=None, help="Figure title [none]."),
        click.option("--dpi", type=int, default=150, show_default=True,
                     help="Resolution of PNG output."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _plot(kind: str, inputs, output, labels, dpi: int, **draw_kw) -> None:
    """Load what to plot, draw it with plotting.<kind>, save it atomically with its
    provenance record."""
    from . import plotting

    plotting.check_figure_path(output)
    check_outputs({"-o": output}, [p for i in inputs for p in (i, i + PROVENANCE_SUFFIX)])
    data = _load_plot_inputs(inputs, labels)
    plotting.save(getattr(plotting, kind)(data, **draw_kw), output, dpi=dpi)
    _record([output], list(inputs), None, {})


@main.group(cls=_Ordered)
def plot():
    """Figures from tables bamcover wrote (profile -o, --matrix, tidy tables) or from
    deepTools computeMatrix files (.mat.gz); coverage is never recomputed."""


@plot.command(name="profile")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@plot_options
@click.option("--band", type=click.Choice(["sem", "ci95", "none"]), default="sem",
              show_default=True,
              help="Shaded band: mean ± s.e.m., or bootstrap 95% CI over regions "
                   "(ci95 needs a matrix file).")
@click.option("--n-boot", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for --band ci95.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the bootstrap.")
@click.option("--smooth", type=int, default=None,
              help="Rolling mean over this many bins.")
@handle_errors
def plot_profile(inputs, output, labels, reference_label, kb, units, title, dpi, band,
                 n_boot, seed, smooth):
    """Average coverage profile of INPUTS — files bamcover wrote or deepTools .mat.gz:
    one line per sample × group (strand-wise: sense solid, antisense dashed)."""
    _plot("profile", inputs, output, labels, dpi, band=None if band == "none" else band,
          n_boot=n_boot, seed=seed, smooth=smooth, reference_label=reference_label, kb=kb,
          title=title, units=units)


@plot.command(name="heatmap")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@plot_options
@click.option("--sort", type=click.Choice(["mean", "keep", "kmeans"]), default="mean",
              show_default=True,
              help="Row order: mean coverage (descending, over all samples), input order, or "
                   "k-means clusters.")
@click.option("--clusters", "-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Clusters for --sort kmeans.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of k-means.")
@click.option("--sort-using", multiple=True,
              help="Sort/cluster on this sample only (repeatable) [all samples].")
@click.option("--independent-scale", is_flag=True,
              help="One colour scale per panel instead of one shared scale.")
@click.option("--vmin", type=float, default=None,
              help="Colour scale minimum [1st percentile; signed data: -max(|1st|, |99th|)].")
@click.option("--vmax", type=float, default=None,
              help="Colour scale maximum [99th percentile; signed data: max(|1st|, |99th|)].")
@click.option("--cmap", default=None,
              help="matplotlib colour map [Reds; RdBu_r centred on 0 for signed data: control "
                   "runs, negative values].")
@click.option("--no-profile", is_flag=True, help="No average profile above the panels.")
@handle_errors
def plot_heatmap(inputs, output, labels, reference_label, kb, units, title, dpi, sort,
                 clusters, seed, sort_using, independent_scale, vmin, vmax, cmap, no_profile):
    """Per-region heatmaps of INPUTS (matrix files bamcover wrote or deepTools .mat.gz),
    one panel per sample, regions in the same order in every panel."""
    _plot("heatmap", inputs, output, labels, dpi, sort=sort, k=clusters, seed=seed,
          sort_using=list(sort_using) or None, shared_scale=not independent_scale,
          vmin=vmin, vmax=vmax, cmap=cmap, profile_on_top=not no_profile,
          reference_label=reference_label, kb=kb, title=title, units=units)


def invoke(args: list[str] | None = None) -> int:
    """Run the command line on ``args`` (default: ``sys.argv[1:]``) and return its exit
    status; every error, click's usage errors included, is one stderr line."""
    import signal

    try:
        code = main(args, standalone_mode=False)
    except SystemExit as exc:                       # the commands' own exits
        code = exc.code
    except click.exceptions.NoArgsIsHelpError as exc:     # a bare group: its help
        click.echo(exc.ctx.get_help())
        code = exc.exit_code
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        click.echo(f"bamcover: error: {message}{hint}", err=True)
        code = exc.exit_code
    except click.Abort:
        click.echo("bamcover: stopped by SIGINT; no output written", err=True)
        code = 128 + signal.SIGINT
    except BrokenPipeError:          # --help into a closed pipe
        _quiet_stdout()
        code = 128 + signal.SIGPIPE
    return code if isinstance(code, int) else 0


def run() -> None:
    """The ``bamcover`` command: :func:`invoke` with SIGTERM and SIGHUP stopping the run as
    Ctrl-C does (workers stopped, temporaries removed), then exit without the collector's
    last sweep over every object the run made or imported (25 of the 35 ms a run took to
    exit)."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    try:
        code = invoke()
    finally:
        gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
