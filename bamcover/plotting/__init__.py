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

from .common import CMAP, SIGNED_CMAP
from .files import FORMATS, check_figure_path, save
from .heatmap_plot import SORTS, heatmap, kmeans, row_order
from .profile_plot import BANDS, bootstrap_ci, profile

__all__ = ["BANDS", "CMAP", "FORMATS", "SIGNED_CMAP", "SORTS", "bootstrap_ci",
           "check_figure_path", "heatmap", "kmeans", "profile", "row_order", "save"]
