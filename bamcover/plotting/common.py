"""What the figures share: reading what to plot, axes in bp or kb, what a value is and how
it is labelled (units, control runs, signed data), and the look (colours, line styles)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import formats
from ..errors import BamcoverError
from ..formats import Loaded, Matrices

COLOURS = mpl.colormaps["tab10"].colors
#: heatmap colour maps: coverage, and signed data (control runs, negative values) around 0
CMAP, SIGNED_CMAP = "Reds", "RdBu_r"
LINESTYLE = {"antisense": "--"}


def resolve(data, need_matrices: bool = False) -> tuple[pd.DataFrame | None, Matrices | None]:
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


def new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def kb_axis(lo: float, hi: float, kb: bool | None) -> bool:
    """kb when asked, or (auto) when the window is wider than 4 kb."""
    return bool(kb) if kb is not None else (hi - lo) > 4000


def unit_label(units: str | None) -> str | None:
    return units if units in ("reads", "CPM") else None


def per_base_divisor(body: int | None, bin_size: int, units: str | None) -> int:
    """What a bin's value is divided by for per-base values: its bases, for the sums of
    reference-point data; 1 for scale-regions bins, which already hold per-base means, and
    for log2 ratios, which are not sums."""
    return 1 if body or not formats.summed(units) else bin_size


def is_signed(units: str | None, values: np.ndarray) -> bool:
    """Data drawn around 0: a control run's log2 ratio or difference, or negative values."""
    return units in formats.CONTROL_UNITS or bool(np.nanmin(values, initial=0) < 0)


def value_label_of(units: str | None, samples: Sequence[str], *frames) -> str:
    """What the values are, for the y axis and the colour bar: ``"mean coverage (reads)"``,
    or for a control run ``"log2(ChIP/input)"`` / ``"difference (ChIP − input)"`` with the
    sample and control labels the data record (``"sample"`` for several samples with one
    control), else ``"log2 ratio"`` / ``"difference (sample − control)"``."""
    if units not in formats.CONTROL_UNITS:
        unit = unit_label(units)
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


def zero_line(ax: Axes) -> None:
    ax.axhline(0, color="0.45", lw=0.8, zorder=0)


def axis_marks(body: int | None, ref: str) -> list[tuple[int, str]]:
    """Offsets marked on the x axis: the reference point, or a scaled body's two ends."""
    return [(0, "start"), (body, "end")] if body else [(0, ref)]


def reference_name(label: str | None, *frames) -> str:
    if label:
        return label
    for f in frames:
        if f is not None and f.attrs.get("reference_point"):
            return str(f.attrs["reference_point"])
    return "reference point"


def line_labels(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
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


def fmt_pos(value: float, kb: bool) -> str:
    text = f"{abs(value) / 1000:g} kb" if kb else f"{abs(value):g} bp"
    return f"−{text}" if value < 0 else (f"+{text}" if value > 0 else text)
