"""bamcover.formats on the real CTCF fixtures: tidy tables, deepTools matrices (checked with
deepTools' own plotProfile/plotHeatmap and against a real computeMatrix run), CDT, load()."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import bamcover
from bamcover import formats, reads, text
from bamcover.errors import BamcoverError
from bamcover.outputs import write_table

from .conftest import SE_CHIP, SE_CTRL, STRANDED, SUMMITS, WINDOW

NBINS = 200
#: the keys computeMatrix (deepTools 3.5) writes in its '@' header line
DEEPTOOLS_KEYS = {"upstream", "downstream", "body", "bin size", "ref point", "verbose",
                  "bin avg type", "missing data as zero", "min threshold", "max threshold",
                  "scale", "skip zeros", "nan after end", "proc number", "sort regions",
                  "sort using", "unscaled 5 prime", "unscaled 3 prime", "group_labels",
                  "group_boundaries", "sample_labels", "sample_boundaries"}


@pytest.fixture(scope="module")
def edge_matrix():
    """Five summits plus a region clipped at chr22's end and one on an absent chromosome."""
    regs = pd.read_csv(SUMMITS, sep="\t", header=None, nrows=5).iloc[:, :4]
    regs.columns = ["chrom", "start", "end", "name"]
    extra = pd.DataFrame({"chrom": ["chr22", "chrUn"], "start": [51_304_000, 100],
                          "end": [51_304_001, 101], "name": ["at_end", "absent"]})
    return bamcover.matrix(pd.concat([regs, extra], ignore_index=True), SE_CHIP, **WINDOW)


def _need(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"deepTools' {tool} not installed (pip install deeptools)")


# --- tidy tables -------------------------------------------------------------------------


def test_tidy_profile_equals_profile_from_matrix(chip):
    wide = bamcover.profile(SUMMITS, SE_CHIP, **WINDOW)
    tidy = formats.tidy_profile(wide, sample="chip", group="summits")
    assert list(tidy.columns) == formats.PROFILE_COLUMNS
    assert len(tidy) == NBINS
    assert set(tidy["sample"]) == {"chip"} and set(tidy["group"]) == {"summits"}
    assert tidy["offset"].tolist() == list(range(-1000, 1000, 10))
    assert tidy.attrs["units"] == "reads"
    derived = formats.profile_from_matrices(chip, sample="chip", group="summits")
    assert list(derived.columns) == formats.PROFILE_COLUMNS
    for col in ("mean", "median", "std", "sem"):
        np.testing.assert_allclose(derived[col], tidy[col], rtol=1e-12, atol=1e-12)
    assert (derived["n"] == tidy["n"]).all() and (tidy["n"] == 730).all()


def test_tidy_profile_strand_wise_has_both_channels():
    wide = bamcover.profile(STRANDED, SE_CHIP, strand_wise=True, **WINDOW)
    tidy = formats.tidy_profile(wide)
    assert tidy["channel"].unique().tolist() == ["sense", "antisense"]
    assert len(tidy) == 2 * NBINS


def test_tidy_matrix_rows_and_round_trip(tmp_path, chip, ctrl, stranded):
    mats = {("chip", "summits"): chip, ("input", "summits"): ctrl,
            ("chip_sw", "stranded"): stranded}
    long = formats.tidy_matrix(mats)
    assert list(long.columns) == formats.TIDY_MATRIX_COLUMNS
    # regions × samples × channels × bins
    assert len(long) == 730 * NBINS * (1 + 1 + 2)
    one = long[(long["sample"] == "chip_sw") & (long["region"] == 1)
               & (long["channel"] == "antisense")]
    assert len(one) == NBINS and set(one["strand"]) == {"-"}
    np.testing.assert_array_equal(one["value"], stranded.xs("antisense", level="channel")
                                  .iloc[1].to_numpy())
    path = tmp_path / "long.parquet"
    write_table(long, path)
    loaded = formats.load(path)
    assert loaded.kind == "tidy matrix"
    assert list(loaded.matrices) == list(mats)
    for key, mat in mats.items():
        back = loaded.matrices[key]
        np.testing.assert_array_equal(back.to_numpy(), mat.to_numpy())
        assert back.index.equals(mat.index)


# --- CDT -----------------------------------------------------------------------------------


def test_cdt_structure_and_round_trip(tmp_path, stranded, edge_matrix):
    path = tmp_path / "sw.cdt"
    formats.write_cdt(stranded, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 + 730
    head = lines[0].split("\t")
    assert head[:4] == ["GID", "UNIQID", "NAME", "GWEIGHT"]
    assert head[4] == "sense:-1000" and head[-1] == "antisense:990" and len(head) == 4 + 400
    assert lines[1].split("\t") == ["EWEIGHT", "", "", ""] + ["1"] * 400
    first = lines[2].split("\t")
    assert first[:4] == ["GENE0X", "chr22:17255632-17255633(+)",
                         "run_callpeak_narrow0_peak_1", "1"]
    assert lines[3].split("\t")[0] == "GENE1X" and "(-)" in lines[3].split("\t")[1]
    back = formats.read_cdt(path)
    assert back.shape == (730, 2 + 400)
    assert back.attrs["eweight"] == [1.0] * 400
    values = back.iloc[:, 2:].to_numpy()
    np.testing.assert_array_equal(values[:, :NBINS],
                                  stranded.xs("sense", level="channel").to_numpy())
    np.testing.assert_array_equal(values[:, NBINS:],
                                  stranded.xs("antisense", level="channel").to_numpy())

    # one channel, per-base values, NaN as empty cells
    path = tmp_path / "edge.cdt.gz"
    formats.write_cdt(edge_matrix, path, per_base=True)
    with gzip.open(path, "rt") as fh:
        rows = fh.read().splitlines()
    assert rows[0].split("\t")[4] == "-1000"
    absent = rows[2 + 6].split("\t")
    assert absent[2] == "absent" and absent[4:] == [""] * NBINS
    back = formats.read_cdt(path)
    np.testing.assert_allclose(back.iloc[:, 2:].to_numpy(), edge_matrix.to_numpy() / 10)


# --- deepTools -----------------------------------------------------------------------------


def test_deeptools_matrix_file_layout_and_round_trip(tmp_path, chip, ctrl, edge_matrix):
    path = tmp_path / "x.mat.gz"
    formats.write_deeptools_matrix({("chip", "summits"): chip, ("input", "summits"): ctrl},
                                   path, upstream=1000, downstream=1000, bin_size=10,
                                   reference_point="summit")
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0].startswith("@")
    header = json.loads(lines[0][1:])
    assert DEEPTOOLS_KEYS <= set(header) and set(header) - DEEPTOOLS_KEYS == {"bamcover"}
    assert header["upstream"] == [1000, 1000] and header["bin size"] == [10, 10]
    assert header["ref point"] == ["center", "center"] and header["body"] == [0, 0]
    assert header["sample_labels"] == ["chip", "input"]
    assert header["sample_boundaries"] == [0, 200, 400]
    assert header["group_labels"] == ["summits"] and header["group_boundaries"] == [0, 730]
    assert len(lines) == 1 + 730
    row = lines[1].split("\t")
    assert row[:6] == ["chr22", "17255632", "17255633", "run_callpeak_narrow0_peak_1", ".", "."]
    values = np.array([r.split("\t")[6:] for r in lines[1:]], dtype=float)
    # per-base means: bamcover's bin sums / bin size, chip then input side by side
    np.testing.assert_allclose(values[:, :200], chip.to_numpy(np.float64) / 10, rtol=1e-12)
    np.testing.assert_allclose(values[:, 200:], ctrl.to_numpy(np.float64) / 10, rtol=1e-12)

    mats, meta = formats.read_deeptools_matrix(path)
    assert list(mats) == [("chip", "summits"), ("input", "summits")]
    assert meta["units"] == "reads" and meta["bamcover"]["reference point"] == "summit"
    back = mats[("chip", "summits")]
    assert back.index.names == formats.MATRIX_INDEX
    assert back.columns.tolist() == chip.columns.tolist()
    np.testing.assert_allclose(back.to_numpy(), chip.to_numpy(), rtol=1e-8)
    assert (back.index.get_level_values("name") == chip.index.get_level_values("name")).all()

    # groups stack; regions without data anywhere are left out, clipped bins stay NaN
    path = tmp_path / "groups.mat.gz"
    formats.write_deeptools_matrix({("chip", "summits"): chip, ("chip", "edge"): edge_matrix},
                                   path)
    mats, meta = formats.read_deeptools_matrix(path)
    assert meta["group_labels"] == ["summits", "edge"]
    assert meta["group_boundaries"] == [0, 730, 736]
    edge = mats[("chip", "edge")]
    assert edge.index.get_level_values("name").tolist()[-1] == "at_end"
    # chr22 ends at offset 566 of that window: bins 560 … 990 (44) are NaN
    assert np.flatnonzero(np.isnan(edge.to_numpy()[-1])).tolist() == list(range(156, 200))



def _shortest(v: float) -> str:
    """Python's shortest round-trip text of v, without the '.0' of whole numbers."""
    return "nan" if np.isnan(v) else repr(float(v)).removesuffix(".0")


def test_deeptools_matrix_written_in_parts_on_threads(tmp_path, chip, monkeypatch):
    """Parts of rows formatted on threads, each its own gzip member: the same bytes for any
    number of threads, one stream to gzip readers (zcat too), and every value the shortest
    text of the number (whole numbers by the kernel, the others by pyarrow)."""
    mixed = chip.copy()
    mixed.iloc[:365] *= 10                  # whole per-base means in the first half
    mixed.iloc[0, 0] = -0.0
    files = {}
    for cells, threads in ((10 ** 9, 1), (400 * 40, 1), (400 * 40, 3)):
        monkeypatch.setattr(text, "PART_CELLS", cells)
        path = tmp_path / f"{cells}_{threads}.mat.gz"
        formats.write_deeptools_matrix({("a", "g"): mixed, ("b", "g"): chip}, path,
                                       threads=threads)
        files[(cells, threads)] = path.read_bytes()
    assert files[(16000, 1)] == files[(16000, 3)]
    # without the kernel (numpy gathers, pyarrow formats every value): the same bytes
    monkeypatch.setattr(reads, "_kernel", None)
    formats.write_deeptools_matrix({("a", "g"): mixed, ("b", "g"): chip},
                                   tmp_path / "slow.mat.gz", threads=3)
    assert (tmp_path / "slow.mat.gz").read_bytes() == files[(16000, 3)]
    monkeypatch.undo()
    whole = gzip.decompress(files[(10 ** 9, 1)])
    assert gzip.decompress(files[(16000, 3)]) == whole
    assert files[(16000, 3)].count(b"\x1f\x8b\x08") >= 1 + 730 // 40
    if shutil.which("zcat"):
        zcat = subprocess.run(["zcat", str(tmp_path / "16000_3.mat.gz")], capture_output=True,
                              check=True)
        assert zcat.stdout == whole
    lines = whole.decode().splitlines()[1:]
    want = np.concatenate([mixed.to_numpy(np.float64), chip.to_numpy(np.float64)], axis=1) / 10
    for line, row in zip(lines, want, strict=True):
        assert line.split("\t")[6:] == [_shortest(v) for v in row]
    assert lines[0].split("\t")[6] == "-0"


def test_deeptools_strand_wise_samples(tmp_path, stranded):
    path = tmp_path / "sw.mat.gz"
    formats.write_deeptools_matrix({("chip", "stranded"): stranded}, path)
    mats, meta = formats.read_deeptools_matrix(path)
    assert meta["sample_labels"] == ["chip sense", "chip antisense"]
    back = mats[("chip", "stranded")]
    assert back.index.equals(stranded.index)
    np.testing.assert_array_equal(back.to_numpy(), stranded.to_numpy())


def test_deeptools_refuses_inconsistent_input(tmp_path, chip, edge_matrix):
    with pytest.raises(BamcoverError, match="different regions"):
        formats.write_deeptools_matrix({("a", "g"): chip, ("b", "g"): edge_matrix},
                                       tmp_path / "x.mat.gz")
    with pytest.raises(BamcoverError, match="upstream=500"):
        formats.write_deeptools_matrix(chip, tmp_path / "x.mat.gz", upstream=500)
    scaled = tmp_path / "scaled.mat.gz"
    with gzip.open(scaled, "wt") as fh:
        fh.write("@" + json.dumps({"upstream": [0], "downstream": [0], "body": [1000],
                                   "bin size": [10], "sample_labels": ["s"],
                                   "sample_boundaries": [0, 100], "group_labels": ["g"],
                                   "group_boundaries": [0, 1]}) + "\n")
        fh.write("chr1\t0\t10\tx\t.\t+\t" + "\t".join(["1"] * 100) + "\n")
    with pytest.raises(BamcoverError, match="scale-regions"):
        formats.read_deeptools_matrix(scaled)


def test_deeptools_plot_tools_read_our_matrix(tmp_path, chip, ctrl):
    _need("plotProfile", "plotHeatmap")
    mat = tmp_path / "x.mat.gz"
    formats.write_deeptools_matrix({("chip", "summits"): chip, ("input", "summits"): ctrl}, mat)
    jobs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for cmd in (["plotProfile", "-m", "x.mat.gz", "-o", "p.png",
                         "--outFileNameData", "p.tab"],
                        ["plotHeatmap", "-m", "x.mat.gz", "-o", "h.png"])]
    for job in jobs:
        _, err = job.communicate(timeout=120)
        assert job.returncode == 0, err.decode()
    for png in ("p.png", "h.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tab = pd.read_csv(tmp_path / "p.tab", sep="\t", header=None, skiprows=2)
    assert tab[0].tolist() == ["chip", "input"] and tab[1].tolist() == ["summits"] * 2
    prof = formats.profile_from_matrices({("chip", "summits"): chip,
                                          ("input", "summits"): ctrl})
    for i, sample in enumerate(["chip", "input"]):
        ours = prof.loc[prof["sample"] == sample, "mean"].to_numpy() / 10
        np.testing.assert_allclose(tab.iloc[i, 2:].to_numpy(float), ours, rtol=1e-9,
                                   atol=1e-9)


def test_read_real_computematrix_equals_bamcover(tmp_path):
    _need("bamCoverage", "computeMatrix")
    bw = tmp_path / "ctrl.bw"
    subprocess.run(["bamCoverage", "-b", str(SE_CTRL), "--extendReads", "200", "--binSize", "1",
                    "--region", "chr22:17000000:20000000", "-o", str(bw)],
                   check=True, capture_output=True)
    summits = pd.read_csv(SUMMITS, sep="\t", header=None)
    inside = summits[(summits[1] > 17_002_000) & (summits[2] < 19_998_000)]
    bed = tmp_path / "inside.bed"
    inside.to_csv(bed, sep="\t", header=False, index=False)
    mat = tmp_path / "ref.mat.gz"
    subprocess.run(["computeMatrix", "reference-point", "-S", str(bw), "-R", str(bed),
                    "--referencePoint", "center", "-a", "1000", "-b", "1000", "--binSize", "10",
                    "-o", str(mat)], check=True, capture_output=True)
    mats, meta = formats.read_deeptools_matrix(mat)
    assert meta["units"] == "signal" and meta["ref point"] == ["center"]
    ((sample, group),) = mats
    assert sample == "ctrl"
    theirs = mats[(sample, group)]
    assert theirs.columns.tolist() == list(range(-1000, 1000, 10))
    assert set(theirs.index.get_level_values("channel")) == {"total"}
    assert set(theirs.index.get_level_values("status")) == {"ok"}
    ours = bamcover.matrix(bed, SE_CTRL, **WINDOW)
    assert len(ours) == len(theirs) == len(inside) > 40
    for level in ("chrom", "start", "end"):
        assert (ours.index.get_level_values(level)
                == theirs.index.get_level_values(level)).all()
    # read_deeptools_matrix turns deepTools' per-base means back into bin sums (× 10);
    # computeMatrix writes 6 decimals
    np.testing.assert_allclose(theirs.to_numpy() / 10, ours.to_numpy() / 10, atol=1e-6)
    assert ours.to_numpy().sum() > 1000


# --- load ----------------------------------------------------------------------------------


def test_load_reads_everything_bamcover_writes(tmp_path, chip):
    from bamcover.cli import main

    done = CliRunner().invoke(main, [
        "profile", str(SUMMITS), str(SE_CHIP), "-f", "200", "-u", "1000", "-d", "1000",
        "-b", "10", "-q", "-o", str(tmp_path / "chip.tsv"),
        "--matrix", str(tmp_path / "chip_matrix.tsv.gz")])
    assert done.exit_code == 0, done.output
    expected = formats.profile_from_matrices(chip, sample="chip")

    prof = formats.load(tmp_path / "chip.tsv")
    assert prof.kind == "profile" and prof.matrices is None
    assert list(prof.profile.columns) == formats.PROFILE_COLUMNS
    assert set(prof.profile["sample"]) == {"chip"}
    np.testing.assert_allclose(prof.profile["mean"], expected["mean"], rtol=1e-12)

    mat = formats.load(tmp_path / "chip_matrix.tsv.gz")
    assert mat.kind == "matrix"
    ((key, m),) = mat.matrices.items()
    assert key == ("chip_matrix", "regions")
    np.testing.assert_array_equal(m.to_numpy(), chip.to_numpy())
    assert m.index.names == formats.MATRIX_INDEX
    assert (m.index.get_level_values("name") == chip.index.get_level_values("name")).all()
    np.testing.assert_allclose(mat.profile["std"], expected["std"], rtol=1e-12)

    # parquet (keeps attrs: a CPM profile says so), tidy profile TSV, matrix parquet, deepTools
    cpm = bamcover.profile(SUMMITS, SE_CHIP, normalize="cpm", **WINDOW)
    write_table(cpm, tmp_path / "cpm.parquet", index=True)
    loaded = formats.load(tmp_path / "cpm.parquet", sample="chip")
    assert loaded.units == "CPM" and set(loaded.profile["sample"]) == {"chip"}
    write_table(expected, tmp_path / "tidy.tsv")
    tidy = formats.load(tmp_path / "tidy.tsv")
    assert tidy.kind == "tidy profile"
    pd.testing.assert_frame_equal(tidy.profile, expected, check_dtype=False)
    write_table(formats.matrix_table(chip), tmp_path / "m.parquet")
    assert formats.load(tmp_path / "m.parquet").matrices[("m", "regions")].shape == chip.shape
    formats.write_deeptools_matrix(chip, tmp_path / "d.mat.gz")
    dt = formats.load(tmp_path / "d.mat.gz")
    assert dt.kind == "deeptools"
    np.testing.assert_allclose(dt.profile["mean"], expected["mean"], rtol=1e-8)

    both = formats.load([tmp_path / "chip.tsv", tmp_path / "cpm.parquet"],
                        sample=["chip", "chip_cpm"])
    assert both.profile["sample"].unique().tolist() == ["chip", "chip_cpm"]
    with pytest.raises(BamcoverError, match="distinct sample labels"):
        formats.load([tmp_path / "chip.tsv", tmp_path / "chip.tsv"])


def test_load_rejects_other_tables(tmp_path):
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n1\t2\n")
    with pytest.raises(BamcoverError, match="not a profile or matrix"):
        formats.load(other)
    with pytest.raises(BamcoverError, match="no such file"):
        formats.load(tmp_path / "missing.tsv")
