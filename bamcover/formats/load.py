"""Loading whatever bamcover wrote (profiles, matrices, tidy tables, deepTools matrices),
with what a TSV cannot keep read back from the provenance record beside it."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field

from .._lazy import pd
from ..errors import BamcoverError
from ..matrices import Matrices
from ..schema import (
    BAM_SUFFIX,
    BODY,
    CONTROL_UNITS,
    CONTROLS,
    DEFAULT_GROUP,
    DIFFERENCE,
    LOG2_RATIO,
    MATRIX_FILE_COLUMNS,
    PARQUET_SUFFIX,
    READS,
    TEXT_COLUMNS,
    label_from_path,
    separator,
)
from .deeptools import read_deeptools_matrix
from .tables import (
    body_length_of,
    matrices_from_tidy,
    matrix_from_table,
    ordered_unique,
    profile_from_matrices,
    tidy_profile,
    units_of,
)

PathLike = str | os.PathLike


def _recorded(path: str) -> dict:
    """What a TSV cannot keep, from the provenance record written beside ``path``: the
    scale-regions body length (``body_length``) and, for a control run, its ``units``
    (``operation``) and ``controls``, ``{sample: control label}``."""
    try:
        with open(path + ".provenance.json") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return {}
    out: dict = {}
    for key in ("options", "task_options"):
        opts = record.get(key) or {}
        if opts.get("scale_regions"):
            out[BODY] = int(opts["body_length"])
            break
    params = (record.get("command") or {}).get("parameters") or {}
    if params.get("control"):
        operation = (record.get("options") or {}).get("operation") or params.get("operation")
        out["units"] = LOG2_RATIO if operation == "log2" else DIFFERENCE
        out[CONTROLS] = _controls(params)
    return out


def _controls(params: dict) -> dict[str, str]:
    """``{sample: control label}`` of a ``bamcover profile --control`` run from its
    parameters: samples labelled as the run labelled them (``--labels``, else BAM names), one
    control for every sample or one per sample; a control is labelled by its file name
    without ``.bam``. ``{}`` when they do not match."""
    bams = [os.path.basename(p) for p in params.get("inputs") or []
            if str(p).lower().endswith(BAM_SUFFIX)]
    samples = params["labels"].split(",") if params.get("labels") else \
        [label_from_path(b) for b in bams]
    controls = [label_from_path(p) if p.lower().endswith(BAM_SUFFIX) else os.path.basename(p)
                for p in str(params["control"]).split(",")]
    if len(controls) == 1:
        controls *= len(samples)
    return dict(zip(samples, controls, strict=True)) if len(controls) == len(samples) else {}


@dataclass
class Loaded:
    """What :func:`load` read: a tidy profile (always; derived from the matrices when the file
    held only matrices) and the matrices when the file had them."""

    profile: pd.DataFrame
    matrices: Matrices | None = None
    meta: dict = field(default_factory=dict)
    kind: str = ""

    @property
    def units(self) -> str | None:
        return units_of(self.profile) or self.meta.get("units")


def _is_deeptools(path: str) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        return False
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(1) == b"@"
    except (OSError, EOFError):
        return False


def _read_table(path: str) -> pd.DataFrame:
    if path.endswith(PARQUET_SUFFIX):
        return pd.read_parquet(path)
    sep = separator(path)
    head = pd.read_csv(path, sep=sep, nrows=0)
    text_cols = [c for c in head.columns if c in TEXT_COLUMNS]
    na = {c: ["nan", "NaN", ""] for c in head.columns if c not in text_cols}
    return pd.read_csv(path, sep=sep, dtype={c: str for c in text_cols},
                       keep_default_na=False, na_values=na)


def load(path: PathLike | list[PathLike], *, sample: str | list[str] | None = None,
         group: str | None = None) -> Loaded:
    """Read any table bamcover wrote, so that plots never recompute coverage.

    Recognised by content: a deepTools matrix (gzipped, ``@`` header line); otherwise a TSV
    (``.tsv``, ``.gz``, ``.csv``) or parquet table that is a tidy profile (``sample, group,
    channel, offset, mean…``), a wide profile (``offset, <channel>_mean…``, the ``-o`` of
    ``bamcover profile``), a matrix (``chrom start end name strand channel status`` + bins,
    the ``--matrix`` file) or a tidy matrix (:func:`tidy_matrix`).

    Parameters
    ----------
    path
        One file, or several whose samples are combined (e.g. a ChIP and a control profile).
    sample, group
        Labels for single-sample files that carry none (default: the file name without its
        suffixes, and ``"regions"``); with several paths, one sample label per path.

    Returns
    -------
    :class:`Loaded` with ``.profile`` (tidy) and ``.matrices`` (``{(sample, group): matrix}``
    or None). A profile is derived from matrices (mean, median, std ddof = 1, sem, n over
    non-NaN regions) when the file holds only matrices.
    """
    if isinstance(path, (list, tuple)):
        labels = sample if isinstance(sample, (list, tuple)) else [None] * len(path)
        if len(labels) != len(path):
            raise BamcoverError(f"{len(labels)} labels for {len(path)} files")
        parts = [load(p, sample=lab, group=group) for p, lab in zip(path, labels, strict=True)]
        return combine(parts)
    if isinstance(sample, (list, tuple)):
        sample = sample[0] if sample else None
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BamcoverError(f"{path}: no such file")
    loaded = _load_one(path, sample, group)
    recorded = _recorded(path)      # a TSV keeps no attrs: the run's provenance record says
    frames = [loaded.profile, *(loaded.matrices or {}).values()]
    body = loaded.profile.attrs.get(BODY) or loaded.meta.get(BODY) or recorded.get(BODY)
    units = None if loaded.meta.get("units") else recorded.get("units")
    controls = recorded.get(CONTROLS)
    if controls and len(controls) == 1 and \
            ordered_unique(loaded.profile["sample"].astype(str)) == [sample]:
        controls = {sample: next(iter(controls.values()))}     # the caller's label for it
    for frame in frames:
        if body:
            frame.attrs[BODY] = int(body)
        if units:
            frame.attrs["units"] = units
        if controls and not frame.attrs.get(CONTROLS):
            frame.attrs[CONTROLS] = controls
    return loaded


def _load_one(path: str, sample: str | None, group: str | None) -> Loaded:
    smp = sample or label_from_path(path, table=True)
    grp = group or DEFAULT_GROUP
    if _is_deeptools(path):
        mats, meta = read_deeptools_matrix(path)
        if sample and len({s for s, _ in mats}) == 1:
            mats = {(sample, g): m for (_, g), m in mats.items()}
        return Loaded(profile_from_matrices(mats), mats, meta, "deeptools")
    try:
        table = _read_table(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise BamcoverError(f"{path}: cannot read as a table ({exc})") from None
    cols = set(map(str, table.columns))
    meta = dict(table.attrs)
    if {"sample", "group", "channel", "offset", "mean"} <= cols:
        prof = table.astype({"sample": str, "group": str, "channel": str})
        prof.attrs.update(table.attrs)
        prof.attrs.setdefault("units", units_of(table) or READS)
        return Loaded(prof, None, meta, "tidy profile")
    if {"sample", "group", "region", "channel", "offset", "value"} <= cols:
        mats = matrices_from_tidy(table)
        return Loaded(profile_from_matrices(mats), mats, meta, "tidy matrix")
    if set(MATRIX_FILE_COLUMNS) <= cols and {"sample", "group"} <= cols:
        keys = table[["sample", "group"]].astype(str).agg("\t".join, axis=1)
        mats = {}
        for key in ordered_unique(keys):
            part = table.loc[keys == key].drop(columns=["sample", "group"])
            mats[tuple(key.split("\t"))] = matrix_from_table(part.reset_index(drop=True))
        return Loaded(profile_from_matrices(mats), mats, meta, "matrix")
    if set(MATRIX_FILE_COLUMNS) <= cols:
        mats = {(smp, grp): matrix_from_table(table)}
        return Loaded(profile_from_matrices(mats), mats, meta, "matrix")
    if "offset" in cols and any(c.endswith("_mean") for c in cols):
        return Loaded(tidy_profile(table, smp, grp), None, meta, "profile")
    raise BamcoverError(f"{path}: not a profile or matrix table bamcover wrote "
                        f"(columns {sorted(cols)[:8]}…)")


def combine(parts: list[Loaded]) -> Loaded:
    """Several loaded files as one.

    Parameters
    ----------
    parts
        What :func:`load` read of each.

    Returns
    -------
    Loaded
        Profiles stacked, matrices merged (sample × group keys must be distinct).
    """
    profiles = [p.profile for p in parts]
    body = body_length_of(*profiles)
    units = ordered_unique(u for p in profiles if (u := units_of(p))) or [READS]
    if len(units) > 1 and set(units) & set(CONTROL_UNITS):
        raise BamcoverError(f"tables in {units} cannot share an axis; plot control runs "
                            "(log2 ratio, difference) only with tables of the same unit")
    controls = {k: v for p in profiles for k, v in (p.attrs.get(CONTROLS) or {}).items()}
    prof = pd.concat(profiles, ignore_index=True)
    prof.attrs["units"] = units[0]
    if body:
        prof.attrs[BODY] = body
    if controls:
        prof.attrs[CONTROLS] = controls
    dup = prof.duplicated(["sample", "group", "channel", "offset"])
    if dup.any():
        row = prof.loc[dup].iloc[0]
        raise BamcoverError(f"sample {row['sample']!r} / group {row['group']!r} appears in more "
                            "than one file; give distinct sample labels")
    mats: Matrices | None = None
    if all(p.matrices is not None for p in parts):
        mats = {}
        for p in parts:
            mats.update(p.matrices)
    meta = {"parts": [p.meta for p in parts]}
    return Loaded(prof, mats, meta, "+".join(p.kind for p in parts))
