"""The CLI: outputs, and every kind of bad input (one stderr line, exit 2, no output)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pysam
import pytest
from click.testing import CliRunner

import bamcover
from bamcover import BamcoverError
from bamcover.cli import main

from .conftest import SE_CHIP, SE_CTRL, SUMMITS


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_profile_and_matrix_files(tmp_path):
    prof, mat, par = tmp_path / "p.tsv", tmp_path / "m.tsv.gz", tmp_path / "m.parquet"
    code, _, err = run("profile", SUMMITS, SE_CHIP, "-f", 200, "-b", 10, "-o", prof,
                       "--matrix", mat, "-q")
    assert code == 0, err
    p = pd.read_csv(prof, sep="\t", index_col="offset")
    api = bamcover.profile(SUMMITS, str(SE_CHIP), fragment_size=200, bin_size=10)
    pd.testing.assert_frame_equal(p, api, check_exact=False, rtol=1e-15)
    with gzip.open(mat, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    assert header[:7] == ["chrom", "start", "end", "name", "strand", "channel", "status"]
    assert header[7:9] == ["-2000", "-1990"] and len(header) == 7 + 400
    m = pd.read_csv(mat, sep="\t")
    assert len(m) == 730
    np.testing.assert_allclose(m.iloc[:, 7:].mean().to_numpy(), p["total_mean"].to_numpy())
    code, _, err = run("profile", SUMMITS, SE_CHIP, "-f", 200, "-b", 10, "-o", "-",
                       "--matrix", par, "-q")
    assert code == 0, err
    np.testing.assert_array_equal(pd.read_parquet(par).iloc[:, 7:].to_numpy(),
                                  m.iloc[:, 7:].to_numpy())


def test_profile_to_stdout_and_density(tmp_path):
    code, out, _ = run("profile", SUMMITS, SE_CHIP, "-u", 100, "-d", 100, "-b", 50, "-q")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t")[:3] == ["offset", "total_mean", "total_median"]
    assert [line.split("\t")[0] for line in lines[1:]] == ["-100", "-50", "0", "50"]
    dens = tmp_path / "d.csv"
    code, _, err = run("density", SUMMITS, SE_CHIP, SE_CTRL, "--labels", "chip,input",
                       "-o", dens, "-q")
    assert code == 0, err
    d = pd.read_csv(dens)
    assert {"chip_count", "chip_cpm", "chip_rpkm", "input_count", "chip_status"} <= set(d)
    assert d["chip_count"].sum() > 3 * d["input_count"].sum()   # CTCF summits are enriched


def test_rounding_warning_and_unknown_chromosome(tmp_path):
    regs = tmp_path / "r.bed"
    regs.write_text("22\t100000\t100001\nchr22\t17255632\t17255633\n22\t5\t6\n")
    out = tmp_path / "p.tsv"
    code, _, err = run("profile", regs, SE_CHIP, "-b", 300, "-u", 1000, "-d", 1000, "-o", out,
                       "--matrix", tmp_path / "m.tsv")
    assert code == 0
    assert "--upstream 1000 is not a multiple of --bin-size 300; using 1200" in err
    assert ("2 regions on chromosomes absent from ctcf_se_chip.bam (e.g. 22; "
            "the BAM uses 'chr22' not '22'?)") in err
    m = pd.read_csv(tmp_path / "m.tsv", sep="\t")
    assert m["status"].tolist() == ["unknown_chromosome", "ok", "unknown_chromosome"]
    assert m.iloc[[0, 2], 7:].isna().all().all() and m.iloc[1, 7:].notna().all()


def _bad(tmp_path, *args, match):
    out = tmp_path / "out" / "p.tsv"
    out.parent.mkdir(exist_ok=True)
    code, stdout, err = run("profile", *args, "-o", out, "-q")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bamcover: error: "), err
    assert match in lines[0], lines[0]
    assert os.listdir(out.parent) == []          # no output, no temporary file
    return lines[0]


def test_missing_and_malformed_inputs(tmp_path):
    _bad(tmp_path, tmp_path / "none.bed", SE_CHIP, match="none.bed: no such file")
    bed = tmp_path / "bad.bed"
    bed.write_text("chr22\t100\t200\nchr22\tabc\t300\n")
    _bad(tmp_path, bed, SE_CHIP, match="bad.bed: line 2: start 'abc' is not an integer")
    bed.write_text("")
    _bad(tmp_path, bed, SE_CHIP, match="bad.bed: no regions")
    _bad(tmp_path, SUMMITS, tmp_path / "none.bam", match="none.bam: no such file")
    _bad(tmp_path, SUMMITS, SUMMITS, match="give at least one region file and one BAM")
    fake = tmp_path / "fake.bam"
    fake.write_text("chr22\t1\t2\n")
    _bad(tmp_path, SUMMITS, fake, match="fake.bam: not a readable BAM file")
    _bad(tmp_path, SUMMITS, SE_CHIP, "-b", 0, match="--bin-size must be > 0")
    _bad(tmp_path, SUMMITS, SE_CHIP, "-u", 0, "-d", 0, match="window has length 0")


def test_unsorted_bam(tmp_path):
    bam = tmp_path / "unsorted.bam"
    pysam.sort("-n", "-o", str(bam), str(SE_CHIP))
    _bad(tmp_path, SUMMITS, bam, match="unsorted.bam: BAM is not coordinate-sorted")


def test_truncated_and_corrupt_bam(tmp_path):
    data = SE_CHIP.read_bytes()
    cut = tmp_path / "cut.bam"
    cut.write_bytes(data[: len(data) // 2])
    shutil.copy(str(SE_CHIP) + ".bai", str(cut) + ".bai")
    _bad(tmp_path, SUMMITS, cut, match="cut.bam: truncated BAM")
    # garbage in the middle, EOF marker intact: found while reading the records
    bad = tmp_path / "corrupt.bam"
    mid = len(data) // 2
    bad.write_bytes(data[:mid] + b"\x00" * 5000 + data[mid + 5000:])
    shutil.copy(str(SE_CHIP) + ".bai", str(bad) + ".bai")
    _bad(tmp_path, SUMMITS, bad, match="corrupt.bam: corrupt or truncated BAM")


@pytest.mark.parametrize("reader", ["kernel", "pysam"])
def test_bam_checks_name_the_problem_with_either_reader(tmp_path, monkeypatch, reader):
    """open_bam reads the header with the compiled reader (no pysam import) or, without
    it, with pysam: the same lengths and the same one-line errors."""
    from bamcover import reads

    if reader == "pysam":
        monkeypatch.setattr(reads, "_kernel", None)
    elif reads._kernel is None:
        pytest.skip("needs the compiled kernel")
    with pysam.AlignmentFile(str(SE_CHIP)) as fh:
        want = dict(zip(fh.references, fh.lengths, strict=True))
    assert reads.open_bam(SE_CHIP).lengths == want
    fake = tmp_path / "fake.bam"
    fake.write_text("chr22\t1\t2\n")
    cut = tmp_path / "cut.bam"
    cut.write_bytes(SE_CHIP.read_bytes()[:100_000])
    unsorted = tmp_path / "unsorted.bam"
    pysam.sort("-n", "-o", str(unsorted), str(SE_CHIP))
    for path, message in ((fake, "fake.bam: not a readable BAM file"),
                          (cut, "cut.bam: truncated BAM"),
                          (unsorted, "unsorted.bam: BAM is not coordinate-sorted "
                                     "(@HD SO:queryname)")):
        with pytest.raises(BamcoverError, match=re.escape(message)):
            reads.open_bam(path)


def test_bam_paths_need_not_be_utf8(tmp_path):
    """A file name that is not UTF-8 (the bytes a Latin-1 shell made) reaches htslib as
    the same bytes."""
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.bam"
    shutil.copy(SE_CHIP, raw)
    shutil.copy(str(SE_CHIP) + ".bai", raw + b".bai")
    path = os.fsdecode(raw)
    got = bamcover.profile(SUMMITS, path, bin_size=10)
    pd.testing.assert_frame_equal(got, bamcover.profile(SUMMITS, str(SE_CHIP), bin_size=10))


def test_missing_index_is_built(tmp_path):
    bam = tmp_path / "x.bam"
    shutil.copy(SE_CHIP, bam)
    out = tmp_path / "p.tsv"
    code, _, err = run("profile", SUMMITS, bam, "-o", out)
    assert code == 0 and f"built the missing index {bam}.bai" in err
    assert (tmp_path / "x.bam.bai").exists() and out.exists()


def test_missing_index_in_readonly_directory(tmp_path, monkeypatch):
    bam = tmp_path / "x.bam"
    shutil.copy(SE_CHIP, bam)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if (
        mode == os.W_OK and os.fspath(p) == str(tmp_path)) else real(p, mode))
    with pytest.raises(bamcover.BamcoverError, match="x.bam: BAM has no index"):
        bamcover.profile(SUMMITS, str(bam))


def test_unwritable_output_is_checked_first(tmp_path):
    for target, match in ((tmp_path / "no" / "dir" / "p.tsv", "does not exist"),
                          (tmp_path, "is a directory")):
        code, _, err = run("profile", SUMMITS, SE_CHIP, "-o", target, "-q")
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    code, _, err = run("profile", SUMMITS, SE_CHIP, "--matrix", tmp_path / "x" / "m.tsv", "-q")
    assert code == 2 and "m.tsv: cannot write output" in err


def test_two_outputs_naming_one_file_are_refused_first(tmp_path):
    """-o and --matrix on one path would leave only one of them, silently."""
    target = tmp_path / "out.tsv"
    code, _, err = run("profile", SUMMITS, SE_CHIP, "-o", target, "--matrix",
                       tmp_path / "." / "out.tsv", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "-o and --matrix name the same output" in err
    assert not target.exists()


def test_a_profile_run_never_imports_pandas(tmp_path):
    """pandas (with pyarrow) is most of the start-up: a profile written as text needs none
    of it, nor pysam when the compiled reader is there, and gives the bytes of the same
    run through the API's DataFrame."""
    out = tmp_path / "p.tsv"
    code = ("import sys\nfrom bamcover.cli import main\n"
            f"main(['profile', {str(SUMMITS)!r}, {str(SE_CHIP)!r}, '-f', '200', '-b', '10', "
            f"'-q', '-o', {str(out)!r}], standalone_mode=False)\n"
            "assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('pandas', 'pyarrow')))\n"
            "from bamcover import reads\n"
            "assert reads.KERNEL != 'htslib-system' or 'pysam' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    want = bamcover.profile(SUMMITS, str(SE_CHIP), fragment_size=200, bin_size=10)
    assert out.read_text() == want.to_csv(sep="\t", na_rep="nan")


def test_the_command_exits_with_main_s_status(tmp_path):
    """The console entry point (main, then a frozen collector for a quick exit) keeps the
    exit status and messages: 0 and the file for a run, 2 and one line for bad input."""
    out = tmp_path / "p.tsv"
    entry = "import sys\nfrom bamcover.cli import run\nsys.argv[0] = 'bamcover'\nrun()\n"
    ok = subprocess.run([sys.executable, "-c", entry, "profile", str(SUMMITS), str(SE_CHIP),
                         "-b", "10", "-q", "-o", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert out.read_text() == bamcover.profile(SUMMITS, str(SE_CHIP), bin_size=10).to_csv(
        sep="\t", na_rep="nan")
    bad = subprocess.run([sys.executable, "-c", entry, "profile", str(SUMMITS),
                          str(tmp_path / "none.bam"), "-q"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"bamcover: error: {tmp_path / 'none.bam'}: "
                                              "no such file"]


# --- help, usage errors, BAMs that are not files -------------------------------------------

def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "bamcover.cli", *map(str, args)],
                          capture_output=True, text=True, input=stdin, timeout=120)


def _options_of(command, path=("bamcover",)):
    import click

    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options_of(sub, (*path, name))
        return
    for p in command.params:
        if isinstance(p, click.Option):
            yield " ".join(path), p


def test_every_option_has_help_and_commands_come_in_order_of_use():
    missing = [f"{cmd} {p.opts[0]}" for cmd, p in _options_of(main) if not p.help]
    assert missing == []
    listed = _cli("--help").stdout.split("Commands:")[1].strip().splitlines()
    names = [line.split()[0] for line in listed]
    assert names[:3] == ["profile", "density", "plot"] and names[-1] == "clean"
    assert sorted(names) == sorted(main.commands)


@pytest.mark.parametrize("args", [
    ["profile", SUMMITS, SE_CHIP, "-f", "abc"],
    ["profile", SUMMITS, SE_CHIP, "--normalize", "foo"],
    ["profile", SUMMITS, SE_CHIP, "--no-such-option"],
    ["profile"],
    ["density", SUMMITS],
    ["no-such-command"],
    ["plot", "heatmap", "x.parquet"],
])
def test_usage_errors_are_one_line(args):
    done = _cli(*args)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bamcover: error: ") and "--help" in lines[0]


def test_a_bam_that_is_a_directory_or_a_pipe_is_one_line(tmp_path):
    (tmp_path / "d.bam").mkdir()
    os.mkfifo(tmp_path / "f.bam")
    for bam in ("d.bam", "f.bam"):
        done = _cli("profile", SUMMITS, tmp_path / bam)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert str(tmp_path / bam) in done.stderr


def test_deeptools_matrix_carries_the_bed_scores_from_the_command_line(tmp_path):
    """Column 5 of a .mat.gz is the region's score, one group or several."""
    from .conftest import PEAKS

    peaks = pd.read_csv(PEAKS, sep="\t", header=None)
    one, two = tmp_path / "one.mat.gz", tmp_path / "two.mat.gz"
    assert _cli("profile", PEAKS, SE_CHIP, "-q", "-o", tmp_path / "p1.tsv", "--matrix",
                one).returncode == 0
    done = _cli("profile", PEAKS, SUMMITS, SE_CHIP, "-q", "-o", tmp_path / "p2.tsv",
                "--matrix", two)
    assert done.returncode == 0, done.stderr
    got = pd.read_csv(one, sep="\t", header=None, skiprows=1)
    np.testing.assert_array_equal(got[4].to_numpy(), peaks[4].to_numpy(float))
    both = pd.read_csv(two, sep="\t", header=None, skiprows=1)
    summits = pd.read_csv(SUMMITS, sep="\t", header=None)
    np.testing.assert_array_equal(both[4].to_numpy(),
                                  np.r_[peaks[4].to_numpy(float), summits[4].to_numpy(float)])


def test_stdin_regions_are_recorded_as_stdin(tmp_path):
    out = tmp_path / "p.tsv"
    done = _cli("profile", "-", SE_CHIP, "-q", "-o", out, stdin=SUMMITS.read_text())
    assert done.returncode == 0, done.stderr
    import json

    record = json.loads((tmp_path / "p.tsv.provenance.json").read_text())
    assert record["inputs"][0] == {"path": "<stdin>"}


@pytest.mark.parametrize("group", [[], ["plot"]])
def test_a_bare_group_prints_its_help(group):
    """``bamcover`` or ``bamcover plot`` alone: the commands on stdout, exit 2, no error."""
    done = _cli(*group)
    assert done.returncode == 2 and done.stderr == ""
    assert "Commands:" in done.stdout and ("heatmap" if group else "profile") in done.stdout


def test_slurm_summit_error_names_the_region_file(tmp_path):
    """The regions read once for --slurm keep their file name for messages."""
    done = _cli("profile", SUMMITS, SE_CHIP, "--reference-point", "summit", "--slurm",
                "--no-wait", "--workdir", tmp_path / "w", "-q")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"bamcover: error: {SUMMITS}: --reference-point summit")
    assert not (tmp_path / "w").exists()
