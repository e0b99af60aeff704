"""The average profile figure: one line per sample × group, with an s.e.m. or bootstrap band."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import formats, schema
from ..errors import BamcoverError
from .common import (
    COLOURS,
    LINESTYLE,
    axis_marks,
    is_signed,
    kb_axis,
    line_labels,
    new_figure,
    per_base_divisor,
    reference_name,
    resolve,
    value_label_of,
    zero_line,
)

BANDS = (*schema.BANDS, None)


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
    prof, mats = resolve(data)
    body = formats.body_length_of(prof, *(mats or {}).values())
    if band == "ci95" and mats is None:
        raise BamcoverError("band='ci95' bootstraps over regions and needs the per-region "
                            "matrix (bamcover profile --matrix FILE); use band='sem' with a "
                            "profile table")
    units = units or formats.units_of(prof) or "reads"
    fig = ax.figure if ax is not None else new_figure(figsize)
    if ax is None:
        ax = fig.add_subplot()
    keys = list(dict.fromkeys(zip(prof["sample"].astype(str), prof["group"].astype(str),
                                  strict=True)))
    sizes = {key: formats.bin_size_of(part["offset"]) for key, part in
             prof.groupby([prof["sample"].astype(str), prof["group"].astype(str)], sort=False)}
    lo = float(prof["offset"].min())
    hi = float(max(prof.loc[(prof["sample"].astype(str) == s)
                            & (prof["group"].astype(str) == g), "offset"].max() + b
                   for (s, g), b in sizes.items()))
    use_kb = kb_axis(lo, hi, kb)
    div = 1e3 if use_kb else 1.0
    band_of = functools.partial(_band, band, mats, {}, n_boot, seed)
    labels = line_labels(keys)
    for i, key in enumerate(keys):
        _lines(ax, prof, key, COLOURS[i % len(COLOURS)], labels[key], sizes[key],
               per_base_divisor(body, sizes[key], units), div, smooth, band_of)
    ref = reference_name(reference_label, prof, *(mats or {}).values())
    _axes(ax, prof, mats, keys, units, body, ref, (lo, hi), use_kb, band, ylabel)
    if title:
        ax.set_title(title, pad=16)
    return fig


def _band(band: str | None, mats, cubes: dict, n_boot: int, seed: int, key, channel: str,
          rows: pd.DataFrame, mean: np.ndarray, per_base: int):
    """The shaded band of one line: mean ± s.e.m. from the table, or the bootstrap 95 % CI
    over the regions of its matrix; (None, None) for no band."""
    if band == "sem":
        sem = rows["sem"].to_numpy(np.float64) / per_base
        return mean - sem, mean + sem
    if band == "ci95":
        if key not in mats:
            raise BamcoverError(f"no matrix for sample {key[0]!r}, group {key[1]!r}")
        c = cubes.setdefault(key, formats.cube(mats[key]))
        vals = c.values[:, c.channels.index(str(channel)), :] / per_base
        return bootstrap_ci(vals, n_boot=n_boot, seed=seed)
    return None, None


def _lines(ax: Axes, prof: pd.DataFrame, key: tuple[str, str], colour, label: str,
           size: int, per_base: int, div: float, smooth: int | None, band_of) -> None:
    """The lines (one per channel) and bands of one sample × group, at the bins' centres."""
    smp, grp = key
    part = prof[(prof["sample"].astype(str) == smp) & (prof["group"].astype(str) == grp)]
    for ch, rows in part.groupby("channel", sort=False):
        rows = rows.sort_values("offset")
        x = (rows["offset"].to_numpy(np.float64) + (size - 1) / 2) / div
        mean = rows["mean"].to_numpy(np.float64) / per_base
        lower, upper = band_of(key, ch, rows, mean, per_base)
        line = ax.plot(x, _smooth(mean, smooth), color=colour, lw=1.6,
                       ls=LINESTYLE.get(str(ch), "-"),
                       label=label + ("" if ch == "total" else f" {ch}"))[0]
        line.set_gid(f"{smp}\t{grp}\t{ch}")
        if lower is not None:
            ax.fill_between(x, _smooth(lower, smooth), _smooth(upper, smooth),
                            color=colour, alpha=0.22, lw=0)


def _axes(ax: Axes, prof: pd.DataFrame, mats, keys, units: str, body: int | None, ref: str,
          window: tuple[float, float], use_kb: bool, band: str | None,
          ylabel: str | None) -> None:
    """Limits, the reference point (or body) marks, axis labels, the zero line or a floor
    at 0, and the legend."""
    div = 1e3 if use_kb else 1.0
    ax.set_xlim(window[0] / div, window[1] / div)
    for at, name in axis_marks(body, ref):
        ax.axvline(at / div, color="0.45", lw=0.9, ls=":", zorder=0)
        ax.text(at / div, 1.01, name, transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize="small", color="0.3")
    ax.set_xlabel(f"position, body scaled to {body} bp ({'kb' if use_kb else 'bp'})" if body
                  else f"distance from {ref} ({'kb' if use_kb else 'bp'})")
    ax.set_ylabel(ylabel or value_label_of(units, list(dict.fromkeys(s for s, _ in keys)),
                                           prof, *(mats or {}).values()))
    if is_signed(units, prof["mean"].to_numpy(np.float64)):
        zero_line(ax)
    else:
        ax.set_ylim(bottom=0)
    ax.spines[["top", "right"]].set_visible(False)
    note = {"sem": "shaded: ± s.e.m.", "ci95": "shaded: 95% CI (bootstrap)"}.get(band)
    ax.legend(frameon=False, fontsize="small", loc="best", title=note,
              title_fontsize="x-small", alignment="left")
