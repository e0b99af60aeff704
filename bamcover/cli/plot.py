"""``bamcover plot``: figures from tables bamcover wrote; never recomputes coverage."""

from __future__ import annotations

import click

from ..errors import BamcoverError
from ..outputs import PROVENANCE_SUFFIX, check_outputs
from ..schema import BANDS, PLOT_UNITS, SORTS
from .common import Ordered, handle_errors, record


def load_plot_inputs(inputs: tuple[str, ...], labels: str | None):
    """The files to plot, combined (one sample per single-sample file). Plots never
    recompute coverage, so a BAM among INPUTS is an error that says what to run instead."""
    from ..formats import load

    if any(p.lower().endswith(".bam") for p in inputs):
        raise BamcoverError("bamcover plot draws tables bamcover wrote; run 'bamcover "
                            "profile ... --matrix m.parquet' first")
    names = labels.split(",") if labels else None
    if names is not None and len(names) != len(inputs):
        raise BamcoverError(f"--labels gives {len(names)} labels for {len(inputs)} files")
    return load(list(inputs), sample=names)


def plot_options(func):
    """Options shared by the plot commands."""
    opts = [
        click.option("--output", "-o", required=True,
                     help="Figure file; format by suffix: .png, .pdf or .svg."),
        click.option("--labels", default=None,
                     help="Comma-separated sample labels, one per INPUT "
                          "[file names without suffixes]."),
        click.option("--reference-label", default=None,
                     help="Name of offset 0 on the x axis (summit, TSS, ...) "
                          "[from the file, else 'reference point']."),
        click.option("--kb/--bp", "kb", default=None,
                     help="x axis in kb or bp [kb when the window is wider than 4 kb]."),
        click.option("--units", type=click.Choice(PLOT_UNITS),
                     default=None,
                     help="Unit of the values [from the file or its provenance record, else "
                          "reads]; a log2 ratio is drawn as it is, the others per base."),
        click.option("--title", default=None, help="Figure title [none]."),
        click.option("--dpi", type=int, default=150, show_default=True,
                     help="Resolution of PNG output."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def draw(kind: str, inputs, output, labels, dpi: int, **draw_kw) -> None:
    """Load what to plot, draw it with plotting.<kind>, save it atomically with its
    provenance record."""
    from .. import plotting

    plotting.check_figure_path(output)
    check_outputs({"-o": output}, [p for i in inputs for p in (i, i + PROVENANCE_SUFFIX)])
    data = load_plot_inputs(inputs, labels)
    plotting.save(getattr(plotting, kind)(data, **draw_kw), output, dpi=dpi)
    record([output], list(inputs), None, {})


@click.group(cls=Ordered)
def plot():
    """Figures from tables bamcover wrote (profile -o, --matrix, tidy tables) or from
    deepTools computeMatrix files (.mat.gz); coverage is never recomputed."""


@plot.command(name="profile")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@plot_options
@click.option("--band", type=click.Choice([*BANDS, "none"]), default="sem",
              show_default=True,
              help="Shaded band: mean ± s.e.m., or bootstrap 95% CI over regions "
                   "(ci95 needs a matrix file).")
@click.option("--n-boot", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for --band ci95.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the bootstrap.")
@click.option("--smooth", type=int, default=None,
              help="Rolling mean over this many bins.")
@handle_errors
def plot_profile(inputs, output, labels, reference_label, kb, units, title, dpi, band,
                 n_boot, seed, smooth):
    """Average coverage profile of INPUTS — files bamcover wrote or deepTools .mat.gz:
    one line per sample × group (strand-wise: sense solid, antisense dashed)."""
    draw("profile", inputs, output, labels, dpi, band=None if band == "none" else band,
          n_boot=n_boot, seed=seed, smooth=smooth, reference_label=reference_label, kb=kb,
          title=title, units=units)


@plot.command(name="heatmap")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@plot_options
@click.option("--sort", type=click.Choice(SORTS), default="mean",
              show_default=True,
              help="Row order: mean coverage (descending, over all samples), input order, or "
                   "k-means clusters.")
@click.option("--clusters", "-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Clusters for --sort kmeans.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of k-means.")
@click.option("--sort-using", multiple=True,
              help="Sort/cluster on this sample only (repeatable) [all samples].")
@click.option("--independent-scale", is_flag=True,
              help="One colour scale per panel instead of one shared scale.")
@click.option("--vmin", type=float, default=None,
              help="Colour scale minimum [1st percentile; signed data: -max(|1st|, |99th|)].")
@click.option("--vmax", type=float, default=None,
              help="Colour scale maximum [99th percentile; signed data: max(|1st|, |99th|)].")
@click.option("--cmap", default=None,
              help="matplotlib colour map [Reds; RdBu_r centred on 0 for signed data: control "
                   "runs, negative values].")
@click.option("--no-profile", is_flag=True, help="No average profile above the panels.")
@handle_errors
def plot_heatmap(inputs, output, labels, reference_label, kb, units, title, dpi, sort,
                 clusters, seed, sort_using, independent_scale, vmin, vmax, cmap, no_profile):
    """Per-region heatmaps of INPUTS (matrix files bamcover wrote or deepTools .mat.gz),
    one panel per sample, regions in the same order in every panel."""
    draw("heatmap", inputs, output, labels, dpi, sort=sort, k=clusters, seed=seed,
          sort_using=list(sort_using) or None, shared_scale=not independent_scale,
          vmin=vmin, vmax=vmax, cmap=cmap, profile_on_top=not no_profile,
          reference_label=reference_label, kb=kb, title=title, units=units)
