"""Heatmaps of per-region matrices: row order (mean, input order, k-means) and the figure."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .. import formats, schema
from ..errors import BamcoverError
from .common import (
    CMAP,
    COLOURS,
    SIGNED_CMAP,
    axis_marks,
    fmt_pos,
    is_signed,
    kb_axis,
    new_figure,
    per_base_divisor,
    reference_name,
    resolve,
    unit_label,
    value_label_of,
    zero_line,
)

SORTS = schema.SORTS


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
    _, mats = resolve(data, need_matrices=True)
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
                                        per_base_divisor(body, c.bin_size, units),
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
    prof, mats = resolve(data, need_matrices=True)
    if not mats:
        raise BamcoverError("a heatmap needs per-region matrices (bamcover profile --matrix)")
    order = row_order(mats, sort=sort, k=k, seed=seed, sort_using=sort_using)
    v = _view(prof, mats, order, units, kb)
    limits = functools.partial(_limits, signed=v.signed, vmin=vmin, vmax=vmax,
                               percentiles=percentiles)
    fig, grid, hrow, nrows = _layout(len(v.panels), shared_scale, profile_on_top, figsize)
    cmap_obj = mpl.colormaps[cmap or (SIGNED_CMAP if v.signed else CMAP)].with_extremes(
        bad="0.82")
    shared_limits = limits(v.images) if shared_scale else None
    colours = [COLOURS[i % len(COLOURS)] for i in range(len(v.blocks))] \
        if len(v.blocks) > 1 else ["0.15"]
    ref = reference_name(reference_label, *mats.values())
    label = value_label_of(v.units, v.samples, prof, *mats.values())
    first_prof = None
    for p, ((s, ch), img) in enumerate(zip(v.panels, v.images, strict=True)):
        ax = fig.add_subplot(grid[hrow, p])
        im = _panel(ax, v, s, ch, img, shared_limits or limits([img]), cmap_obj, ref)
        if p == 0:
            _block_labels(ax, v, colours, len(img))
        else:
            ax.set_yticks([])
        top = ax
        if profile_on_top:
            pax = fig.add_subplot(grid[0, p], sharex=ax,
                                  sharey=first_prof if (first_prof is not None and shared_scale)
                                  else None)
            _block_profiles(pax, v, s, ch, img, colours, ref)
            if p == 0:
                unit = unit_label(v.units)
                pax.set_ylabel(f"mean coverage\n({unit})" if unit else label, fontsize="small")
                first_prof = pax
            elif shared_scale:
                pax.tick_params(axis="y", labelleft=False)
            top = pax
        top.set_title(s if ch == "total" else f"{s} {ch}", fontsize="medium")
        if not shared_scale:
            _colour_bar(fig, im, grid[nrows - 1, p], label.removeprefix("mean "), True)
        elif p == len(v.panels) - 1:
            _colour_bar(fig, im, grid[hrow, len(v.panels)], label.removeprefix("mean "), False)
    if title:
        fig.suptitle(title)
    return fig


@dataclass
class _View:
    """What the panels show: the images (regions in drawing order × bins, per-base values)
    and the window, blocks and units they share."""

    samples: list[str]
    panels: list[tuple[str, str]]
    images: list[np.ndarray]
    offsets: np.ndarray
    size: int
    lo: float
    hi: float
    kb: bool
    body: int | None
    units: str
    signed: bool
    blocks: list[tuple[str, int]]
    bounds: np.ndarray

    @property
    def div(self) -> float:
        return 1e3 if self.kb else 1.0


def _view(prof, mats, order: pd.DataFrame, units: str | None, kb: bool | None) -> _View:
    """Gather each panel's rows in ``order`` (groups stacked), as per-base values."""
    body = formats.body_length_of(*mats.values())
    samples, groups, cubes = formats.aligned_cubes(mats)
    units = units or formats.units_of(next(iter(mats.values()))) or \
        (formats.units_of(prof) if prof is not None else None) or "reads"
    panels = [(s, ch) for s in samples for ch in cubes[(s, groups[0])].channels]
    offsets = cubes[(samples[0], groups[0])].offsets
    size = formats.bin_size_of(offsets)
    lo, hi = float(offsets[0]), float(offsets[-1] + size)
    images = []
    for s, ch in panels:
        rows = []
        for g in groups:
            c = cubes[(s, g)]
            idx = order.loc[order["group"] == g, "region"].to_numpy()
            rows.append(c.values[idx, c.channels.index(ch), :]
                        / per_base_divisor(body, c.bin_size, units))
        images.append(np.concatenate(rows, axis=0))
    signed = is_signed(units, np.concatenate([img.ravel() for img in images]))
    blocks = [(b, int((order["block"] == b).sum())) for b in dict.fromkeys(order["block"])]
    return _View(samples, panels, images, offsets, size, lo, hi, kb_axis(lo, hi, kb), body,
                 units, signed, blocks, np.cumsum([0] + [n for _, n in blocks]))


def _limits(values: list[np.ndarray], *, signed: bool, vmin: float | None,
            vmax: float | None, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Colour limits: the given ones, else the percentiles of the values shown; signed data
    symmetric around 0 (± the larger magnitude), so 0 is the map's middle colour."""
    pooled = np.concatenate([v[~np.isnan(v)] for v in values]) if values else np.zeros(0)
    if signed and vmin is None and vmax is None:
        m = float(np.abs(np.percentile(pooled, percentiles)).max()) if pooled.size else 0
        return (-m, m) if m > 0 else (-1.0, 1.0)
    a = vmin if vmin is not None else (float(np.percentile(pooled, percentiles[0]))
                                       if pooled.size else 0.0)
    b = vmax if vmax is not None else (float(np.percentile(pooled, percentiles[1]))
                                       if pooled.size else 1.0)
    return (a, b if b > a else a + 1.0)


def _layout(npanel: int, shared_scale: bool, profile_on_top: bool,
            figsize: tuple[float, float] | None):
    """The figure and its grid: profiles (optional) over heatmaps, colour bars beside
    (shared scale) or below (one per panel). Returns (fig, grid, heatmap row, rows)."""
    width = figsize[0] if figsize else 1.3 + 2.2 * npanel + (0.9 if shared_scale else 0)
    height = figsize[1] if figsize else (9.0 if profile_on_top else 7.5) + \
        (0 if shared_scale else 0.6)
    fig = new_figure((width, height))
    fig.get_layout_engine().set(wspace=0.05)
    nrows = (2 if profile_on_top else 1) + (0 if shared_scale else 1)
    heights = ([1.6] if profile_on_top else []) + [7.0] + ([0.18] if not shared_scale else [])
    ncols = npanel + (1 if shared_scale else 0)
    widths = [1.0] * npanel + ([0.07] if shared_scale else [])
    grid = fig.add_gridspec(nrows, ncols, height_ratios=heights, width_ratios=widths)
    return fig, grid, 1 if profile_on_top else 0, nrows


def _panel(ax, v: _View, sample: str, channel: str, img: np.ndarray,
           limits: tuple[float, float], cmap, ref: str):
    """One heatmap: the image, block separators and the window's ticks; returns the image."""
    ax.set_label(f"heatmap\t{sample}\t{channel}")
    im = ax.imshow(img, aspect="auto", cmap=cmap, norm=Normalize(*limits),
                   interpolation="nearest" if len(img) <= 2000 else "antialiased",
                   extent=(v.lo / v.div, v.hi / v.div, len(img), 0))
    im.set_label(f"{sample}\t{channel}")
    for y in v.bounds[1:-1]:
        ax.axhline(y, color="black", lw=0.9)
    marks = axis_marks(v.body, ref)
    ax.set_xticks([v.lo / v.div, *(at / v.div for at, _ in marks), v.hi / v.div],
                  [fmt_pos(v.lo, v.kb), *(name for _, name in marks),
                   fmt_pos(v.hi - (v.body or 0), v.kb)])
    ax.tick_params(axis="x", labelsize="small")
    edge = ax.get_xticklabels()
    edge[0].set_horizontalalignment("left")     # keep the window's ends inside the panel
    edge[-1].set_horizontalalignment("right")   # so neighbouring panels never touch
    ax.set_xlim(v.lo / v.div, v.hi / v.div)
    return im


def _block_labels(ax, v: _View, colours: list, nrows: int) -> None:
    """The first panel's y axis: each block's name and size, in its profile's colour."""
    if len(v.blocks) > 1:
        centres = (v.bounds[:-1] + v.bounds[1:]) / 2
        ax.set_yticks(centres, [f"{b}\n(n={n})" for b, n in v.blocks], fontsize="small")
        ax.tick_params(axis="y", length=0)
        for text, colour in zip(ax.get_yticklabels(), colours, strict=True):
            text.set_color(colour)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{v.blocks[0][0]} ({nrows} regions)")


def _block_profiles(pax, v: _View, sample: str, channel: str, img: np.ndarray,
                    colours: list, ref: str) -> None:
    """Each block's mean profile above its heatmap panel."""
    pax.set_label(f"profile\t{sample}\t{channel}")
    x = (v.offsets + (v.size - 1) / 2) / v.div
    for (name, _), colour, a0, a1 in zip(v.blocks, colours, v.bounds[:-1], v.bounds[1:],
                                         strict=True):
        with np.errstate(invalid="ignore"):
            y = np.nanmean(img[a0:a1], axis=0) if a1 > a0 else np.full(len(x), np.nan)
        pax.plot(x, y, color=colour, lw=1.4, label=name)
    for at, _ in axis_marks(v.body, ref):
        pax.axvline(at / v.div, color="0.45", lw=0.8, ls=":", zorder=0)
    pax.tick_params(axis="x", labelbottom=False)
    pax.spines[["top", "right"]].set_visible(False)
    if v.signed:
        zero_line(pax)
    else:
        pax.set_ylim(bottom=0)


def _colour_bar(fig, im, where, label: str, horizontal: bool) -> None:
    cax = fig.add_subplot(where)
    cax.set_label("colorbar")
    bar = fig.colorbar(im, cax=cax, **({"orientation": "horizontal"} if horizontal else {}))
    if horizontal:
        bar.set_label(label, fontsize="small")
        cax.tick_params(labelsize="x-small")
    else:
        bar.set_label(label)
