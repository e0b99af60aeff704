"""Issue 14/12/13: nothing lost, ever — library sizes over every record, the region score in
deepTools matrices, one-line errors for bad flags and broken BAMs, a capped ``-p``."""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pysam
import pytest

import bamcover
from bamcover import BamcoverError, formats, reads
from bamcover.options import DEFAULT_FLAG_EXCLUDE, Options, available_cores

from .conftest import SE_CHIP, SUMMITS, need

BAMCOVER = Path(sys.executable).parent / "bamcover"


@pytest.fixture(params=["kernel", "pysam"])
def reader(request, monkeypatch):
    """Run a test with the compiled kernel and with the pure-pysam fallback."""
    if request.param == "pysam":
        monkeypatch.setattr(reads, "_kernel", None)
    elif reads._kernel is None:
        pytest.skip("needs the compiled kernel")
    return request.param


# --- 14a: the library size counts every record passing the filters --------------------------

def _three_records(path: Path) -> Path:
    """A sorted, indexed BAM of three records: mapped, unmapped but placed (its mate's
    position), unmapped and unplaced (``*``, at the end of the file)."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": "chr1", "LN": 10_000}]}
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for name, flag, tid, pos in (("mapped", 0, 0, 100), ("placed", 0x4, 0, 100),
                                     ("unplaced", 0x4, -1, -1)):
            rec = pysam.AlignedSegment(out.header)
            rec.query_name, rec.flag, rec.reference_id, rec.reference_start = name, flag, tid, pos
            rec.query_sequence, rec.query_qualities = "ACGTACGTAC", pysam.qualitystring_to_array(
                "IIIIIIIIII")
            if not flag & 0x4:
                rec.cigarstring, rec.mapping_quality = "10M", 30
            out.write(rec)
    pysam.index(str(path))
    return path


def _samtools_count(path: Path, exclude: int, include: int) -> int:
    need("samtools")
    out = subprocess.run(["samtools", "view", "-c", "-F", str(exclude), "-f", str(include),
                          str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.parametrize("exclude,include", [(0, 0), (DEFAULT_FLAG_EXCLUDE, 0), (0, 0x4),
                                             (0x100, 0)])
def test_library_size_counts_unplaced_records(tmp_path, reader, exclude, include):
    """docs/semantics.md: library size = records in the whole BAM passing the filters, also the
    unplaced ``*`` records when the flags let unmapped records in (was 2 of 3)."""
    bam = _three_records(tmp_path / "three.bam")
    rules = Options(flag_exclude=exclude, flag_include=include).read_rules()
    got = reads.library_size(reads.open_bam(bam), rules)
    assert got == _samtools_count(bam, exclude, include)


def test_library_size_of_the_fixture_matches_samtools(reader):
    for exclude in (0, DEFAULT_FLAG_EXCLUDE):
        rules = Options(flag_exclude=exclude).read_rules()
        assert reads.library_size(reads.open_bam(SE_CHIP), rules) == \
            _samtools_count(SE_CHIP, exclude, 0)


def test_density_cpm_uses_every_record(tmp_path):
    bam = _three_records(tmp_path / "three.bam")
    regions = tmp_path / "r.bed"
    regions.write_text("chr1\t0\t1000\n")
    d = bamcover.density(regions, str(bam), flag_exclude=0)
    assert d.filter(like="_library_size").iat[0, 0] == 3
    assert d.filter(like="_count").iat[0, 0] == 2          # the two placed records
    assert d.filter(like="_cpm").iat[0, 0] == pytest.approx(2e6 / 3)


# --- 14b: deepTools matrices carry the region's score ------------------------------------------

def _scored_regions(tmp_path: Path) -> Path:
    """BED6 summits with integer, decimal, exponent and missing ('.') scores."""
    lines = SUMMITS.read_text().splitlines()[:8]
    scores = ["214", "21.4687", ".", "1e3", "0", "-3.5", "7", "."]
    strands = ["+", "-", "+", "-", ".", "+", "-", "+"]
    out = tmp_path / "scored.bed"
    out.write_text("".join(f"{c[0]}\t{c[1]}\t{c[2]}\tr{i}\t{s}\t{st}\n" for i, (c, s, st) in
                           enumerate(zip((x.split("\t") for x in lines), scores, strands,
                                         strict=True))))
    return out


def _bed6(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as fh:
        return [line.split("\t")[:6] for line in fh.read().splitlines()[1:]]


def test_deeptools_matrix_score_column_as_documented(tmp_path):
    """Column 5 is the region's BED score (as deepTools writes it: a float), '.' without."""
    bed = _scored_regions(tmp_path)
    regs = bamcover.regions.read_regions(bed)
    m = bamcover.matrix(bed, str(SE_CHIP), upstream=100, downstream=100, bin_size=10)
    out = tmp_path / "m.mat.gz"
    formats.write_deeptools_matrix(m, out, scores=regs["score"])
    assert [r[4] for r in _bed6(out)] == ["214.0", "21.4687", ".", "1000.0", "0.0", "-3.5",
                                          "7.0", "."]
    # regions without scores (BED3) keep '.', as computeMatrix writes for them
    formats.write_deeptools_matrix(m, out)
    assert {r[4] for r in _bed6(out)} == {"."}
    # a group mapping, and a length that does not fit, named
    formats.write_deeptools_matrix({("s", "g"): m}, out, scores={"g": regs["score"]})
    assert _bed6(out)[0][4] == "214.0"
    with pytest.raises(BamcoverError, match="scores"):
        formats.write_deeptools_matrix(m, out, scores=regs["score"][:3])


def test_deeptools_matrix_score_column_as_computematrix(tmp_path):
    """The six BED columns' score equals what computeMatrix itself writes for the same
    BED6 (scored and '.') and for BED3 regions."""
    need("bamCoverage")
    need("computeMatrix")
    bed = _scored_regions(tmp_path)
    bw = tmp_path / "cov.bw"
    subprocess.run(["bamCoverage", "-b", str(SE_CHIP), "--binSize", "1", "-p", "1",
                    "--region", "chr22:17000000:18000000", "-o", str(bw)],
                   check=True, capture_output=True)
    bed3 = tmp_path / "plain.bed"
    bed3.write_text("".join("\t".join(line.split("\t")[:3]) + "\n"
                            for line in bed.read_text().splitlines()))
    for regions in (bed, bed3):
        theirs = tmp_path / f"{regions.stem}.dt.mat.gz"
        subprocess.run(["computeMatrix", "reference-point", "--referencePoint", "center",
                        "-R", str(regions), "-S", str(bw), "-a", "100", "-b", "100",
                        "--binSize", "10", "--missingDataAsZero", "--sortRegions", "keep",
                        "-p", "1", "-o", str(theirs)], check=True, capture_output=True)
        regs = bamcover.regions.read_regions(regions)
        m = bamcover.matrix(regions, str(SE_CHIP), upstream=100, downstream=100, bin_size=10)
        ours = tmp_path / f"{regions.stem}.mat.gz"
        formats.write_deeptools_matrix(m, ours, scores=regs["score"])
        assert [r[4] for r in _bed6(ours)] == [r[4] for r in _bed6(theirs)]


# --- 12: one line for bad flags, overlapping filters and broken BAMs ---------------------------

def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BAMCOVER), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("option,value", [("--sam-flag-exclude", "abc"),
                                          ("--sam-flag-include", "xyz"),
                                          ("--sam-flag-exclude", "0x"),
                                          ("--sam-flag-include", "09")])
def test_bad_flag_value_is_one_line(tmp_path, option, value):
    done = _cli("profile", SUMMITS, SE_CHIP, option, value, "-o", tmp_path / "p.tsv")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"bamcover: error: {option}: {value!r} is not a flag value "
        "(decimal, 0x hex or 0 octal)"], done.stderr
    assert not (tmp_path / "p.tsv").exists()


@pytest.mark.parametrize("value,flags", [("0x904", 0x904), ("2308", 0x904), ("04404", 0x904),
                                         ("0", 0), (" 0X10 ", 0x10)])
def test_flag_values_in_every_base(value, flags):
    from bamcover.options import parse_flag

    assert parse_flag(value) == flags


def test_flag_out_of_range_is_one_line(tmp_path):
    done = _cli("profile", SUMMITS, SE_CHIP, "--sam-flag-exclude", "0x10000",
                "-o", tmp_path / "p.tsv")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["bamcover: error: --sam-flag-exclude must be a 16-bit "
                                        "SAM flag (0..0xffff; got 0x10000)"], done.stderr


@pytest.mark.parametrize("kw,bits", [(dict(flag_include=0x4), "0x4"),
                                     (dict(flag_include=0x14, flag_exclude=0x10), "0x10"),
                                     (dict(flag_include=0x400, ignore_duplicates=True), "0x400")])
def test_overlapping_include_and_exclude_refused(kw, bits):
    """A bit both required and excluded lets no record through: all zeros, silently."""
    with pytest.raises(BamcoverError, match=f"share bit {bits}; no read can pass") as err:
        Options(**kw)
    assert "\n" not in str(err.value)
    Options(flag_include=0x4, flag_exclude=0)             # unmapped-only: fine


def test_overlapping_flags_one_line_on_the_command_line(tmp_path):
    done = _cli("profile", SUMMITS, SE_CHIP, "--sam-flag-include", "0x10",
                "--sam-flag-exclude", "0x14", "-o", tmp_path / "p.tsv")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "share bit 0x10" in done.stderr
    assert not (tmp_path / "p.tsv").exists()


def _broken_bams(tmp_path: Path) -> dict[str, Path]:
    """Copies of the fixture cut in the header, in the middle, before the EOF block, cut in
    the middle with an EOF block appended, and with corrupt bytes in the middle."""
    data = SE_CHIP.read_bytes()
    eof, mid = data[-28:], len(data) // 2
    cases = {"header": data[:60], "middle": data[:mid], "no_eof": data[:-28],
             "middle_eof": data[:mid] + eof,
             "corrupt": data[:mid] + b"\xff" * 8 + data[mid + 8:],
             "zeros": data[:mid] + b"\x00" * 5000 + data[mid + 5000:]}
    out = {}
    for name, content in cases.items():
        path = tmp_path / f"{name}.bam"
        path.write_bytes(content)
        shutil.copy(str(SE_CHIP) + ".bai", str(path) + ".bai")
        out[name] = path
    return out


@pytest.mark.parametrize("extra", [(), ("--normalize", "cpm", "-p", "2", "--matrix", "m.tsv")])
def test_broken_bam_is_one_line_without_htslib_noise(tmp_path, extra):
    """htslib's own '[E::bgzf_read] ...' lines used to come before ours."""
    for name, bam in _broken_bams(tmp_path).items():
        args = [a if a != "m.tsv" else tmp_path / "m.tsv" for a in extra]
        done = _cli("profile", SUMMITS, bam, "-o", tmp_path / "p.tsv", *args)
        lines = done.stderr.splitlines()
        assert done.returncode == 2, (name, done.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"bamcover: error: {bam}"), \
            (name, done.stderr)
        assert not (tmp_path / "p.tsv").exists()


def test_broken_bam_is_silent_in_the_fallback_too(tmp_path, capfd, reader):
    """The API raises one BamcoverError, with no htslib lines on the process's stderr."""
    bams = _broken_bams(tmp_path)
    for name in ("corrupt", "middle_eof"):
        with pytest.raises(BamcoverError, match="corrupt or truncated"):
            bamcover.density(SUMMITS, str(bams[name]))
        assert capfd.readouterr().err == "", name


# --- 13: -p is capped at the cores this process may use --------------------------------------

def test_processes_capped_at_available_cores(caplog):
    options = Options(processes=64)
    with caplog.at_level(logging.INFO, logger="bamcover"):
        got = [options.n_processes for _ in range(3)]      # asked by every stage of a run
    assert got == [min(64, available_cores())] * 3
    notes = [r for r in caplog.records if "--processes 64" in r.getMessage()]
    if available_cores() < 64:
        assert len(notes) == 1, caplog.text
        assert notes[0].getMessage() == (f"--processes 64 is more than the {available_cores()} "
                                         f"cores this process may use; using "
                                         f"{available_cores()}")
    assert Options(processes=1).n_processes == 1
    assert Options().n_processes == available_cores()


@pytest.mark.parametrize("value", ["0", "-3"])
def test_processes_below_one_refused(tmp_path, value):
    with pytest.raises(BamcoverError, match="--processes must be ≥ 1"):
        Options(processes=int(value))
    done = _cli("profile", SUMMITS, SE_CHIP, "-p", value, "-o", tmp_path / "p.tsv")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"bamcover: error: --processes must be ≥ 1 "
                                        f"(got {value})"], done.stderr


def test_capped_run_gives_the_same_numbers():
    a = bamcover.profile(SUMMITS, str(SE_CHIP), upstream=200, downstream=200, processes=64)
    b = bamcover.profile(SUMMITS, str(SE_CHIP), upstream=200, downstream=200, processes=1)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
