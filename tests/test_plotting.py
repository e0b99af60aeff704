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

from .conftest import SE_CHIP, SUMMITS, WINDOW


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
