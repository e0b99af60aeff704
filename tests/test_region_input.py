"""Region files from anywhere, and every way one can be wrong (issue 14, "Nothing lost, ever").

Streams (FIFOs, process substitution, stdin) are read once; narrowPeak is told by its shape;
a BOM is not part of a chromosome name; every bad file is one line naming the file and line.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bamcover import BamcoverError, Options, read_regions, regions
from bamcover.regions import reference_points

from .conftest import PEAKS, ROOT, SE_CHIP, SUMMITS

BAMCOVER = ROOT / ".venv" / "bin" / "bamcover"
BED = "chr22\t17255632\t17255633\tp1\t0\t+\nchr22\t17372947\t17372948\tp2\t0\t-\n"
SMALL = ("-u", "50", "-d", "50", "-b", "10", "-q")     # a small, fast CLI profile


def _fifo_read(tmp_path: Path, payload: bytes, name: str = "regions.fifo") -> pd.DataFrame:
    """read_regions on a FIFO that a thread fills with ``payload``; fails (not hangs) when
    the reader waits for a writer that will never come."""
    fifo = tmp_path / name
    os.mkfifo(fifo)

    def write() -> None:
        try:
            with open(fifo, "wb") as fh:
                fh.write(payload)
        except BrokenPipeError:          # a reader that closed early (the old double open)
            pass

    result: dict = {}

    def read() -> None:
        try:
            result["df"] = read_regions(fifo)
        except Exception as exc:         # noqa: BLE001 - re-raised in the test's thread
            result["exc"] = exc

    writer = threading.Thread(target=write, daemon=True)
    reader = threading.Thread(target=read, daemon=True)
    writer.start()
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():                # unblock a reader waiting for a second writer
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.join(timeout=5)
        pytest.fail("reading a FIFO hung: the file was opened more than once")
    writer.join(timeout=5)
    if "exc" in result:
        raise result["exc"]
    return result["df"]


def test_fifo_plain_and_gzipped(tmp_path):
    plain = _fifo_read(tmp_path, BED.encode() * 5000, "plain.fifo")   # > a pipe's buffer
    assert len(plain) == 10_000
    assert plain["start"].tolist()[:2] == [17255632, 17372947]
    assert plain["strand"].tolist()[:2] == ["+", "-"]
    zipped = _fifo_read(tmp_path, gzip.compress(PEAKS.read_bytes()), "peaks.fifo")
    pd.testing.assert_frame_equal(zipped, read_regions(PEAKS))
    assert (zipped["summit"] >= 0).all()          # narrowPeak by its shape, not its name


def _cli(*args, stdin: bytes | None = None, shell: str | None = None
         ) -> subprocess.CompletedProcess:
    cmd = ["bash", "-c", shell] if shell else [str(BAMCOVER), *map(str, args)]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, cwd=ROOT)


def _one_error(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The run failed with exit 2 and exactly one stderr line containing ``parts``."""
    err = proc.stderr.decode()
    lines = err.splitlines()
    assert proc.returncode == 2, err
    assert len(lines) == 1 and lines[0].startswith("bamcover: error: "), err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def test_cli_reads_regions_from_stdin_and_process_substitution(tmp_path):
    """'-' is stdin (plain or gzipped); '<(zcat x.bed.gz)' is a pipe read once."""
    want = _cli("profile", SUMMITS, SE_CHIP, "-o", tmp_path / "file.tsv", *SMALL)
    assert want.returncode == 0, want.stderr.decode()
    expected = (tmp_path / "file.tsv").read_text()
    got = _cli("profile", "-", SE_CHIP, "-o", tmp_path / "stdin.tsv", *SMALL,
               stdin=SUMMITS.read_bytes())
    assert got.returncode == 0, got.stderr.decode()
    assert (tmp_path / "stdin.tsv").read_text() == expected
    got = _cli("profile", "-", SE_CHIP, "-o", tmp_path / "stdin_gz.tsv", *SMALL,
               stdin=gzip.compress(SUMMITS.read_bytes()))
    assert got.returncode == 0, got.stderr.decode()
    assert (tmp_path / "stdin_gz.tsv").read_text() == expected
    gz = tmp_path / "s.bed.gz"
    gz.write_bytes(gzip.compress(SUMMITS.read_bytes()))
    got = _cli(shell=f"'{BAMCOVER}' profile <(zcat '{gz}') '{SE_CHIP}' "
                     f"-o '{tmp_path / 'subst.tsv'}' " + " ".join(SMALL))
    assert got.returncode == 0, got.stderr.decode()
    assert (tmp_path / "subst.tsv").read_text() == expected


def test_stdin_dash_in_the_api(monkeypatch):
    fake = io.TextIOWrapper(io.BytesIO(gzip.compress(BED.encode())))
    monkeypatch.setattr(sys, "stdin", fake)
    df = read_regions("-")
    assert df["name"].tolist() == ["p1", "p2"]


# --- narrowPeak by its shape ----------------------------------------------------------------

BED12 = ("chr22\t1000\t5000\tg1\t0\t+\t1000\t5000\t0\t2\t100,200\t0,3800\n"
         "chr22\t6000\t9000\tg2\t0\t-\t6000\t9000\t0\t3\t10,10,10\t0,100,2990\n")


@pytest.mark.parametrize("suffix", [".bed", ".bed.gz"])
def test_bed12_has_no_summit(tmp_path, suffix):
    """Column 10 of BED12 is blockCount, not a summit offset."""
    p = tmp_path / f"genes{suffix}"
    p.write_bytes(gzip.compress(BED12.encode()) if suffix.endswith(".gz") else BED12.encode())
    df = read_regions(p)
    assert df["summit"].tolist() == [-1, -1]
    with pytest.raises(BamcoverError, match=rf"^{p}: --reference-point summit needs a "
                                            r"narrowPeak file"):
        reference_points(df, Options(reference_point="summit"))


def test_bed6_plus_4_with_text_in_column_10(tmp_path):
    p = tmp_path / "extra.bed"
    p.write_text("chr22\t100\t200\tn\t0\t+\ta\tb\tc\tsome text\n"
                 "chr22\t300\t400\tm\t0\t-\ta\tb\tc\tmore\n")
    df = read_regions(p)
    assert df["start"].tolist() == [100, 300] and df["summit"].tolist() == [-1, -1]
    with pytest.raises(BamcoverError, match=rf"^{p}: --reference-point summit needs"):
        reference_points(df, Options(reference_point="summit"))


def test_narrowpeak_by_shape_or_by_name(tmp_path):
    rows = "chr22\t100\t200\tn\t0\t.\t1\t2\t3\t40\nchr22\t300\t400\tm\t0\t.\t1\t2\t3\t-1\n"
    shaped = tmp_path / "peaks.txt"
    shaped.write_text(rows)
    df = read_regions(shaped)
    assert df["summit"].tolist() == [140, -1]
    with pytest.raises(BamcoverError, match=rf"^{shaped}: line 2: no narrowPeak summit"):
        reference_points(df, Options(reference_point="summit"))
    mixed = tmp_path / "mixed.bed"                 # not every line has 10 columns
    mixed.write_text(rows + "chr22\t500\t600\tk\t0\t+\n")
    assert read_regions(mixed)["summit"].tolist() == [-1, -1, -1]
    named = tmp_path / "bad.narrowPeak"            # the name says narrowPeak: column 10 must be
    named.write_text(rows.replace("\t40\n", "\tforty\n"))
    with pytest.raises(BamcoverError, match=rf"^{named}: line 1: narrowPeak summit offset "
                                            "'forty' is not an integer"):
        read_regions(named)


def test_summit_error_names_the_file_on_every_path(tmp_path):
    """The file's name, not 'regions', also when the columns went through the CLI's reader."""
    with pytest.raises(BamcoverError, match=rf"^{SUMMITS}: --reference-point summit needs"):
        reference_points(regions.region_columns(SUMMITS), Options(reference_point="summit"))
    proc = _cli("profile", SUMMITS, SE_CHIP, "--reference-point", "summit",
                "-o", tmp_path / "p.tsv", *SMALL)
    _one_error(proc, f"{SUMMITS}: --reference-point summit needs a narrowPeak file")


# --- BOM, encodings, odd lines --------------------------------------------------------------

BOM = "\ufeff"


@pytest.mark.parametrize("text", [BOM + BED, BOM + "track name=x\n" + BED,
                                  BOM + BED.replace("\n", "\r\n")])
@pytest.mark.parametrize("zipped", [False, True])
def test_utf8_bom_is_not_part_of_the_chromosome(tmp_path, text, zipped):
    p = tmp_path / ("bom.bed.gz" if zipped else "bom.bed")
    data = text.encode()
    p.write_bytes(gzip.compress(data) if zipped else data)
    df = read_regions(p)
    assert df["chrom"].tolist() == ["chr22", "chr22"]
    assert df["start"].tolist() == [17255632, 17372947]


def test_bom_of_concatenated_files_and_gzip_members(tmp_path):
    """`cat a.bed b.bed` keeps b's BOM at a line start; bgzip writes several gzip members."""
    p = tmp_path / "cat.bed.gz"
    p.write_bytes(gzip.compress((BOM + BED).encode()) + gzip.compress((BOM + BED).encode()))
    df = read_regions(p)
    assert df["chrom"].tolist() == ["chr22"] * 4 and df["line"].tolist() == [1, 2, 3, 4]
    padded = tmp_path / "padded.bed.gz"              # zeros after the last member, as gzip
    padded.write_bytes(gzip.compress(BED.encode()) + bytes(100))    # itself reads them
    assert read_regions(padded)["start"].tolist() == [17255632, 17372947]


def test_crlf_blank_and_whitespace_only_lines_are_fine(tmp_path):
    p = tmp_path / "odd.bed"
    p.write_bytes(b"chr22\t1\t5\r\n\r\n\t\t\t\n   \nchr22\t7\t9\tn\r\n")
    df = read_regions(p)
    assert df["start"].tolist() == [1, 7] and df["line"].tolist() == [1, 5]
    assert df["name"].tolist() == [".", "n"]


def test_line_numbers_count_only_newlines(tmp_path):
    """A form feed or U+2028 inside a line does not split it (str.splitlines would)."""
    p = tmp_path / "ff.bed"
    p.write_text("# a\x0c comment\nchr22\t1\t5\tna\u2028me\nchr22\tx\t9\n")
    with pytest.raises(BamcoverError, match=rf"^{p}: line 3: start 'x'"):
        read_regions(p)


@pytest.mark.parametrize("data,message", [
    (b"chr22\t1\t5\nchr\xff22\t1\t5\n", r"line 2: not UTF-8 text"),
    (b"# h\xe9\nchr22\t1\t5\n", r"line 1: not UTF-8 text"),
    (b"chr22\t1\t5\tn\t0\t+\tx\xffy\n", r"line 1: not UTF-8 text"),
    (b"chr22\t1\t5\nchr22\x00\t1\t5\n", r"line 2: NUL byte"),
    (b"\xff\xfec\x00h\x00r\x00", r"UTF-16"),
    (b"chr22\t1\t99999999999999999999\n", r"line 1: end '99999999999999999999' is out of "
                                          r"range"),
    (b"# x\nchr22\t-99999999999999999999\t5\n", r"line 2: start '-99999999999999999999' is "
                                               r"out of range"),
    (b"chr22\t2147483648\t2147483650\n", r"line 1: start 2147483648 is beyond any BAM "
                                         r"chromosome"),
    (b"chr22\t5\t2147483648\n", r"line 1: end 2147483648 is beyond any BAM chromosome"),
    (b"chr22\t10\t5\n", r"line 1: start > end \(10 > 5\)"),
])
def test_bad_bytes_and_numbers_name_file_and_line(tmp_path, data, message):
    for p, payload in ((tmp_path / "bad.bed", data),
                       (tmp_path / "bad.bed.gz", gzip.compress(data))):
        p.write_bytes(payload)
        with pytest.raises(BamcoverError, match=rf"^{p}: {message}") as info:
            read_regions(p)
        assert "\n" not in str(info.value)


def test_largest_bam_position_is_fine(tmp_path):
    p = tmp_path / "edge.bed"
    p.write_text("chr22\t2147483646\t2147483647\n")
    assert read_regions(p)["end"].tolist() == [2**31 - 1]


def test_truncated_and_corrupt_gzip(tmp_path):
    whole = gzip.compress(SUMMITS.read_bytes())
    cut = tmp_path / "cut.bed.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BamcoverError, match=rf"^{cut}: truncated gzip file"):
        read_regions(cut)
    bad = tmp_path / "crc.bed.gz"
    bad.write_bytes(whole[:-8] + bytes(8))          # a wrong CRC and length
    with pytest.raises(BamcoverError, match=rf"^{bad}: corrupt gzip file"):
        read_regions(bad)


def test_cli_bad_region_files_are_one_line(tmp_path):
    out = tmp_path / "p.tsv"
    _one_error(_cli("profile", tmp_path, SE_CHIP, "-o", out, "-q"),
               f"{tmp_path}: is a directory")
    _one_error(_cli("density", tmp_path, SE_CHIP, "-o", out, "-q"),
               f"{tmp_path}: is a directory")
    huge = tmp_path / "huge.bed"
    huge.write_text("chr22\t1\t99999999999999999999\n")
    _one_error(_cli("profile", huge, SE_CHIP, "-o", out, "-q"),
               f"{huge}: line 1: end '99999999999999999999' is out of range")
    nul = tmp_path / "nul.bed"
    nul.write_bytes(b"chr22\t1\t5\nchr22\t1\t5\x00\n")
    _one_error(_cli("profile", nul, SE_CHIP, "-o", out, "-q"), f"{nul}: line 2: NUL byte")
    cut = tmp_path / "cut.bed.gz"
    cut.write_bytes(gzip.compress(SUMMITS.read_bytes())[:200])
    _one_error(_cli("profile", cut, SE_CHIP, "-o", out, "-q"), f"{cut}: truncated gzip file")
    assert not out.exists()


def test_compiled_and_checked_parsers_agree_on_narrowpeak_shape():
    """The shape rule is the same whichever parser reads the file."""
    ten = "chr1\t1\t5\t.\t0\t+\t1\t2\t3\t2\n"
    for text in (ten * 2, ten + "chr1\t1\t5\n", "chr1\t1\t5\n" + ten):
        data = text.encode()
        plain = regions._plain_columns(data, "x.bed")
        raw, line_no, fields = regions._checked_table(text, "x.bed")
        checked = regions._table_columns(raw, line_no, fields, "x.bed")
        assert plain is not None
        np.testing.assert_array_equal(plain["summit"], checked["summit"])
