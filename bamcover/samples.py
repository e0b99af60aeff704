"""Several samples × region groups × controls in one call: ``coverage`` and ``Coverage``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ._lazy import pd
from .errors import BamcoverError
from .normalisation import units, versus_control
from .options import Options, with_overrides
from .profiles import compute
from .reads import Bam, open_bam
from .regions import is_bedtool, read_regions
from .schema import label_from_path


@dataclass
class Coverage:
    """A run over several samples and region groups.

    ``profile`` is tidy (``sample, group, channel, offset, mean, median, std, sem, n``);
    ``matrices[(sample, group)]`` is the wide matrix of that pair (see :func:`matrix`);
    ``library_sizes[sample]`` the reads passing the filters (None when not needed).
    """

    profile: pd.DataFrame
    matrices: dict[tuple[str, str], pd.DataFrame]
    library_sizes: dict[str, int | None]
    units: str

    def matrix(self, sample: str, group: str) -> pd.DataFrame:
        """The matrix of ``sample`` over region group ``group``."""
        return self.matrices[(sample, group)]


def _labelled(items, labels, what: str) -> dict[str, object]:
    """``{label: item}`` of a dict, a list or one item (labels default to file names)."""
    if isinstance(items, dict):
        return {str(k): v for k, v in items.items()}
    items = [items] if isinstance(items, (str, os.PathLike, pd.DataFrame)) or \
        is_bedtool(items) else list(items)
    if labels is None:
        labels = [label_from_path(getattr(i, "fn", i)) if not isinstance(i, pd.DataFrame)
                  else f"{what}{k}" for k, i in enumerate(items, 1)]
    labels = list(labels)
    if len(labels) != len(items):
        raise BamcoverError(f"{len(labels)} {what} labels for {len(items)} {what}s")
    if len(set(labels)) != len(labels):
        raise BamcoverError(f"duplicate {what} labels {labels}; give distinct labels")
    return dict(zip(labels, items, strict=True))


def coverage(regions, bams, options: Options | None = None, *, labels=None,
             group_labels=None, control=None, with_matrix: bool = True,
             progress: bool = False, **overrides) -> Coverage:
    """Profiles (and matrices) for every sample × region group in one call.

    Parameters
    ----------
    regions
        A region file/DataFrame/BedTool, or a list or ``{label: regions}`` dict of groups
        (e.g. H3K4me3 peaks and H3K27me3 peaks). Labels default to file stems.
    bams
        A BAM path, or a list or ``{label: path}`` dict of samples.
    control
        A control BAM for every sample, a list of one per sample (in sample order), or a
        ``{sample: control}`` dict: values become
        ``log2((sample + p) / (control + p))`` or ``sample − control`` (``operation``,
        ``pseudocount``), both normalised by ``normalize`` first; with ``normalize='none'``
        the control is scaled to the sample's library size.
    options, **overrides, progress
        As for :func:`matrix`.

    Returns
    -------
    :class:`Coverage`. Without a control, statistics come from exact integer sums (any
    number of processes gives the same bits); with a control they are computed from the
    matrices (mean, median, std ddof=1, sem, n over regions with a value), which are then
    always held in memory.
    """
    # formats (and with it the deepTools and table readers) only when a run needs them:
    # the command line starts without them
    from .formats import profile_from_matrices, tidy_profile

    options = with_overrides(options, overrides)
    groups = _labelled(regions, group_labels, "group")
    samples = _labelled(bams, labels, "sample")
    controls = _controls(control, list(samples))
    groups = {g: read_regions(r) if not isinstance(r, pd.DataFrame) or "line" not in r else r
              for g, r in groups.items()}
    opened = {s: open_bam(b) if not isinstance(b, Bam) else b for s, b in samples.items()}
    profiles, matrices, sizes = [], {}, {}
    for sample, bam in opened.items():
        ctrl = controls.get(sample)
        for group, regs in groups.items():
            if ctrl is None:
                res = compute(regs, bam, options, with_matrix=with_matrix, progress=progress)
                profiles.append(tidy_profile(res.profile, sample, group))
                if with_matrix:
                    matrices[(sample, group)] = res.matrix
            else:
                mat, size = _versus_control(regs, bam, ctrl, options, progress)
                matrices[(sample, group)] = mat
                profiles.append(profile_from_matrices({(sample, group): mat}))
            sizes[sample] = res.library_size if ctrl is None else size
    prof = pd.concat(profiles, ignore_index=True)
    unit = units(options, control=bool(controls))
    scaled = {"body_length": options.body_length} if options.scale_regions else {}
    prof.attrs.update(units=unit, **scaled)
    for m in matrices.values():
        m.attrs.update(units=unit, **scaled)
    return Coverage(prof, matrices, sizes, unit)


def _versus_control(regs, bam: Bam, control, options: Options, progress: bool
                    ) -> tuple[pd.DataFrame, int]:
    """The sample's matrix against its control's, both normalised (see
    :func:`~bamcover.normalisation.versus_control`), and the sample's library size."""
    ctrl = control if isinstance(control, Bam) else open_bam(control)
    raw = options.replace(normalize=options.normalize if options.normalize != "none"
                          else "cpm", scale_factor=1.0)
    sample = compute(regs, bam, raw, with_matrix=True, progress=progress)
    base = compute(regs, ctrl, raw, with_matrix=True, progress=progress)
    values = versus_control(sample.matrix.to_numpy(np.float64),
                            base.matrix.to_numpy(np.float64), sample.library_size, options)
    out = pd.DataFrame(values, index=sample.matrix.index, columns=sample.matrix.columns)
    return out, sample.library_size


def _controls(control, samples: list[str]) -> dict[str, object]:
    """``{sample: control}`` from one control for all, one per sample, or a dict."""
    if control is None:
        return {}
    if isinstance(control, dict):
        return dict(control)
    if isinstance(control, (list, tuple)):
        if len(control) == 1:
            return {s: control[0] for s in samples}
        if len(control) != len(samples):
            raise BamcoverError(f"{len(control)} control BAMs for {len(samples)} samples; "
                                "give one for all or one per sample")
        return dict(zip(samples, control, strict=True))
    return {s: control for s in samples}
