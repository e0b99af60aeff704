"""Writing figures: PNG, PDF or SVG by suffix, atomically, reproducibly."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

from ..errors import BamcoverError
from ..outputs import atomic_path, check_writable
from ..schema import FIGURE_FORMATS

FORMATS = FIGURE_FORMATS


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
