"""Reading regions: formats, skipped lines, reference points, windows."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from bamcover import BamcoverError, Options, read_regions, regions
from bamcover.regions import reference_points, windows

from .conftest import PEAKS, STRANDED, SUMMITS


def test_bed_with_headers_and_gzip(tmp_path):
    text = ("track name=x\nbrowser position chr1\n# comment\n"
            "chr1\t100\t200\tA\t0\t-\n\nchr2\t5\t6\tB\t1\t.\nchr1\t7\t9\tA\t2\t+\n")
    plain = tmp_path / "r.bed"
    plain.write_text(text)
    gz = tmp_path / "r.bed.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    for path in (plain, gz):
        df = read_regions(path)
        assert df["chrom"].tolist() == ["chr1", "chr2", "chr1"]
        assert df["start"].tolist() == [100, 5, 7]
        assert df["name"].tolist() == ["A", "B", "A"]           # duplicates allowed, order kept
        assert df["strand"].tolist() == ["-", ".", "+"]
        assert df["line"].tolist() == [4, 6, 7]


def test_bed3_and_space_separated(tmp_path):
    p = tmp_path / "r.bed"
    p.write_text("chr1 10 20\nchr1 30 40\n")
    df = read_regions(p)
    assert df[["start", "end"]].to_numpy().tolist() == [[10, 20], [30, 40]]
    assert (df["strand"] == ".").all() and (df["name"] == ".").all()


def test_narrowpeak_summits_match_summit_file():
    peaks = read_regions(PEAKS)
    summits = read_regions(SUMMITS)
    assert len(peaks) == len(summits) == 730
    np.testing.assert_array_equal(peaks["summit"], summits["start"])


def test_reference_points_and_windows():
    df = pd.DataFrame({"chrom": "c", "start": [100, 100, 100], "end": [111, 111, 111],
                       "strand": ["+", "-", "."]})
    regs = read_regions(df)
    opts = Options(upstream=10, downstream=5)
    assert reference_points(regs, opts.replace(reference_point="start")).tolist() == [100, 110, 100]
    assert reference_points(regs, opts.replace(reference_point="end")).tolist() == [110, 100, 110]
    assert reference_points(regs, opts).tolist() == [105, 105, 105]
    start, flip = windows(regs, opts)
    # '+': offsets -10..4 are 95..109; '-': offset k is 105-k, so 101..115
    assert start.tolist() == [95, 101, 95] and flip.tolist() == [False, True, False]
    start, flip = windows(regs, opts.replace(orient=False))
    assert start.tolist() == [95, 95, 95] and not flip.any()


def test_bins_round_the_window_up():
    opts = Options(upstream=1000, downstream=700, bin_size=300)
    assert (opts.window_upstream, opts.window_downstream) == (1200, 900)
    assert opts.offsets == list(range(-1200, 900, 300))


def test_summit_needs_narrowpeak():
    with pytest.raises(BamcoverError, match=rf"^{SUMMITS}: --reference-point summit needs a "
                                            "narrowPeak file"):
        reference_points(read_regions(SUMMITS), Options(reference_point="summit"), "s.bed")


@pytest.mark.parametrize("text,message", [
    ("chr1\t10\n", r"line 1: expected at least 3 columns"),
    ("chr1\t1\t5\nchr1\tx\t20\n", r"line 2: start 'x' is not an integer"),
    ("chr1\t1\t5\nchr1\t1.5\t20\n", r"line 2: start '1.5' is not an integer"),
    ("# h\nchr1\t30\t20\n", r"line 2: start > end \(30 > 20\)"),
    ("chr1\t-5\t20\n", r"line 1: negative start"),
    ("chr1\t1\t5\tn\t0\t*\n", r"line 1: strand '\*'"),
    ("track x\n# only\n", r"no regions"),
    ("", r"no regions"),
])
def test_malformed_bed(tmp_path, text, message):
    p = tmp_path / "bad.bed"
    p.write_text(text)
    with pytest.raises(BamcoverError, match=f"^{p}: .*{message}"):
        read_regions(p)


def _both(text: str):
    """(compiled columns or None, the checked parser's columns)."""
    raw, line_no, fields = regions._checked_table(text, "x.bed")
    return (regions._plain_columns(text.encode(), "x.bed"),
            regions._table_columns(raw, line_no, fields, "x.bed"))


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].tolist() == b[key].tolist(), key
        assert a[key].dtype == b[key].dtype, key


@pytest.mark.parametrize("path", [PEAKS, SUMMITS, STRANDED])
def test_fast_parser_agrees_with_checked_parser(path):
    """Plain tab-separated files take the compiled parser; every file can take the checked
    line-by-line parser (pandas), which must give the same columns."""
    text = open(path).read()
    ten = [line + "\t" * (9 - line.count("\t")) for line in text.splitlines()]
    longer = "\n".join(ten[:1] + [line + "\tx\ty" for line in ten[1:]])   # 12 columns
    for t in (text, text.replace("\n", "\r\n"), text.rstrip("\n"), "\n".join(ten), longer):
        plain, checked = _both(t)
        assert plain is not None or t is longer
        if plain is not None:
            _same(plain, checked)
    for odd in ("# c\n", "track x\n", "\n", "  \n", "chr1 1 2\n", "\tchr1\t1\t2\n"):
        assert regions._plain_columns((odd + text).encode()) is None
        assert regions._plain_columns((text + odd + text).encode()) is None


def test_missing_file(tmp_path):
    with pytest.raises(BamcoverError, match="no such file"):
        read_regions(tmp_path / "nope.bed")


def test_pybedtools_input():
    pybedtools = pytest.importorskip("pybedtools")
    from_tool = read_regions(pybedtools.BedTool(str(PEAKS)))
    pd.testing.assert_frame_equal(from_tool, read_regions(PEAKS))
    streamed = read_regions(pybedtools.BedTool("chr22 10 20 a 0 -\nchr22 5 9 b 0 +",
                                               from_string=True))
    assert streamed[["start", "strand"]].to_numpy().tolist() == [[10, "-"], [5, "+"]]


@pytest.mark.parametrize("text", [
    "chr1\t1\t5\n",                                              # BED3
    "chr1\t1\t5\tn\n\n\n",                                       # BED4, trailing newlines
    "chr1\t1\t5\tn\t7\t-\r\nchr2\t+3\t9\t\t\t\r\n",               # CRLF, '+' start, empty fields
    "chrX\t0\t10\tp\t0\t.\t1.5\t-1\t2\t-1\nchrX\t5\t8\tq\t0\t+\t1\t2\t3\t2\n",  # narrowPeak
    "chr1\t5\t1\tn\t0\t+\n",                                     # start > end: checked later
    "chr1\t1\t5\tn\t0\t*\n",                                     # bad strand: checked later
    "chr1\t1\t5\tpeak one\t0\t+\n",                              # a space inside a name
])
def test_compiled_parser_equals_checked_parser(text):
    plain, checked = _both(text)
    assert plain is not None
    _same(plain, checked)


@pytest.mark.parametrize("text", [
    "# c\nchr1\t1\t5\n", "track x\nchr1\t1\t5\n", "browser x\nchr1\t1\t5\n",
    "chr1\t1\t5\n\nchr1\t2\t6\n", " chr1\t1\t5\n", "chr1 1 5\n", "chr1\t1\n",
    "chr1\t1.5\t5\n", "chr1\t 1\t5\n", "chr1\t1\t5\t.\t0\t+\t1\t2\t3\tx\n",
    "chr1\t1\t5\t.\t0\t+\t1\t2\t3\t4\t5\n", "chr1\t1\t5\rchr1\t2\t6\n", "",
    "chr1\t1\t5\t.\t0\t+\t1\t2\t3\t+4\n", "chr1\t1\t99999999999999999999\n",
])
def test_compiled_parser_leaves_unusual_text_to_the_checked_parser(text):
    assert regions._plain_columns(text.encode()) is None
