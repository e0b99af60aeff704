"""Several samples and region groups, normalisations, controls, provenance."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import bamcover
from bamcover.cli import main

from .conftest import PEAKS, SE_CHIP, SE_CTRL, SUMMITS
from .test_oracle import _records

OPTS = dict(fragment_size=200, upstream=500, downstream=500, bin_size=25)


@functools.cache
def _library(bam) -> int:
    """Reads passing the default filters, counted from samtools view text."""
    return sum(1 for r in _records(bam) if not r.flag & 0xB04)


def test_samples_by_groups_match_single_runs():
    cov = bamcover.coverage({"summits": SUMMITS, "peaks": PEAKS},
                            [str(SE_CHIP), str(SE_CTRL)], **OPTS)
    assert set(cov.matrices) == {(s, g) for s in ("ctcf_se_chip", "ctcf_se_ctrl")
                                 for g in ("summits", "peaks")}
    nbins = 40
    assert len(cov.profile) == 2 * 2 * nbins
    for (sample, group), mat in cov.matrices.items():
        bam = SE_CHIP if sample == "ctcf_se_chip" else SE_CTRL
        single = bamcover.matrix(SUMMITS if group == "summits" else PEAKS, str(bam), **OPTS)
        np.testing.assert_array_equal(mat.to_numpy(), single.to_numpy())
        prof = cov.profile.query("sample == @sample and group == @group")
        np.testing.assert_allclose(prof["mean"].to_numpy(),
                                   single.astype(np.float64).mean().to_numpy(), rtol=1e-12)
    peak = cov.profile.groupby(["sample", "group"])["mean"].max()
    assert (peak.loc["ctcf_se_chip"] > 10 * peak.loc["ctcf_se_ctrl"]).all()


def test_normalisations():
    need_lib = _library(SE_CHIP)
    raw = bamcover.profile(SUMMITS, str(SE_CHIP), **OPTS)
    rpkm = bamcover.profile(SUMMITS, str(SE_CHIP), normalize="rpkm", **OPTS)
    spike = bamcover.profile(SUMMITS, str(SE_CHIP), normalize="cpm", scale_factor=0.5, **OPTS)
    assert rpkm.attrs["library_size"] == need_lib
    np.testing.assert_allclose(rpkm["total_mean"], raw["total_mean"] * 1e9 / (need_lib * 25),
                               rtol=1e-12)
    np.testing.assert_allclose(spike["total_median"], raw["total_median"] * 0.5e6 / need_lib,
                               rtol=1e-12)
    assert rpkm.attrs["units"] == "RPKM" and spike.attrs["units"] == "CPM × 0.5"


@pytest.mark.parametrize("normalize", ["none", "cpm"])
def test_control_log2_and_subtract(normalize):
    chip = bamcover.matrix(SUMMITS, str(SE_CHIP), **OPTS).to_numpy(np.float64)
    ctrl = bamcover.matrix(SUMMITS, str(SE_CTRL), **OPTS).to_numpy(np.float64)
    lc, lk = _library(SE_CHIP), _library(SE_CTRL)
    if normalize == "cpm":
        a, b = chip * 1e6 / lc, ctrl * 1e6 / lk
    else:                                  # control brought to the ChIP's depth
        a, b = chip, ctrl * lc / lk
    log2 = bamcover.coverage(SUMMITS, str(SE_CHIP), control=str(SE_CTRL),
                             normalize=normalize, pseudocount=1, **OPTS)
    got = log2.matrices[("ctcf_se_chip", "ctcf_summits")].to_numpy()
    np.testing.assert_allclose(got, np.log2((a + 1) / (b + 1)), rtol=1e-9, atol=1e-12)
    assert log2.units == "log2 ratio"
    prof = log2.profile.set_index("offset")["mean"]
    assert prof.loc[0] > 2 and abs(prof.loc[-500]) < prof.loc[0] / 2
    sub = bamcover.coverage(SUMMITS, str(SE_CHIP), control=str(SE_CTRL), operation="subtract",
                            normalize=normalize, **OPTS)
    np.testing.assert_allclose(sub.matrices[("ctcf_se_chip", "ctcf_summits")].to_numpy(),
                               a - b, rtol=1e-9, atol=1e-9)


def test_cli_many_samples_tidy_outputs_and_provenance(tmp_path):
    prof, mat = tmp_path / "p.tsv", tmp_path / "m.parquet"
    res = CliRunner().invoke(main, [
        "profile", str(SUMMITS), str(PEAKS), str(SE_CHIP), str(SE_CTRL), "-f", "200",
        "-b", "25", "-u", "500", "-d", "500", "--labels", "chip,input",
        "--group-labels", "summits,peaks", "-o", str(prof), "--matrix", str(mat), "-q"])
    assert res.exit_code == 0, res.stderr
    p = pd.read_csv(prof, sep="\t")
    assert list(p.columns[:4]) == ["sample", "group", "channel", "offset"]
    assert set(zip(p["sample"], p["group"], strict=True)) == {
        ("chip", "summits"), ("chip", "peaks"), ("input", "summits"), ("input", "peaks")}
    m = pd.read_parquet(mat)
    assert list(m.columns[:2]) == ["sample", "group"] and len(m) == 4 * 730
    loaded = bamcover.formats.load(str(mat))
    assert set(loaded.matrices) == {("chip", "summits"), ("chip", "peaks"),
                                    ("input", "summits"), ("input", "peaks")}
    record = json.loads((tmp_path / "p.tsv.provenance.json").read_text())
    assert record["bamcover_version"] == bamcover.__version__
    assert record["options"]["fragment_size"] == 200
    assert record["command"]["command"].endswith("profile")
    assert record["command"]["parameters"]["labels"] == "chip,input"
    sizes = {i["path"]: i["size"] for i in record["inputs"]}
    assert sizes[str(SE_CHIP)] == SE_CHIP.stat().st_size
    assert (tmp_path / "m.parquet.provenance.json").exists()


def test_cli_control_and_rpkm(tmp_path):
    out = tmp_path / "r.tsv"
    res = CliRunner().invoke(main, [
        "profile", str(SUMMITS), str(SE_CHIP), "--control", str(SE_CTRL), "-f", "200",
        "-b", "25", "-u", "500", "-d", "500", "--normalize", "rpkm", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.stderr
    p = pd.read_csv(out, sep="\t").set_index("offset")
    assert p.loc[0, "mean"] > 2
    record = json.loads((tmp_path / "r.tsv.provenance.json").read_text())
    assert record["library_sizes"] == {"ctcf_se_chip": _library(SE_CHIP)}


def test_cli_matrix_formats_by_suffix(tmp_path):
    """--matrix .mat.gz is deepTools' format, .cdt JavaTreeView; --long the tidy table."""
    args = ["profile", str(SUMMITS), str(SE_CHIP), "-f", "200", "-b", "10", "-u", "300",
            "-d", "300", "-q", "-o", str(tmp_path / "p.tsv")]
    for extra in (["--matrix", str(tmp_path / "m.mat.gz"), "--long", str(tmp_path / "l.tsv")],
                  ["--matrix", str(tmp_path / "m.cdt")]):
        res = CliRunner().invoke(main, args + extra)
        assert res.exit_code == 0, res.stderr
    api = bamcover.matrix(SUMMITS, str(SE_CHIP), fragment_size=200, bin_size=10,
                          upstream=300, downstream=300)
    mats, meta = bamcover.formats.read_deeptools_matrix(tmp_path / "m.mat.gz")
    (key, dt), = mats.items()
    np.testing.assert_allclose(dt.to_numpy(), api.to_numpy(np.float64), rtol=1e-6)
    long = pd.read_csv(tmp_path / "l.tsv", sep="\t")
    assert len(long) == 730 * 60 and long["value"].sum() == api.to_numpy(np.float64).sum()
    lines = (tmp_path / "m.cdt").read_text().splitlines()
    assert lines[0].split("\t")[:5] == ["GID", "UNIQID", "NAME", "GWEIGHT", "-300"]
    assert lines[1].startswith("EWEIGHT") and len(lines) == 2 + 730


def test_plot_after_profile_never_from_bams(tmp_path):
    """bamcover plot replots what profile wrote; given BAMs it says so in one line."""
    mat, out = tmp_path / "m.parquet", tmp_path / "h.png"
    res = CliRunner().invoke(main, ["profile", str(SUMMITS), str(SE_CHIP), str(SE_CTRL),
                                    "-f", "200", "-u", "500", "-d", "500", "-b", "10", "-q",
                                    "-o", str(tmp_path / "p.tsv"), "--matrix", str(mat)])
    assert res.exit_code == 0, res.stderr
    res = CliRunner().invoke(main, ["plot", "heatmap", str(mat), "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 20_000
    record = json.loads((tmp_path / "h.png.provenance.json").read_text())
    assert record["command"]["parameters"]["inputs"] == [str(mat)]
    bad = tmp_path / "b.png"
    res = CliRunner().invoke(main, ["plot", "heatmap", str(SUMMITS), str(SE_CHIP), "-o",
                                    str(bad)])
    assert res.exit_code == 2 and not bad.exists()
    assert res.stderr == ("bamcover: error: bamcover plot draws tables bamcover wrote; run "
                          "'bamcover profile ... --matrix m.parquet' first\n")
    res = CliRunner().invoke(main, ["plot", "profile", "--help"])
    assert "--upstream" not in res.output and "--fragment-size" not in res.output


@pytest.mark.parametrize("extra,message", [
    (["--matrix", "m.cdt", str(SE_CTRL)], "a CDT holds one matrix"),
    (["--slurm", str(SE_CTRL)], "--slurm runs one region file and one BAM per task"),
])
def test_cli_refuses_combinations_it_cannot_write(tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["profile", str(SUMMITS), str(SE_CHIP), "-u", "100",
                                    "-d", "100", "-q", "-o", "p.tsv", *extra])
    assert res.exit_code == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not [p for p in os.listdir(tmp_path) if p != "p.tsv"] and not (
        tmp_path / "m.cdt").exists()
