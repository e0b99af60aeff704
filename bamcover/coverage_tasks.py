"""Coverage as tasks: split regions into chunks (one job each, on any backend of
:mod:`bamcover.jobs`), count each chunk where it runs, and reduce the chunks into exactly
the tables a local run gives."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from ._lazy import pd
from .densities import density_counts, density_inputs, density_table
from .errors import BamcoverError
from .jobs.backends import Backend
from .jobs.stamps import input_stamp, unchanged
from .jobs.task import Task
from .options import Options
from .profiles import (
    Counts,
    Result,
    computable,
    count_windows,
    finish,
    merge_counts,
    prepare,
)
from .reads import Bam, library_size, open_bam
from .regions import read_regions
from .schema import STATUS_MISSING

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


def _bam_info(bams: list[Bam]) -> list[dict]:
    """What collect needs of the BAMs (path, index, chromosome lengths), kept in the
    manifest so that collect never opens them again."""
    return [{"path": os.path.abspath(b.path), "index": os.path.abspath(b.index),
             "lengths": b.lengths} for b in bams]


def task_bams(task: Task) -> list[Bam]:
    """The task's BAMs as they were at submission."""
    meta = task.manifest["meta"]
    if "bam_info" not in meta:        # a task submitted before the manifest kept them
        return [open_bam(b) for b in meta.get("bams", [meta.get("bam")])]
    return [Bam(b["path"], b["index"], b["lengths"]) for b in meta["bam_info"]]


def submitted_inputs(task: Task) -> list[dict]:
    """The inputs of a coverage task as stamped at submission (region file, BAMs, indexes:
    path, size, mtime), for the provenance of what collect writes."""
    stamps = [task.manifest["meta"].get("region_input"), *task.manifest["inputs"]]
    return [{**s, "mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(s["mtime"]))}
            for s in stamps if s is not None]


def _region_input(regions, region_file) -> dict | None:
    """Submit-time stamp of the region file, for the provenance written at collection."""
    path = region_file if region_file is not None else \
        regions if isinstance(regions, (str, os.PathLike)) else None
    return input_stamp(os.fspath(path)) if path is not None else None


def _library_sizes(paths: list[str], options: Options) -> np.ndarray:
    """Library sizes counted in a job, so collect needs no BAM."""
    return np.array([library_size(open_bam(p), options.read_rules()) for p in paths],
                    dtype=np.int64)


def submit_profile(regions, bam, options: Options, *, executor: Backend,
                   jobs: int = 4, with_matrix: bool = True, workdir=None,
                   outputs: dict | None = None, group: str = "regions",
                   region_file: str | None = None) -> Task:
    """Submit a profile/matrix run as a task of ``jobs`` chunks; collect it with
    :func:`collect`. The regions table is stored in the task; jobs read it from there.
    ``group`` labels the regions in the outputs written at collection (as a local run
    labels them by the region file's name); ``region_file`` names the file ``regions``
    came from, for the provenance. With normalisation, the first chunk also counts the
    library size."""
    regs = read_regions(regions) if not isinstance(regions, pd.DataFrame) or \
        "line" not in regions else regions
    bam_ = bam if isinstance(bam, Bam) else open_bam(bam)
    prep = prepare(regs, bam_, options.replace(processes=1))
    rows = computable(prep.status)
    if not len(rows):
        raise BamcoverError("no region lies on a chromosome of the BAM; nothing to submit")
    parts = split_rows(rows, regs["chrom"].to_numpy(), prep.starts, bam_, jobs)
    opts = _options_dict(options, executor.processes)
    items = [{"regions": REGIONS_FILE, "bam": os.path.abspath(bam_.path), "rows": p.tolist(),
              "options": opts, "with_matrix": with_matrix, "sizes": []} for p in parts]
    if options.normalize != "none":
        items[0]["sizes"] = [os.path.abspath(bam_.path)]
    meta = {"kind": "profile", "bam": os.path.abspath(bam_.path), "options": opts,
            "with_matrix": with_matrix, "outputs": outputs or {},
            "n_regions": len(regs), "group": group, "bam_info": _bam_info([bam_]),
            "region_input": _region_input(regions, region_file)}
    inputs = [bam_.path, bam_.index]
    task = Task.create(window_job, items, reduce="list",
                       executor=executor, workdir=workdir, inputs=inputs, meta=meta)
    _store_regions(task, regs.assign(status=prep.status))
    return task.submit()


def window_job(regions: str, bam: str, rows: list[int], options: dict,
               with_matrix: bool, sizes: list[str] = ()) -> dict[str, np.ndarray]:
    """One chunk of a profile task: integer counts of its rows (run inside the job), and
    the library sizes of ``sizes``."""
    opts = Options(**options)
    rows_ = np.asarray(rows, dtype=np.int64)
    prep = prepare(pd.read_parquet(regions).drop(columns="status"), bam, opts, rows=rows_)
    return {**count_windows(prep, opts, rows_, with_matrix).to_arrays(),
            "library_sizes": _library_sizes(list(sizes), opts)}


def submit_density(regions, bams, options: Options, *, executor: Backend,
                   jobs: int = 4, labels=None, workdir=None, outputs: dict | None = None,
                   region_file: str | None = None) -> Task:
    """Submit a density run (every BAM per chunk of regions) as a task; the library size
    of BAM b is counted by chunk b (mod the number of chunks)."""
    regs, opened, labels = density_inputs(regions, bams, labels)
    rows = np.arange(len(regs))
    first = opened[0]
    known = np.array([c in first.lengths for c in regs["chrom"]])
    parts = split_rows(rows[known], regs["chrom"].to_numpy(), regs["start"].to_numpy(), first,
                       jobs) if known.any() else []
    parts += [rows[~known]] if (~known).any() else []
    opts = _options_dict(options, executor.processes)
    paths = [os.path.abspath(b.path) for b in opened]
    items = [{"regions": REGIONS_FILE, "bams": paths, "rows": p.tolist(), "options": opts,
              "sizes": paths[k::len(parts)]} for k, p in enumerate(parts)]
    meta = {"kind": "density", "bams": paths, "labels": labels, "options": opts,
            "outputs": outputs or {}, "n_regions": len(regs), "bam_info": _bam_info(opened),
            "region_input": _region_input(regions, region_file)}
    inputs = [p for b in opened for p in (b.path, b.index)]
    task = Task.create(density_job, items, reduce="list",
                       executor=executor, workdir=workdir, inputs=inputs, meta=meta)
    _store_regions(task, regs)
    return task.submit()


def density_job(regions: str, bams: list[str], rows: list[int], options: dict,
                sizes: list[str] = ()) -> dict[str, np.ndarray]:
    """One chunk of a density task: counts of its rows in every BAM, and the library
    sizes of ``sizes``."""
    opts = Options(**options)
    regs = pd.read_parquet(regions)
    rows_ = np.asarray(rows, dtype=np.int64)
    counts = [density_counts(regs, open_bam(b), opts, rows=rows_)[rows_] for b in bams]
    return {"rows": rows_, "counts": np.stack(counts),
            "library_sizes": _library_sizes(list(sizes), opts)}


def collect(task: Task, permissive: bool = False, progress: bool = False) -> Any:
    """Reduce a coverage task: a :class:`~bamcover.profiles.Result` for profile tasks,
    the density table for density tasks. Needs only the task directory. Each chunk's
    result must hold exactly its rows in the shapes the run makes, else it is rejected
    (FAILED). Regions of chunks without a good result (only with ``permissive``) get
    status ``missing`` and NaN, never silently dropped."""
    meta = task.manifest["meta"]
    if meta.get("kind") not in ("profile", "density"):
        raise BamcoverError(f"task {task.id} is not a bamcover coverage task; use Task.collect")
    options = Options(**meta["options"])
    results = task.results(permissive, check=_part_check(task, options))
    if not results:
        raise BamcoverError(f"task {task.id}: no chunk has a result")
    regs = pd.read_parquet(task.path / REGIONS_FILE)
    missing = np.concatenate([np.asarray(task.chunk(i)["rows"], dtype=np.int64)
                              for i in range(task.n_chunks) if i not in results]
                             or [np.empty(0, np.int64)])
    bams = task_bams(task)
    if meta["kind"] == "density":
        return _collect_density(regs, results, missing, meta, options, bams,
                                _sizes(task, results, bams, options))
    status = regs.pop("status").to_numpy(dtype=object)
    status[missing] = STATUS_MISSING
    with_matrix = meta["with_matrix"]
    counts = merge_counts([Counts.from_arrays(results[i]) for i in sorted(results)], options,
                          with_matrix)
    size = _sizes(task, results, bams, options)[0] if options.normalize != "none" else None
    result: Result = finish(regs, bams[0], status, counts, options.replace(processes=None),
                            with_matrix, size=size)
    result.attrs["missing_regions"] = int(len(missing))
    return result


def _part_check(task: Task, options: Options):
    """A check for :meth:`Task.results`: a chunk's result holds exactly the chunk's rows,
    in the shapes this run makes (not another chunk's, not edited)."""
    meta = task.manifest["meta"]
    nch, nbins = len(options.channels), options.n_bins

    def check(i: int, part: Any) -> None:
        item = task.chunk(i)
        rows = np.asarray(item["rows"], dtype=np.int64)
        n = len(rows)
        shapes = {"rows": (n,), "library_sizes": (len(item.get("sizes", [])),)}
        if meta["kind"] == "density":
            shapes["counts"] = (len(meta["bams"]), n, nch)
        elif meta["with_matrix"] or options.scale_regions:
            shapes.update(values=(n, nch, nbins), invalid=(n, nbins))
        if not isinstance(part, dict) or any(
                k not in part or part[k].shape != shape for k, shape in shapes.items()):
            raise BamcoverError(f"chunk {i}'s result does not have the shapes of its "
                                f"{n} rows")
        if not np.array_equal(part["rows"], rows):
            raise BamcoverError(f"chunk {i}'s result holds other rows than the chunk's")
    return check


def _sizes(task: Task, results: dict, bams: list, options: Options) -> list[int]:
    """Each BAM's library size, as the chunk that counted it in its job recorded. When
    that chunk has no result (``permissive``), it is counted here if the BAM is still as
    it was at submission, else collect stops: it would be a different number."""
    counted: dict[str, int] = {}
    owner: dict[str, int] = {}
    for i in range(task.n_chunks):
        paths = task.chunk(i).get("sizes", [])
        owner.update(dict.fromkeys(paths, i))
        if i in results:
            counted.update(zip(paths, results[i]["library_sizes"].tolist(), strict=True))
    stamps = {s["path"]: s for s in task.manifest["inputs"]}
    sizes = []
    for bam in bams:
        if bam.path not in counted:
            stamp = stamps.get(bam.path)
            if stamp is None or not unchanged(stamp):
                raise BamcoverError(
                    f"task {task.id}: chunk {owner.get(bam.path, 0)}, which counts the "
                    f"library size of {bam.path}, has no result, and the BAM is gone or "
                    "changed since submission; resubmit that chunk")
            counted[bam.path] = library_size(bam, options.read_rules())
        sizes.append(counted[bam.path])
    return sizes


def _collect_density(regs, results, missing, meta, options, opened, sizes) -> pd.DataFrame:
    counts = [np.full((len(regs), len(options.channels)), np.nan) for _ in opened]
    for part in results.values():
        for b in range(len(opened)):
            counts[b][part["rows"]] = part["counts"][b]
    return density_table(regs, opened, meta["labels"], counts, sizes, options,
                         missing=missing)
