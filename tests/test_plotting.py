"""bamcover.plotting on the real CTCF fixtures: check what a reader of the figure would see
(panels, lines, labels, axis ranges, where the peak is, row order, clusters, colour bars) and
that the saved files are valid PNG/PDF/SVG."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import bamcover
from bamcover import formats, plotting
from bamcover.errors import BamcoverError
from bamcover.outputs import write_table

from .conftest import SE_CHIP, SE_CTRL, SUMMITS, WINDOW


@pytest.fixture(scope="module")
def two(chip, ctrl):
    return {("CTCF", "summits"): chip, ("input", "summits"): ctrl}


def _data_lines(ax):
    """The plotted profiles (not the reference line at 0)."""
    return [line for line in ax.get_lines() if line.get_gid()]


def _peak(line) -> float:
    return float(line.get_xdata()[np.nanargmax(line.get_ydata())])


def _axes(fig, kind):
    return [ax for ax in fig.axes if ax.get_label().split("\t")[0] == kind]


# --- profile -------------------------------------------------------------------------------


def test_profile_from_a_profile_table():
    wide = bamcover.profile(SUMMITS, SE_CHIP, **WINDOW)
    fig = plotting.profile(formats.tidy_profile(wide, sample="CTCF"), reference_label="summit")
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    (ax,) = fig.axes
    (line,) = _data_lines(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CTCF"]
    assert ax.get_xlabel() == "distance from summit (bp)"
    assert ax.get_ylabel() == "mean coverage (reads)"
    assert ax.get_xlim() == (-1000, 1000)
    assert "summit" in [t.get_text() for t in ax.texts]
    # per-base mean coverage at bin centres; CTCF peaks on its summit
    np.testing.assert_allclose(line.get_ydata(), wide["total_mean"].to_numpy() / 10)
    assert line.get_xdata()[0] == -995.5
    assert abs(_peak(line)) <= 50
    assert len(ax.collections) == 1       # the s.e.m. band


def test_profile_two_samples_bootstrap_band(two):
    fig = plotting.profile(two, band="ci95", n_boot=300, seed=1, reference_label="summit",
                           title="CTCF summits")
    (ax,) = fig.axes
    lines = _data_lines(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CTCF", "input"]
    assert lines[0].get_color() != lines[1].get_color()
    assert ax.get_title() == "CTCF summits"
    assert len(ax.collections) == 2
    chip_peak = np.nanmax(lines[0].get_ydata())
    assert chip_peak > 10 * np.nanmax(lines[1].get_ydata())   # ChIP over input
    assert abs(_peak(lines[0])) <= 50
    band = ax.collections[0].get_paths()[0].vertices
    top = band[:, 1].max()
    assert chip_peak < top < 1.2 * chip_peak
    again = plotting.profile(two, band="ci95", n_boot=300, seed=1).axes[0].collections[0]
    np.testing.assert_array_equal(again.get_paths()[0].vertices, band)
    other = plotting.profile(two, band="ci95", n_boot=300, seed=2).axes[0].collections[0]
    assert not np.array_equal(other.get_paths()[0].vertices, band)


def test_bootstrap_ci_brackets_the_mean(chip):
    values = chip.to_numpy(np.float64) / 10
    lo, hi = plotting.bootstrap_ci(values, n_boot=400, seed=0)
    mean = values.mean(axis=0)
    assert (lo <= mean + 1e-12).all() and (mean <= hi + 1e-12).all()
    sem = values.std(axis=0, ddof=1) / np.sqrt(len(values))
    width = (hi - lo)[90:110] / (2 * 1.96 * sem[90:110])   # close to the normal interval
    assert 0.8 < np.median(width) < 1.2


def test_profile_strand_wise_sense_upstream_antisense_downstream(stranded):
    fig = plotting.profile({("CTCF", "summits"): stranded}, reference_label="summit")
    (ax,) = fig.axes
    sense, antisense = _data_lines(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CTCF sense",
                                                                   "CTCF antisense"]
    assert sense.get_linestyle() == "-" and antisense.get_linestyle() == "--"
    assert sense.get_color() == antisense.get_color()
    # reads on the region's strand pile up 5' of the summit, the others 3' of it
    assert -50 <= _peak(sense) < 0 < _peak(antisense) <= 50
    for line, sign in ((sense, -1), (antisense, 1)):
        x, y = line.get_xdata(), line.get_ydata()
        near = np.abs(x) <= 300
        centre = (x[near] * y[near]).sum() / y[near].sum()
        assert sign * centre > 5


def test_profile_kb_axis_smoothing_and_cpm(chip):
    fig = plotting.profile(chip, kb=True, smooth=5, band=None, reference_label="TSS")
    (ax,) = fig.axes
    assert ax.get_xlim() == (-1.0, 1.0)
    assert ax.get_xlabel() == "distance from TSS (kb)"
    (line,) = _data_lines(ax)
    raw = chip.to_numpy(np.float64).mean(axis=0) / 10
    assert len(line.get_ydata()) == 200
    np.testing.assert_allclose(line.get_ydata()[100], raw[98:103].mean())
    assert not ax.collections
    cpm = bamcover.profile(SUMMITS, SE_CHIP, normalize="cpm", **WINDOW)
    ax = plotting.profile(cpm).axes[0]
    assert ax.get_ylabel() == "mean coverage (CPM)"
    assert ax.get_xlabel() == "distance from reference point (bp)"
    wide = bamcover.profile(SUMMITS, SE_CHIP, fragment_size=200, upstream=5000,
                            downstream=5000, bin_size=50)
    ax = plotting.profile(wide).axes[0]
    assert ax.get_xlim() == (-5.0, 5.0) and ax.get_xlabel().endswith("(kb)")


def test_profile_into_given_axes(two):
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    assert plotting.profile(two, ax=right, band=None) is fig
    assert not left.get_lines() and len(_data_lines(right)) == 2


def test_profile_bad_requests(chip):
    wide = bamcover.profile(SUMMITS, SE_CHIP, **WINDOW)
    with pytest.raises(BamcoverError, match="needs the per-region matrix"):
        plotting.profile(wide, band="ci95")
    with pytest.raises(BamcoverError, match="band"):
        plotting.profile(chip, band="sd")


# --- heatmap -------------------------------------------------------------------------------


def test_heatmap_sorted_by_mean_over_samples(two, chip, ctrl):
    fig = plotting.heatmap(two, reference_label="summit")
    heat, prof, bars = _axes(fig, "heatmap"), _axes(fig, "profile"), _axes(fig, "colorbar")
    assert len(heat) == 2 and len(prof) == 2 and len(bars) == 1
    assert [ax.get_title() for ax in prof] == ["CTCF", "input"]
    assert bars[0].get_ylabel() == "coverage (reads)"
    assert heat[0].get_ylabel() == "summits (730 regions)"
    assert [t.get_text() for t in heat[0].get_xticklabels()] == ["−1000 bp", "summit",
                                                                 "+1000 bp"]
    assert heat[0].get_xlim() == (-1000, 1000)
    # independent order: mean per-base coverage over both samples, descending, stable
    c, i = chip.to_numpy(np.float64) / 10, ctrl.to_numpy(np.float64) / 10
    score = (chip.to_numpy(np.float64).sum(axis=1) + ctrl.to_numpy(np.float64).sum(axis=1)) / 4000
    order = np.argsort(-score, kind="stable")
    (im0,), (im1,) = heat[0].get_images(), heat[1].get_images()
    np.testing.assert_array_equal(np.asarray(im0.get_array()), c[order])
    np.testing.assert_array_equal(np.asarray(im1.get_array()), i[order])
    assert (np.diff(score[order]) <= 0).all()
    assert im0.get_clim() == im1.get_clim()                # one shared colour scale
    assert im0.get_clim()[1] == pytest.approx(np.percentile(np.concatenate([c, i]), 99))
    # the profile above each panel is the mean of the rows below; y axes shared
    (pline,) = prof[0].get_lines()[:1]
    np.testing.assert_allclose(pline.get_ydata(), c.mean(axis=0))
    assert prof[0].get_ylim() == prof[1].get_ylim()
    listed = plotting.row_order(two)
    assert listed["region"].tolist() == order.tolist()
    assert listed["name"].iloc[0] == chip.index.get_level_values("name")[order[0]]


def test_heatmap_kmeans_clusters(two):
    fig = plotting.heatmap(two, sort="kmeans", k=3, seed=0, shared_scale=False)
    heat, bars = _axes(fig, "heatmap"), _axes(fig, "colorbar")
    assert len(bars) == 2
    labels = [t.get_text() for t in heat[0].get_yticklabels()]
    assert [lab.split("\n")[0] for lab in labels] == ["cluster 1", "cluster 2", "cluster 3"]
    sizes = [int(lab.split("(n=")[1].rstrip(")")) for lab in labels]
    assert sum(sizes) == 730 and min(sizes) > 0
    separators = [line.get_ydata()[0] for line in heat[0].get_lines()]
    assert separators == list(np.cumsum(sizes)[:-1])
    order = plotting.row_order(two, sort="kmeans", k=3, seed=0)
    assert order["cluster"].tolist() == sorted(order["cluster"])
    img = np.asarray(heat[0].get_images()[0].get_array())
    means = [img[a:b].mean() for a, b in zip([0, *np.cumsum(sizes)[:-1]], np.cumsum(sizes),
                                              strict=True)]
    assert means == sorted(means, reverse=True)           # cluster 1 is the strongest
    again = plotting.row_order(two, sort="kmeans", k=3, seed=0)
    assert again.equals(order)
    clims = [ax.get_images()[0].get_clim() for ax in heat]
    assert clims[0] != clims[1]                            # one scale per panel
    # each cluster's mean profile above the panel, in the colour of its label
    pax = _axes(fig, "profile")[0]
    lines = [line for line in pax.get_lines() if line.get_label().startswith("cluster")]
    assert [line.get_label() for line in lines] == ["cluster 1", "cluster 2", "cluster 3"]
    assert [line.get_color() for line in lines] == \
        [t.get_color() for t in heat[0].get_yticklabels()]
    np.testing.assert_allclose(lines[0].get_ydata(), img[:sizes[0]].mean(axis=0))


def test_heatmap_strand_wise_and_keep_order(stranded):
    fig = plotting.heatmap({("CTCF", "summits"): stranded}, sort="keep",
                           profile_on_top=False)
    heat = _axes(fig, "heatmap")
    assert [ax.get_title() for ax in heat] == ["CTCF sense", "CTCF antisense"]
    assert not _axes(fig, "profile") and len(_axes(fig, "colorbar")) == 1
    sense = stranded.xs("sense", level="channel").to_numpy(np.float64) / 10
    np.testing.assert_array_equal(np.asarray(heat[0].get_images()[0].get_array()), sense)


# --- files ---------------------------------------------------------------------------------


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_save_png_pdf_svg(tmp_path, two):
    prof = plotting.profile(two, reference_label="summit")
    heat = plotting.heatmap(two, reference_label="summit")
    plotting.save(prof, tmp_path / "profile.png")
    plotting.save(prof, tmp_path / "profile.pdf")
    plotting.save(heat, tmp_path / "heatmap.svg")
    plotting.save(heat, tmp_path / "heatmap.png", dpi=100)
    w, h = _png_size((tmp_path / "profile.png").read_bytes())
    assert (w, h) == (960, 630)
    w, h = _png_size((tmp_path / "heatmap.png").read_bytes())
    assert 500 < w < h < 1500
    pdf = (tmp_path / "profile.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 5000
    svg = (tmp_path / "heatmap.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and len(svg) > 20000
    for name in ("once.pdf", "again.pdf"):   # no dates in the file: reruns are identical
        plotting.save(plotting.profile(two, reference_label="summit"), tmp_path / name)
    assert (tmp_path / "again.pdf").read_bytes() == (tmp_path / "once.pdf").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "again.pdf", "heatmap.png", "heatmap.svg", "once.pdf", "profile.pdf", "profile.png"]
    with pytest.raises(BamcoverError, match="unknown figure format"):
        plotting.save(prof, tmp_path / "profile.jpg")
    assert plotting.check_figure_path(tmp_path / "x.SVG") == "svg"
    with pytest.raises(BamcoverError, match="does not exist"):
        plotting.save(prof, tmp_path / "no" / "profile.png")


def test_plots_from_files_without_recomputing(tmp_path, chip, ctrl):
    write_table(formats.matrix_table(chip), tmp_path / "CTCF.tsv.gz")
    write_table(formats.matrix_table(ctrl), tmp_path / "input.parquet")
    paths = [tmp_path / "CTCF.tsv.gz", tmp_path / "input.parquet"]
    fig = plotting.profile(paths, band="ci95", n_boot=100)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["CTCF", "input"]
    fig = plotting.heatmap(formats.load(paths))
    assert [ax.get_title() for ax in _axes(fig, "profile")] == ["CTCF", "input"]
    formats.write_deeptools_matrix({("CTCF", "summits"): chip}, tmp_path / "x.mat.gz",
                                   reference_point="summit")
    fig = plotting.profile(tmp_path / "x.mat.gz")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "distance from summit (bp)"
    assert abs(_peak(_data_lines(ax)[0])) <= 50


# --- scale-regions ---------------------------------------------------------------------------

SCALED = dict(fragment_size=200, scale_regions=True, upstream=500, downstream=500,
              body_length=1000, bin_size=10)


def test_scale_regions_plots_show_bin_means_and_mark_both_ends(tmp_path):
    """Scale-regions bins already hold per-base means: plotted as they are (not divided
    by the bin size as bin sums are), with the body's start and end marked, whether the
    data come from the API or from the files a run wrote (a TSV keeps no attrs: the
    provenance record beside it says the run was scale-regions)."""
    from click.testing import CliRunner

    from bamcover.cli import main

    res = bamcover.profiles.compute(SUMMITS, str(SE_CHIP), **SCALED)
    prof, mat = res.profile, res.matrix
    assert prof.attrs["body_length"] == 1000 == mat.attrs["body_length"]
    prof_path, mat_path = tmp_path / "p.tsv", tmp_path / "m.tsv.gz"
    ran = CliRunner().invoke(main, ["profile", str(SUMMITS), str(SE_CHIP), "-f", "200",
                                    "--scale-regions", "-u", "500", "-d", "500", "-b", "10",
                                    "-q", "-o", str(prof_path), "--matrix", str(mat_path)])
    assert ran.exit_code == 0, ran.stderr
    for data in (formats.tidy_profile(prof, sample="CTCF"), prof_path):
        (ax,) = plotting.profile(data).axes
        (line,) = _data_lines(ax)
        np.testing.assert_allclose(line.get_ydata(), prof["total_mean"].to_numpy())
        assert {"start", "end"} <= {t.get_text() for t in ax.texts}
        assert "body scaled to 1000 bp" in ax.get_xlabel()
        assert sorted(x.get_xdata()[0] for x in ax.get_lines() if not x.get_gid()) == [0, 1000]
    for data in ({("CTCF", "g"): mat}, mat_path):
        fig = plotting.heatmap(data, sort="keep", profile_on_top=False)
        (ax,) = _axes(fig, "heatmap")
        image = ax.get_images()[0].get_array()
        np.testing.assert_allclose(np.ma.filled(image, np.nan), mat.to_numpy(), equal_nan=True)
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[1:3] == ["start", "end"] and labels[-1] == "+500 bp"
    with pytest.raises(BamcoverError, match="mixed with other data"):
        formats.load([prof_path, _reference_point_profile(tmp_path)])


def _reference_point_profile(tmp_path):
    path = tmp_path / "ref.tsv"
    write_table(bamcover.profile(SUMMITS, SE_CHIP, **WINDOW), path, index=True)
    return path


def test_collected_tables_name_their_body_in_task_options(tmp_path):
    """Outputs collected from a cluster task record the run's options as ``task_options``
    in their provenance: a TSV profile read back from there is still scale-regions; one
    whose record says reference-point, or that has none, carries no body length."""
    import json
    import shutil

    res = bamcover.profiles.compute(SUMMITS, str(SE_CHIP), **SCALED)
    src = tmp_path / "local.tsv"
    write_table(res.columns, src)
    for name, record, want in (
            ("collected", {"options": {}, "task_options": {"scale_regions": True,
                                                           "body_length": 1000}}, 1000),
            ("refpoint", {"options": {}, "task_options": {"scale_regions": False}}, None),
            ("bare", None, None)):
        path = tmp_path / f"{name}.tsv"
        shutil.copy(src, path)
        if record is not None:
            (tmp_path / f"{name}.tsv.provenance.json").write_text(json.dumps(record))
        assert formats.load(path).profile.attrs.get("body_length") == want


# --- control runs: log2 ratios and differences ---------------------------------------------

@pytest.fixture(scope="module")
def control_runs(tmp_path_factory):
    """The files 'bamcover profile --control' writes, in every format plots read back: a
    log2 run as TSV profile + parquet matrix and as parquet profile + deepTools .mat.gz, and
    a subtract run (sample labelled ChIP) as TSV profile + .mat.gz."""
    from click.testing import CliRunner

    from bamcover.cli import main

    out = tmp_path_factory.mktemp("control")
    runs = {"log2": ("p.tsv", "m.parquet", []), "log2b": ("p.parquet", "m.mat.gz", []),
            "subtract": ("s.tsv", "s.mat.gz", ["--operation", "subtract", "--labels", "ChIP"])}
    for prof, mat, extra in runs.values():
        ran = CliRunner().invoke(main, ["profile", str(SUMMITS), str(SE_CHIP), "--control",
                                        str(SE_CTRL), "-f", "200", "-u", "1000", "-d", "1000",
                                        "-b", "10", "-q", "-o", str(out / prof), "--matrix",
                                        str(out / mat), *extra])
        assert ran.exit_code == 0, ran.stderr
    return out


def _zero_lines(ax):
    return [line for line in ax.get_lines()
            if not line.get_gid() and list(line.get_ydata()) == [0, 0]]


def test_log2_control_profile_is_drawn_as_computed_and_labelled_as_a_ratio(control_runs):
    """A log2 ratio is not a sum over the bin's bases: plotted as the table holds it (not
    divided by the bin size), labelled log2(sample/control) from the run's provenance, with
    a line at 0, from each format a control run writes."""
    import pandas as pd

    table = pd.read_csv(control_runs / "p.tsv", sep="\t")
    assert table["mean"].min() < 0 < table["mean"].max()
    for name in ("p.tsv", "m.parquet", "p.parquet", "m.mat.gz"):
        (ax,) = plotting.profile(control_runs / name).axes
        (line,) = _data_lines(ax)
        np.testing.assert_allclose(line.get_ydata(), table["mean"], rtol=1e-12, err_msg=name)
        assert ax.get_ylabel() == "log2(ctcf_se_chip/ctcf_se_ctrl)", name
        assert len(_zero_lines(ax)) == 1 and ax.get_ylim()[0] < 0, name
    # the API's tables say log2 ratio in their attrs; without provenance no labels are known
    cov = bamcover.coverage(SUMMITS, SE_CHIP, control=SE_CTRL, **WINDOW)
    assert plotting.profile(cov.profile).axes[0].get_ylabel() == "log2 ratio"


def test_log2_control_heatmap_diverges_around_zero(control_runs):
    """Signed data get a diverging map, limits ± max(|1st|, |99th| percentile) so that 0 is
    the middle colour, the values as computed, and the ratio on the colour bar; the user's
    --cmap/--vmin/--vmax still win."""
    import pandas as pd

    values = pd.read_parquet(control_runs / "m.parquet").iloc[:, 7:].to_numpy(np.float64)
    m = max(abs(np.nanpercentile(values, 1)), abs(np.nanpercentile(values, 99)))
    for name in ("m.parquet", "m.mat.gz"):
        fig = plotting.heatmap(control_runs / name, sort="keep")
        (ax,), (bar,), (pax,) = (_axes(fig, k) for k in ("heatmap", "colorbar", "profile"))
        (im,) = ax.get_images()
        assert im.get_cmap().name.startswith("RdBu_r"), name
        assert im.norm.vmin == -im.norm.vmax and im.norm.vmax == pytest.approx(m), name
        np.testing.assert_allclose(np.ma.filled(im.get_array(), np.nan), values,
                                   equal_nan=True, err_msg=name)
        assert bar.get_ylabel() == "log2(ctcf_se_chip/ctcf_se_ctrl)"
        assert pax.get_ylabel() == "log2(ctcf_se_chip/ctcf_se_ctrl)"
        assert len(_zero_lines(pax)) == 1
    fig = plotting.heatmap(control_runs / "m.parquet", cmap="viridis", vmin=-1, vmax=3)
    (im,) = _axes(fig, "heatmap")[0].get_images()
    assert im.get_cmap().name.startswith("viridis") and im.get_clim() == (-1, 3)
    # the deepTools export holds the ratios as they are, so deepTools shows them too
    import gzip

    with gzip.open(control_runs / "m.mat.gz", "rt") as fh:
        fh.readline()
        row = np.array(fh.readline().split("\t")[6:], dtype=np.float64)
    np.testing.assert_array_equal(row, values[0])


def test_log2_mat_gz_of_an_older_bamcover_still_reads_back(control_runs, tmp_path):
    """bamcover 0.1.0 divided log2 ratios by the bin size in .mat.gz files and said so in the
    header; such a file is still read back as the ratios (× bin size)."""
    import gzip
    import json

    import pandas as pd

    with gzip.open(control_runs / "m.mat.gz", "rt") as fh:
        header, *rows = fh.read().splitlines()
    meta = json.loads(header[1:])
    meta["bamcover"]["values"] = "per-base mean coverage (bin sum / bin size)"
    old = ["\t".join(f[:6] + [repr(float(v) / 10) for v in f[6:]])
           for f in (r.split("\t") for r in rows)]
    path = tmp_path / "old.mat.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(["@" + json.dumps(meta), *old]) + "\n")
    (mat,) = formats.read_deeptools_matrix(path)[0].values()
    want = pd.read_parquet(control_runs / "m.parquet").iloc[:, 7:].to_numpy(np.float64)
    np.testing.assert_allclose(mat.to_numpy(), want, rtol=1e-12)


def test_subtract_control_is_a_difference_per_base(control_runs):
    """A difference adds up like coverage (drawn per base, as deepTools would), labelled
    with the run's sample label and control, on a diverging map."""
    import pandas as pd

    table = pd.read_csv(control_runs / "s.tsv", sep="\t")
    (ax,) = plotting.profile(control_runs / "s.tsv").axes
    np.testing.assert_allclose(_data_lines(ax)[0].get_ydata(), table["mean"] / 10)
    assert ax.get_ylabel() == "difference (ChIP − ctcf_se_ctrl)"
    fig = plotting.heatmap(control_runs / "s.mat.gz")
    (im,) = _axes(fig, "heatmap")[0].get_images()
    assert im.get_cmap().name.startswith("RdBu_r") and im.norm.vmin == -im.norm.vmax
    assert _axes(fig, "colorbar")[0].get_ylabel() == "difference (ChIP − ctcf_se_ctrl)"


def test_negative_values_are_signed_too(chip):
    """Any data with negative values (here ChIP minus its regions' mean) diverge around 0;
    coverage keeps its sequential map and a y axis from 0."""
    centred = chip.astype(np.float64).sub(chip.astype(np.float64).mean(axis=1), axis=0)
    (im,) = _axes(plotting.heatmap(centred), "heatmap")[0].get_images()
    assert im.get_cmap().name.startswith("RdBu_r") and im.norm.vmin == -im.norm.vmax
    (im,) = _axes(plotting.heatmap(chip), "heatmap")[0].get_images()
    assert im.get_cmap().name.startswith("Reds") and im.norm.vmin >= 0
    (ax,) = plotting.profile(chip).axes
    assert ax.get_ylim()[0] == 0 and not _zero_lines(ax)


def test_control_tables_do_not_share_an_axis_with_coverage(control_runs, tmp_path):
    write_table(formats.matrix_table(bamcover.matrix(SUMMITS, SE_CHIP, **WINDOW)),
                tmp_path / "cov.parquet")
    with pytest.raises(BamcoverError, match="cannot share an axis"):
        formats.load([control_runs / "m.parquet", tmp_path / "cov.parquet"])


def test_cli_plot_of_a_control_run(control_runs, tmp_path, monkeypatch):
    """bamcover plot heatmap without colour options draws the diverging map around 0;
    --cmap and --vmin win."""
    from click.testing import CliRunner

    from bamcover.cli import main

    drawn, save = [], plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, *a, **k: (drawn.append(fig),
                                                                 save(fig, *a, **k)))
    for extra in ([], ["--cmap", "magma", "--vmin", "0"]):
        out = tmp_path / "h.png"
        ran = CliRunner().invoke(main, ["plot", "heatmap", str(control_runs / "m.parquet"),
                                        "-o", str(out), *extra])
        assert ran.exit_code == 0, ran.stderr
        assert out.read_bytes().startswith(b"\x89PNG")
    (diverging,), (chosen,) = (_axes(fig, "heatmap")[0].get_images() for fig in drawn)
    assert diverging.get_cmap().name.startswith("RdBu_r")
    assert diverging.norm.vmin == -diverging.norm.vmax
    assert chosen.get_cmap().name.startswith("magma") and chosen.norm.vmin == 0
