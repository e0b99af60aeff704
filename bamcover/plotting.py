"""Figures: average profiles and heatmaps from bamcover's tables (never recomputing coverage).

Every function builds a :class:`matplotlib.figure.Figure` with an Agg canvas and never touches
pyplot's global state, so it is safe in notebooks (a Figure displays itself), scripts and
worker processes; nothing is shown, only drawn. :func:`save` writes PNG, PDF or SVG
atomically.

Inputs are anything :func:`bamcover.formats.load` returns or reads (a path), a tidy or wide
profile table, a bamcover matrix, or ``{(sample, group): matrix}``. Coverage is plotted **per
base** (bamcover's bin sums divided by the bin size), i.e. mean read depth, so numbers do not
depend on the bin size and match deepTools' ``plotProfile``/``plotHeatmap``. Control runs are
plotted in their own units: a log2 ratio as it is (it is not a sum over the bin's bases), a
difference per base like coverage; both, and any data with negative values, are *signed*:
heatmaps use a diverging colour map centred on 0.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from . import formats
from .errors import BamcoverError
from .formats import Loaded, Matrices
from .outputs import atomic_path, check_writable

BANDS = ("sem", "ci95", None)
SORTS = ("mean", "keep", "kmeans")
FORMATS = ("png", "pdf", "svg")
_COLOURS = mpl.colormaps["tab10"].colors
#: heatmap colour maps: coverage, and signed data (control runs, negative values) around 0
CMAP, SIGNED_CMAP = "Reds", "RdBu_r"
_LINESTYLE = {"antisense": "--"}


# ----------------------------------------------------------------------------------------
# inputs


def _resolve(data, need_matrices: bool = False) -> tuple[pd.DataFrame | None, Matrices | None]:
    """(tidy profile, matrices) from whatever the caller passed."""
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple))
                                                and data and isinstance(data[0],
                                                                        (str, os.PathLike))):
        data = formats.load(data)
    if isinstance(data, Loaded):
        return data.profile, data.matrices
    if isinstance(data, Mapping):
        mats = formats.as_matrices(data)
        return (None if need_matrices else formats.profile_from_matrices(mats)), mats
    if isinstance(data, pd.DataFrame):
        if "channel" in (data.index.names or []):
            mats = formats.as_matrices(data)
            return (None if need_matrices else formats.profile_from_matrices(mats)), mats
        if {"sample", "group", "channel", "offset", "mean"} <= set(data.columns):
            return data, None
        if {"sample", "group", "region", "channel", "offset", "value"} <= set(data.columns):
            mats = formats.matrices_from_tidy(data)
            return formats.profile_from_matrices(mats), mats
        return formats.tidy_profile(data), None
    raise BamcoverError(f"cannot plot a {type(data).__name__}: give a path, a profile or "
                        "matrix table, or a dict {(sample, group): matrix}")


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _use_kb(lo: float, hi: float, kb: bool | None) -> bool:
    """kb when asked, or (auto) when the window is wider than 4 kb."""
    return bool(kb) if kb is not None else (hi - lo) > 4000


def _unit_label(units: str | None) -> str | None:
    return units if units in ("reads", "CPM") else None


def _per_base(body: int | None, bin_size: int, units: str | None) -> int:
    """What a bin's value is divided by for per-base values: its bases, for the sums of
    reference-point data; 1 for scale-regions bins, which already hold per-base means, and
    for log2 ratios, which are not sums."""
    return 1 if body or not formats.summed(units) else bin_size


def _signed(units: str | None, values: np.ndarray) -> bool:
    """Data drawn around 0: a control run's log2 ratio or difference, or negative values."""
    return units in formats.CONTROL_UNITS or bool(np.nanmin(values, initial=0) < 0)


def _value_label(units: str | None, samples: Sequence[str], *frames) -> str:
    """What the values are, for the y axis and the colour bar: ``"mean coverage (reads)"``,
    or for a control run ``"log2(ChIP/input)"`` / ``"difference (ChIP − input)"`` with the
    sample and control labels the data record (``"sample"`` for several samples with one
    control), else ``"log2 ratio"`` / ``"difference (sample − control)"``."""
    if units not in formats.CONTROL_UNITS:
        unit = _unit_label(units)
        return f"mean coverage ({unit})" if unit else "mean signal"
    controls: dict[str, str] = {}
    for f in frames:
        if f is not None:
            controls.update(f.attrs.get(formats.CONTROLS) or {})
    known = {controls.get(s) for s in samples}
    pair = None
    if len(samples) == 1 and len(controls) == 1:    # also a file named m.parquet: its run's
        pair = next(iter(controls.items()))         # sample and control
    elif len(known) == 1 and None not in known:
        pair = (samples[0] if len(samples) == 1 else "sample", known.pop())
    if units == formats.LOG2_RATIO:
        return f"log2({pair[0]}/{pair[1]})" if pair else "log2 ratio"
    return "difference ({} − {})".format(*(pair or ("sample", "control")))


def _zero_line(ax: Axes) -> None:
    ax.axhline(0, color="0.45", lw=0.8, zorder=0)


def _marks(body: int | None, ref: str) -> list[tuple[int, str]]:
    """Offsets marked on the x axis: the reference point, or a scaled body's two ends."""
    return [(0, "start"), (body, "end")] if body else [(0, ref)]


def _reference_label(label: str | None, *frames) -> str:
    if label:
        return label
    for f in frames:
        if f is not None and f.attrs.get("reference_point"):
            return str(f.attrs["reference_point"])
    return "reference point"


def _line_labels(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    samples = {s for s, _ in keys}
    groups = {g for _, g in keys}
    out = {}
    for s, g in keys:
        if len(samples) > 1 and len(groups) > 1:
            out[(s, g)] = f"{s} · {g}"
        elif len(groups) > 1:
            out[(s, g)] = g
        else:
            out[(s, g)] = s
    return out


# ----------------------------------------------------------------------------------------
# statistics


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap confidence interval of the per-bin mean over regions.

    ``values`` is regions × bins (NaN = no data, skipped as in the profile's mean). Regions
    are resampled with replacement ``n_boot`` times (``numpy.random.default_rng(seed)``, so
    the result is reproducible); returns the (lower, upper) percentiles per bin.
    """
    values = np.asarray(values, dtype=np.float64)
    nreg, nbins = values.shape
    if nreg == 0:
        return np.full(nbins, np.nan), np.full(nbins, np.nan)
    rng = np.random.default_rng(seed)
    valid = ~np.isnan(values)
    x = np.where(valid, values, 0.0)
    w = valid.astype(np.float64)
    means = np.empty((n_boot, nbins))
    batch = max(1, min(n_boot, 4_000_000 // nreg))
    p = np.full(nreg, 1.0 / nreg)
    for start in range(0, n_boot, batch):
        b = min(batch, n_boot - start)
        counts = rng.multinomial(nreg, p, size=b).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start:start + b] = (counts @ x) / (counts @ w)
    tail = (1 - level) / 2 * 100
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanpercentile(means, [tail, 100 - tail], axis=0)
    return lo, hi


def _smooth(y: np.ndarray, window: int | None) -> np.ndarray:
    if not window or window <= 1:
        return y
    return pd.Series(y).rolling(int(window), center=True, min_periods=1).mean().to_numpy()


def kmeans(features: np.ndarray, k: int, seed: int = 0, n_init: int = 4,
           max_iter: int = 300) -> np.ndarray:
    """k-means (k-means++ starts, Lloyd iterations, best of ``n_init``) on rows of
    ``features`` (NaN counts as 0); deterministic for a given ``seed``. Returns labels 0…k-1
    (fewer when there are fewer distinct rows)."""
    x = np.nan_to_num(np.asarray(features, dtype=np.float64))
    n = len(x)
    k = max(1, min(int(k), len(np.unique(x, axis=0)) if n else 1))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sq = np.einsum("ij,ij->i", x, x)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        centres = [x[rng.integers(n)]]
        d2 = np.maximum(sq - 2 * x @ centres[0] + centres[0] @ centres[0], 0)
        for _ in range(1, k):
            total = d2.sum()
            i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
            centres.append(x[i])
            d2 = np.minimum(d2, np.maximum(sq - 2 * x @ x[i] + x[i] @ x[i], 0))
        c = np.array(centres)
        labels = np.full(n, -1)
        for _ in range(max_iter):
            dist = sq[:, None] - 2 * x @ c.T + np.einsum("ij,ij->i", c, c)[None]
            new = np.argmin(dist, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = labels == j
                c[j] = x[members].mean(axis=0) if members.any() else x[rng.integers(n)]
        inertia = float(np.min(dist, axis=1).sum())
        if inertia < best_inertia:
            best, best_inertia = labels.copy(), inertia
    _, best = np.unique(best, return_inverse=True)
    return best


# ----------------------------------------------------------------------------------------
# profile plot


def profile(data, *, ax: Axes | None = None, band: str | None = "sem", n_boot: int = 1000,
            seed: int = 0, smooth: int | None = None, reference_label: str | None = None,
            kb: bool | None = None, title: str | None = None, units: str | None = None,
            ylabel: str | None = None, figsize: tuple[float, float] = (6.4, 4.2)) -> Figure:
    """Average coverage profile: one line per sample × group (per-base mean coverage).

    Parameters
    ----------
    data
        A path (see :func:`bamcover.formats.load`), a :class:`~bamcover.formats.Loaded`, a
        tidy or wide profile, a matrix or ``{(sample, group): matrix}``.
    ax
        Draw into this Axes (its Figure is returned) instead of a new Figure.
    band
        ``"sem"``: mean ± standard error from the profile table; ``"ci95"``: percentile
        bootstrap 95 % interval of the mean over regions (needs matrices; ``n_boot``
        resamples with ``numpy.random.default_rng(seed)``); None: no band.
    smooth
        Rolling-mean window in bins (centred), applied to the line and its band.
    reference_label
        Name of offset 0 (``"summit"``, ``"TSS"``…); default from the data, else
        ``"reference point"``. A dotted vertical line marks it.
    kb
        x axis in kb (True) or bp (False); default kb when the window is wider than 4 kb.
    units
        ``"reads"``, ``"CPM"``, ``"log2 ratio"`` or ``"difference"``; default from the data
        (``"reads"`` unless it says it was normalised or is a control run; ``"signal"`` for
        deepTools matrices of unknown unit). A log2 ratio is drawn as it is, not per base,
        labelled ``log2(<sample>/<control>)``; signed data get a line at 0.

    Strand-wise data: ``sense`` solid, ``antisense`` dashed, same colour per sample × group.
    Each bin's value is drawn at the bin's centre; the x axis spans the whole window.
    """
    if band not in BANDS:
        raise BamcoverError(f"band {band!r}: expected one of {BANDS}")
    prof, mats = _resolve(data)
    body = formats.body_length_of(prof, *(mats or {}).values())
    if band == "ci95" and mats is None:
        raise BamcoverError("band='ci95' bootstraps over regions and needs the per-region "
                            "matrix (bamcover profile --matrix FILE); use band='sem' with a "
                            "profile table")
    units = units or formats.units_of(prof) or "reads"
    fig = ax.figure if ax is not None else _figure(figsize)
    if ax is None:
        ax = fig.add_subplot()
    keys = list(dict.fromkeys(zip(prof["sample"].astype(str), prof["group"].astype(str),
                                  strict=True)))
    labels = _line_labels(keys)
    sizes = {key: formats.bin_size_of(part["offset"]) for key, part in
             prof.groupby([prof["sample"].astype(str), prof["group"].astype(str)], sort=False)}
    lo_all = float(prof["offset"].min())
    hi_all = float(max(prof.loc[(prof["sample"].astype(str) == s)
                                & (prof["group"].astype(str) == g), "offset"].max() + b
                       for (s, g), b in sizes.items()))
    use_kb = _use_kb(lo_all, hi_all, kb)
    div = 1e3 if use_kb else 1.0
    cubes = {}
    for i, (smp, grp) in enumerate(keys):
        colour = _COLOURS[i % len(_COLOURS)]
        part = prof[(prof["sample"].astype(str) == smp) & (prof["group"].astype(str) == grp)]
        size = sizes[(smp, grp)]
        per_base = _per_base(body, size, units)
        for ch, rows in part.groupby("channel", sort=False):
            rows = rows.sort_values("offset")
            x = (rows["offset"].to_numpy(np.float64) + (size - 1) / 2) / div
            mean = rows["mean"].to_numpy(np.float64) / per_base
            lower = upper = None
            if band == "sem":
                sem = rows["sem"].to_numpy(np.float64) / per_base
                lower, upper = mean - sem, mean + sem
            elif band == "ci95":
                if (smp, grp) not in mats:
                    raise BamcoverError(f"no matrix for sample {smp!r}, group {grp!r}")
                c = cubes.setdefault((smp, grp), formats.cube(mats[(smp, grp)]))
                vals = c.values[:, c.channels.index(str(ch)), :] / per_base
                lower, upper = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
            label = labels[(smp, grp)] + ("" if ch == "total" else f" {ch}")
            line = ax.plot(x, _smooth(mean, smooth), color=colour, lw=1.6,
                           ls=_LINESTYLE.get(str(ch), "-"), label=label)[0]
            line.set_gid(f"{smp}\t{grp}\t{ch}")
            if lower is not None:
                ax.fill_between(x, _smooth(lower, smooth), _smooth(upper, smooth),
                                color=colour, alpha=0.22, lw=0)
    ref = _reference_label(reference_label, prof, *(mats or {}).values())
    ax.set_xlim(lo_all / div, hi_all / div)
    for at, name in _marks(body, ref):
        ax.axvline(at / div, color="0.45", lw=0.9, ls=":", zorder=0)
        ax.text(at / div, 1.01, name, transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize="small", color="0.3")
    ax.set_xlabel(f"position, body scaled to {body} bp ({'kb' if use_kb else 'bp'})" if body
                  else f"distance from {ref} ({'kb' if use_kb else 'bp'})")
    ax.set_ylabel(ylabel or _value_label(units, list(dict.fromkeys(s for s, _ in keys)),
                                         prof, *(mats or {}).values()))
    means = prof["mean"].to_numpy(np.float64)
    if _signed(units, means):
        _zero_line(ax)
    else:
        ax.set_ylim(bottom=0)
    ax.spines[["top", "right"]].set_visible(False)
    note = {"sem": "shaded: ± s.e.m.", "ci95": "shaded: 95% CI (bootstrap)"}.get(band)
    ax.legend(frameon=False, fontsize="small", loc="best", title=note,
              title_fontsize="x-small", alignment="left")
    if title:
        ax.set_title(title, pad=16)
    return fig


# ----------------------------------------------------------------------------------------
# heatmap


def row_order(data, *, sort: str = "mean", k: int = 3, seed: int = 0,
              sort_using: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The order in which :func:`heatmap` draws regions, top to bottom, and their clusters.

    Regions of each group are ordered the same way in every sample's panel:

    * ``"keep"``: input order;
    * ``"mean"``: by mean per-base coverage over the window, descending, **averaged over all
      samples and channels** (as deepTools' ``--sortUsingSamples`` default) or over the
      samples in ``sort_using``; regions without data go last, ties keep input order;
    * ``"kmeans"``: k-means (:func:`kmeans`, fixed ``seed``) on the per-base coverage of all
      (or the ``sort_using``) samples' bins side by side; clusters numbered by their mean
      coverage, strongest first, regions within a cluster sorted as with ``"mean"``.
      Clustering runs within each group.

    Returns a DataFrame: ``group, block, cluster, region`` (row within its group's matrix),
    ``chrom, start, end, name, strand``; ``block`` is the label drawn for the row's block.
    """
    if sort not in SORTS:
        raise BamcoverError(f"sort {sort!r}: expected one of {SORTS}")
    _, mats = _resolve(data, need_matrices=True)
    if not mats:
        raise BamcoverError("a heatmap needs per-region matrices (bamcover profile --matrix)")
    body = formats.body_length_of(*mats.values())
    units = formats.units_of(next(iter(mats.values())))
    samples, groups, cubes = formats.aligned_cubes(mats)
    using = [sort_using] if isinstance(sort_using, str) else (
        list(sort_using) if sort_using else samples)
    unknown = [s for s in using if s not in samples]
    if unknown:
        raise BamcoverError(f"sort_using {unknown}: not among the samples {samples}")
    parts = []
    for g in groups:
        # bin sums (integers for counts) summed exactly, then divided: equal totals tie
        # exactly and keep input order
        parts_g = [cubes[(s, g)] for s in using]
        sums = np.concatenate([c.values.reshape(len(c.regions), -1) for c in parts_g], axis=1)
        sizes = np.concatenate([np.full(c.values.shape[1] * c.values.shape[2],
                                        _per_base(body, c.bin_size, units),
                                        dtype=np.float64)
                                for c in parts_g])
        feats = sums / sizes
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.nansum(sums, axis=1) / (~np.isnan(sums) * sizes).sum(axis=1)
        score = np.where(np.isfinite(score), score, -np.inf)
        n = len(score)
        cluster = np.zeros(n, dtype=np.int64)
        if sort == "keep":
            order = np.arange(n)
        elif sort == "mean":
            order = np.argsort(-score, kind="stable")
        else:
            raw = kmeans(feats, k, seed=seed)
            finite = np.where(np.isfinite(score), score, 0.0)
            strength = [finite[raw == j].mean() for j in range(raw.max() + 1)]
            rank = np.argsort(-np.asarray(strength), kind="stable")
            cluster = np.argsort(rank)[raw]
            order = np.lexsort((np.arange(n), -score, cluster))
        regs = cubes[(samples[0], g)].regions
        if sort == "kmeans":
            prefix = f"{g} · " if len(groups) > 1 else ""
            block = [f"{prefix}cluster {c + 1}" for c in cluster[order]]
        else:
            block = [g] * n
        parts.append(pd.DataFrame({
            "group": g, "block": block, "cluster": cluster[order] + (sort == "kmeans"),
            "region": order, "chrom": regs["chrom"].to_numpy()[order],
            "start": regs["start"].to_numpy()[order], "end": regs["end"].to_numpy()[order],
            "name": regs["name"].to_numpy()[order], "strand": regs["strand"].to_numpy()[order],
        }))
    return pd.concat(parts, ignore_index=True)


def heatmap(data, *, sort: str = "mean", k: int = 3, seed: int = 0,
            sort_using: str | Sequence[str] | None = None, shared_scale: bool = True,
            vmin: float | None = None, vmax: float | None = None,
            percentiles: tuple[float, float] = (1, 99), cmap: str | None = None,
            profile_on_top: bool = True, reference_label: str | None = None,
            kb: bool | None = None, title: str | None = None, units: str | None = None,
            figsize: tuple[float, float] | None = None) -> Figure:
    """Per-region heatmaps, one panel per sample (and channel), regions in the same order
    in every panel (see :func:`row_order` for ``sort``, ``k``, ``seed``, ``sort_using``).

    Groups (and k-means clusters) are stacked top to bottom, separated by black lines and
    labelled on the left with their size, in the colour of their mean profile. Colour =
    per-base coverage; NaN (bins beyond a chromosome end, regions without data) is grey.
    With ``shared_scale`` (default) all panels share one colour scale (one colour bar on the
    right) and the profiles above share their y axis; otherwise each panel has its own scale
    and colour bar. ``vmin``/``vmax`` default to the ``percentiles`` of the values shown
    (pooled over panels when shared); ``cmap`` to ``"Reds"``. Signed data (a control run's
    log2 ratio or difference, or any negative value) default to ``"RdBu_r"`` on limits
    symmetric around 0, ± the larger magnitude of the two percentiles, so that 0 is the
    map's middle colour. ``profile_on_top`` draws each block's mean profile
    above its panel. Each panel's Axes is labelled ``"heatmap\t<sample>\t<channel>"`` (profiles
    ``"profile\t…"``, colour bars ``"colorbar"``) for programmatic access.
    """
    if cmap is not None and cmap not in mpl.colormaps:
        raise BamcoverError(f"unknown colour map {cmap!r} (matplotlib names, e.g. Reds, "
                            "viridis, magma_r, RdYlBu_r)")
    prof, mats = _resolve(data, need_matrices=True)
    if not mats:
        raise BamcoverError("a heatmap needs per-region matrices (bamcover profile --matrix)")
    order = row_order(mats, sort=sort, k=k, seed=seed, sort_using=sort_using)
    body = formats.body_length_of(*mats.values())
    samples, groups, cubes = formats.aligned_cubes(mats)
    units = units or formats.units_of(next(iter(mats.values()))) or \
        (formats.units_of(prof) if prof is not None else None) or "reads"
    panels = [(s, ch) for s in samples for ch in cubes[(s, groups[0])].channels]
    offsets = cubes[(samples[0], groups[0])].offsets
    size = formats.bin_size_of(offsets)
    lo, hi = float(offsets[0]), float(offsets[-1] + size)
    use_kb = _use_kb(lo, hi, kb)
    div = 1e3 if use_kb else 1.0

    images = []
    for s, ch in panels:
        rows = []
        for g in groups:
            c = cubes[(s, g)]
            idx = order.loc[order["group"] == g, "region"].to_numpy()
            rows.append(c.values[idx, c.channels.index(ch), :]
                        / _per_base(body, c.bin_size, units))
        images.append(np.concatenate(rows, axis=0))
    signed = _signed(units, np.concatenate([img.ravel() for img in images]))
    blocks = [(b, int((order["block"] == b).sum())) for b in dict.fromkeys(order["block"])]
    bounds = np.cumsum([0] + [n for _, n in blocks])

    def limits(values: list[np.ndarray]) -> tuple[float, float]:
        pooled = np.concatenate([v[~np.isnan(v)] for v in values]) if values else np.zeros(0)
        if signed and vmin is None and vmax is None:     # 0 in the middle of the map
            m = float(np.abs(np.percentile(pooled, percentiles)).max()) if pooled.size else 0
            return (-m, m) if m > 0 else (-1.0, 1.0)
        a = vmin if vmin is not None else (float(np.percentile(pooled, percentiles[0]))
                                           if pooled.size else 0.0)
        b = vmax if vmax is not None else (float(np.percentile(pooled, percentiles[1]))
                                           if pooled.size else 1.0)
        return (a, b if b > a else a + 1.0)

    npanel = len(panels)
    width = figsize[0] if figsize else 1.3 + 2.2 * npanel + (0.9 if shared_scale else 0)
    height = figsize[1] if figsize else (9.0 if profile_on_top else 7.5) + \
        (0 if shared_scale else 0.6)
    fig = _figure((width, height))
    fig.get_layout_engine().set(wspace=0.05)
    nrows = (2 if profile_on_top else 1) + (0 if shared_scale else 1)
    heights = ([1.6] if profile_on_top else []) + [7.0] + ([0.18] if not shared_scale else [])
    ncols = npanel + (1 if shared_scale else 0)
    widths = [1.0] * npanel + ([0.07] if shared_scale else [])
    grid = fig.add_gridspec(nrows, ncols, height_ratios=heights, width_ratios=widths)
    hrow = 1 if profile_on_top else 0
    cmap_obj = mpl.colormaps[cmap or (SIGNED_CMAP if signed else CMAP)].with_extremes(
        bad="0.82")
    shared_limits = limits(images) if shared_scale else None
    block_colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(blocks))] \
        if len(blocks) > 1 else ["0.15"]
    ref = _reference_label(reference_label, *mats.values())
    unit = _unit_label(units)
    value_label = _value_label(units, samples, prof, *mats.values())
    bar_label = value_label.removeprefix("mean ")
    first_prof = None
    for p, ((s, ch), img) in enumerate(zip(panels, images, strict=True)):
        ax = fig.add_subplot(grid[hrow, p])
        ax.set_label(f"heatmap\t{s}\t{ch}")
        a, b = shared_limits or limits([img])
        im = ax.imshow(img, aspect="auto", cmap=cmap_obj, norm=Normalize(a, b),
                       interpolation="nearest" if len(img) <= 2000 else "antialiased",
                       extent=(lo / div, hi / div, len(img), 0))
        im.set_label(f"{s}\t{ch}")
        for y in bounds[1:-1]:
            ax.axhline(y, color="black", lw=0.9)
        marks = _marks(body, ref)
        ax.set_xticks([lo / div, *(at / div for at, _ in marks), hi / div],
                      [_fmt_pos(lo, use_kb), *(name for _, name in marks),
                       _fmt_pos(hi - (body or 0), use_kb)])
        ax.tick_params(axis="x", labelsize="small")
        edge = ax.get_xticklabels()
        edge[0].set_horizontalalignment("left")     # keep the window's ends inside the panel
        edge[-1].set_horizontalalignment("right")   # so neighbouring panels never touch
        ax.set_xlim(lo / div, hi / div)
        if p == 0:
            if len(blocks) > 1:
                centres = (bounds[:-1] + bounds[1:]) / 2
                ax.set_yticks(centres, [f"{b_}\n(n={n})" for b_, n in blocks],
                              fontsize="small")
                ax.tick_params(axis="y", length=0)
                for text, colour in zip(ax.get_yticklabels(), block_colours, strict=True):
                    text.set_color(colour)      # the colour of the block's profile line
            else:
                ax.set_yticks([])
                ax.set_ylabel(f"{blocks[0][0]} ({len(img)} regions)")
        else:
            ax.set_yticks([])
        name = s if ch == "total" else f"{s} {ch}"
        top = ax
        if profile_on_top:
            pax = fig.add_subplot(grid[0, p], sharex=ax,
                                  sharey=first_prof if (first_prof is not None and shared_scale)
                                  else None)
            pax.set_label(f"profile\t{s}\t{ch}")
            x = (offsets + (size - 1) / 2) / div
            for (bname, _), colour, a0, a1 in zip(blocks, block_colours, bounds[:-1],
                                                   bounds[1:], strict=True):
                with np.errstate(invalid="ignore"):
                    y = np.nanmean(img[a0:a1], axis=0) if a1 > a0 else np.full(len(x), np.nan)
                pax.plot(x, y, color=colour, lw=1.4, label=bname)
            for at, _ in marks:
                pax.axvline(at / div, color="0.45", lw=0.8, ls=":", zorder=0)
            pax.tick_params(axis="x", labelbottom=False)
            pax.spines[["top", "right"]].set_visible(False)
            if signed:
                _zero_line(pax)
            else:
                pax.set_ylim(bottom=0)
            if p == 0:
                pax.set_ylabel(f"mean coverage\n({unit})" if unit else value_label,
                               fontsize="small")
                first_prof = pax
            elif shared_scale:
                pax.tick_params(axis="y", labelleft=False)
            top = pax
        top.set_title(name, fontsize="medium")
        if not shared_scale:
            cax = fig.add_subplot(grid[nrows - 1, p])
            cax.set_label("colorbar")
            bar = fig.colorbar(im, cax=cax, orientation="horizontal")
            bar.set_label(bar_label, fontsize="small")
            cax.tick_params(labelsize="x-small")
        elif p == npanel - 1:
            cax = fig.add_subplot(grid[hrow, npanel])
            cax.set_label("colorbar")
            bar = fig.colorbar(im, cax=cax)
            bar.set_label(bar_label)
    if title:
        fig.suptitle(title)
    return fig


def _fmt_pos(value: float, kb: bool) -> str:
    text = f"{abs(value) / 1000:g} kb" if kb else f"{abs(value):g} bp"
    return f"−{text}" if value < 0 else (f"+{text}" if value > 0 else text)


# ----------------------------------------------------------------------------------------
# saving


def check_figure_path(path: str | os.PathLike) -> str:
    """The figure format of ``path`` (``png``, ``pdf`` or ``svg``, from its suffix); raises
    :class:`BamcoverError` for another suffix or an unwritable path, before any work."""
    path = os.fspath(path)
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise BamcoverError(f"{path}: unknown figure format {fmt!r}; use .png, .pdf or .svg")
    check_writable(path)
    return fmt


def save(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> None:
    """Write ``fig`` as PNG, PDF or SVG (by the suffix of ``path``), atomically (a temporary
    file renamed into place), with no creation date so reruns give identical PDF/SVG."""
    path = os.fspath(path)
    fmt = check_figure_path(path)
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt)
    with atomic_path(path) as tmp, mpl.rc_context({"svg.hashsalt": "bamcover"}):
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
