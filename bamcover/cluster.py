"""Coverage as tasks: split regions into chunks (one Slurm array task each), count each
chunk where it runs, and reduce the chunks into exactly the tables a local run gives."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from ._lazy import pd
from .errors import BamcoverError
from .executors import starmap_local
from .options import Options, available_cores
from .profiles import (
    STATUS_MISSING,
    Counts,
    Result,
    _prepare,
    _Stats,
    computable,
    count_windows,
    density_counts,
    density_inputs,
    density_table,
    finish,
)
from .reads import Bam, library_size, open_bam
from .regions import read_regions
from .tasks import LocalExecutor, SlurmExecutor, Task

REGIONS_FILE = "regions.parquet"   # inside the task directory; jobs run there


def split_rows(rows: np.ndarray, chroms: np.ndarray, starts: np.ndarray, bam: Bam,
               jobs: int) -> list[np.ndarray]:
    """``jobs`` contiguous runs of ``rows`` in genome order (BAM header order, then
    window start), balanced by count; each run sorted by row for the reduction."""
    rank = {c: i for i, c in enumerate(bam.lengths)}
    key = np.array([rank[c] for c in chroms[rows]], dtype=np.int64)
    ordered = rows[np.lexsort((starts[rows], key))]
    parts = np.array_split(ordered, max(1, min(jobs, len(rows))))
    return [np.sort(p) for p in parts if len(p)]


def _store_regions(task: Task, regions: pd.DataFrame) -> None:
    regions.to_parquet(task.path / REGIONS_FILE)


def _options_dict(options: Options, processes: int) -> dict:
    return dataclasses.asdict(options.replace(processes=processes))


def submit_profile(regions, bam, options: Options, *, executor: SlurmExecutor | LocalExecutor,
                   jobs: int = 4, with_matrix: bool = True, workdir=None,
                   outputs: dict | None = None, group: str = "regions") -> Task:
    """Submit a profile/matrix run as a task of ``jobs`` chunks; collect it with
    :func:`collect`. The regions table is stored in the task; jobs read it from there.
    ``group`` labels the regions in the outputs written at collection (as a local run
    labels them by the region file's name)."""
    regs = read_regions(regions) if not isinstance(regions, pd.DataFrame) or \
        "line" not in regions else regions
    bam_ = bam if isinstance(bam, Bam) else open_bam(bam)
    prep = _prepare(regs, bam_, options.replace(processes=1))
    rows = computable(prep.status)
    if not len(rows):
        raise BamcoverError("no region lies on a chromosome of the BAM; nothing to submit")
    parts = split_rows(rows, regs["chrom"].to_numpy(), prep.starts, bam_, jobs)
    opts = _options_dict(options, executor.processes)
    items = [{"regions": REGIONS_FILE, "bam": os.path.abspath(bam_.path), "rows": p.tolist(),
              "options": opts, "with_matrix": with_matrix} for p in parts]
    meta = {"kind": "profile", "bam": os.path.abspath(bam_.path), "options": opts,
            "with_matrix": with_matrix, "outputs": outputs or {},
            "n_regions": len(regs), "group": group}
    inputs = [bam_.path, bam_.index]
    task = Task.create("bamcover.cluster:window_job", items, reduce="list",
                       executor=executor, workdir=workdir, inputs=inputs, meta=meta)
    _store_regions(task, regs.assign(status=prep.status))
    return task.submit()


def window_job(regions: str, bam: str, rows: list[int], options: dict,
               with_matrix: bool) -> dict[str, np.ndarray]:
    """One chunk of a profile task: integer counts of its rows (run inside the job)."""
    opts = Options(**options)
    rows_ = np.asarray(rows, dtype=np.int64)
    prep = _prepare(pd.read_parquet(regions).drop(columns="status"), bam, opts, rows=rows_)
    return count_windows(prep, opts, rows_, with_matrix).to_arrays()


def submit_density(regions, bams, options: Options, *, executor: SlurmExecutor | LocalExecutor,
                   jobs: int = 4, labels=None, workdir=None, outputs: dict | None = None
                   ) -> Task:
    """Submit a density run (every BAM per chunk of regions) as a task."""
    regs, opened, labels = density_inputs(regions, bams, labels)
    rows = np.arange(len(regs))
    first = opened[0]
    known = np.array([c in first.lengths for c in regs["chrom"]])
    parts = split_rows(rows[known], regs["chrom"].to_numpy(), regs["start"].to_numpy(), first,
                       jobs) if known.any() else []
    parts += [rows[~known]] if (~known).any() else []
    opts = _options_dict(options, executor.processes)
    items = [{"regions": REGIONS_FILE, "bams": [os.path.abspath(b.path) for b in opened],
              "rows": p.tolist(), "options": opts} for p in parts]
    meta = {"kind": "density", "bams": [os.path.abspath(b.path) for b in opened],
            "labels": labels, "options": opts, "outputs": outputs or {},
            "n_regions": len(regs)}
    inputs = [p for b in opened for p in (b.path, b.index)]
    task = Task.create("bamcover.cluster:density_job", items, reduce="list",
                       executor=executor, workdir=workdir, inputs=inputs, meta=meta)
    _store_regions(task, regs)
    return task.submit()


def density_job(regions: str, bams: list[str], rows: list[int], options: dict
                ) -> dict[str, np.ndarray]:
    """One chunk of a density task: counts of its rows in every BAM."""
    opts = Options(**options)
    regs = pd.read_parquet(regions)
    rows_ = np.asarray(rows, dtype=np.int64)
    counts = [density_counts(regs, open_bam(b), opts, rows=rows_)[rows_] for b in bams]
    return {"rows": rows_, "counts": np.stack(counts)}


def collect(task: Task, permissive: bool = False, progress: bool = False) -> Any:
    """Reduce a coverage task: a :class:`~bamcover.profiles.Result` for profile tasks,
    the density table for density tasks. Regions of chunks without a result (only with
    ``permissive``) get status ``missing`` and NaN, never silently dropped."""
    meta = task.manifest["meta"]
    if meta.get("kind") not in ("profile", "density"):
        raise BamcoverError(f"task {task.id} is not a bamcover coverage task; use Task.collect")
    results = task.results(permissive)
    if not results:
        raise BamcoverError(f"task {task.id}: no chunk has a result")
    regs = pd.read_parquet(task.path / REGIONS_FILE)
    missing = np.concatenate([np.asarray(task.chunk(i)["rows"], dtype=np.int64)
                              for i in range(task.n_chunks) if i not in results]
                             or [np.empty(0, np.int64)])
    options = Options(**meta["options"])
    if meta["kind"] == "density":
        return _collect_density(regs, results, missing, meta, options)
    status = regs.pop("status").to_numpy(dtype=object)
    status[missing] = STATUS_MISSING
    parts = [Counts.from_arrays(results[i]) for i in sorted(results)]
    stats = _Stats(len(options.channels), options.n_bins)
    for p in parts:
        stats.merge(p.stats)
    rows = np.concatenate([p.rows for p in parts])
    order = np.argsort(rows)
    with_matrix = meta["with_matrix"]
    values = invalid = None
    if with_matrix or options.scale_regions:      # scale-regions chunks always send values
        values = np.concatenate([p.values for p in parts])[order]
        invalid = np.concatenate([p.invalid for p in parts])[order]
    counts = Counts(stats, rows[order], values, invalid, sum(p.reads for p in parts))
    bam = open_bam(meta["bam"])
    result: Result = finish(regs, bam, status, counts, options.replace(processes=None),
                            with_matrix)
    result.attrs["missing_regions"] = int(len(missing))
    return result


def _collect_density(regs, results, missing, meta, options) -> pd.DataFrame:
    opened = [open_bam(b) for b in meta["bams"]]
    counts = [np.full((len(regs), len(options.channels)), np.nan) for _ in opened]
    for part in results.values():
        for b in range(len(opened)):
            counts[b][part["rows"]] = part["counts"][b]
    sizes = starmap_local(library_size, opened, options.read_rules(),
                          processes=available_cores())
    return density_table(regs, opened, meta["labels"], counts, sizes, options,
                         missing=missing)
