"""What the commands share: option groups and types, turning options into an
:class:`~bamcover.options.Options`, error handling (one line, exit 2), provenance records
and the stderr summary of regions that could not be computed."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Mapping

import click

from ..counting import status_notes
from ..errors import BamcoverError
from ..options import DEFAULT_FLAG_EXCLUDE, DEFAULT_WORKDIR, TN5_SHIFT, Options, parse_flag
from ..outputs import all_or_nothing, provenance, write_provenance

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


class OneLineError(click.ClickException):
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
            raise OneLineError(f"{option}: {str(value)!r} is not a flag value "
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


def job_backend(params: Mapping, slurm: bool):
    """The Slurm backend the --slurm options describe, or None for a local run (which
    never imports the job layer)."""
    if not slurm:
        return None
    from ..jobs.backends import SlurmBackend

    return SlurmBackend(cpus_per_job=params["cpus_per_job"], partition=params["partition"],
                        time=params["time_limit"], mem=params["mem"],
                        account=params["account"], sbatch_args=list(params["sbatch_arg"]))


def find_task(task: str, workdir: str):
    """A task by path or id (see :func:`bamcover.jobs.lookup.find`)."""
    from ..jobs.lookup import find

    return find(task, workdir)


def options_from(params: Mapping, **extra) -> Options:
    """The :class:`Options` of the read options in ``params`` (click's parameters, read,
    not consumed) and ``extra``."""
    shift, shift_rev = params["shift"], params["shift_reverse"]
    if params["tn5"]:
        if shift is not None or shift_rev is not None:
            raise BamcoverError("--tn5 sets the shifts; do not combine it with --shift")
        shift, shift_rev = TN5_SHIFT
    return Options(
        fragment_size=params["fragment_size"],
        shift=shift or 0,
        shift_reverse=shift_rev,
        pairs=params["pairs"],
        max_fragment_length=params["max_fragment_length"],
        strand_wise=params["strand_wise"],
        min_mapq=params["min_mapq"],
        ignore_duplicates=params["ignore_duplicates"],
        flag_include=params["sam_flag_include"],
        flag_exclude=params["sam_flag_exclude"],
        processes=params["processes"],
        **extra,
    )


class Interrupted(BaseException):
    """A signal that stops the run (SIGTERM, SIGHUP): raised in the main thread so that
    workers are stopped and temporaries removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def raise_interrupted(signum, frame) -> None:
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
            quiet_stdout()
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


def quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush on exit does not
    report the closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def summarise(status, chroms, bam) -> None:
    """Log one line per kind of region that could not be computed (see
    :func:`bamcover.counting.status_notes`)."""
    for note in status_notes(status, chroms, bam):
        log.warning("%s", note)


def record(outputs, inputs, options, library_sizes, /, **extra) -> None:
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


def split_list(text: str | None) -> list[str] | None:
    return text.split(",") if text else None


def absolute(path):
    return None if path is None or path == "-" else os.path.abspath(path)


class Ordered(click.Group):
    """Commands listed in the order users reach for them, not alphabetically."""

    order = ("profile", "density", "plot", "tasks", "status", "wait", "collect", "resubmit",
             "cancel", "clean")

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [c for c in self.order if c in self.commands]
        return known + sorted(c for c in self.commands if c not in known)


class StderrHandler(logging.Handler):
    """Log records as 'bamcover: message' lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"bamcover: {record.getMessage()}", err=True)
