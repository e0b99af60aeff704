"""Hostile input at the command line, generated: random bytes and BED-ish lines as region
files, random option values. Whatever comes in, a run either succeeds with every output
complete, or exits 2 with exactly one stderr line; never an input changed, never a
partial or temporary file left."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bamcover.cli import invoke

from .conftest import SE_CHIP, SUMMITS

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

_ROOT = Path(tempfile.mkdtemp(prefix="bamcover-fuzz-"))
BAM = _ROOT / "s.bam"
shutil.copy(SE_CHIP, BAM)
shutil.copy(str(SE_CHIP) + ".bai", str(BAM) + ".bai")
INPUT_DIGESTS = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (BAM, Path(f"{BAM}.bai"))}
SUMMIT_LINES = SUMMITS.read_text().splitlines()


def run_and_check(region_bytes: bytes, options: list[str], with_matrix: bool = True) -> int:
    """Run ``profile`` on these region bytes and options; assert the all-or-nothing
    contract and return the exit status."""
    work = Path(tempfile.mkdtemp(dir=_ROOT))
    regions = work / "r.bed"
    regions.write_bytes(region_bytes)
    out = work / "out"
    out.mkdir()
    args = ["profile", str(regions), str(BAM), "-q", "-p", "1", "-o", str(out / "p.tsv"),
            *options]
    if with_matrix:
        args += ["--matrix", str(out / "m.tsv")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = invoke(args)
    lines = err.getvalue().splitlines()
    assert code in (0, 2), (code, lines)
    assert regions.read_bytes() == region_bytes
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in INPUT_DIGESTS} \
        == INPUT_DIGESTS
    left = sorted(p.name for p in out.iterdir())
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("bamcover: error: "), lines
        assert left == []
    else:
        want = ["p.tsv", "p.tsv.provenance.json"]
        want += ["m.tsv", "m.tsv.provenance.json"] if with_matrix else []
        assert left == sorted(want)
        profile = pd.read_csv(out / "p.tsv", sep="\t")
        assert profile.columns[0] == "offset" and len(profile) > 0
        if with_matrix:
            matrix = pd.read_csv(out / "m.tsv", sep="\t")
            assert list(matrix.columns[:3]) == ["chrom", "start", "end"]
            assert matrix.shape[1] == 7 + len(profile)
    assert not [p for p in work.rglob("*") if p.name.endswith(".tmp")]
    shutil.rmtree(work)
    return code


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_as_a_region_file(data):
    run_and_check(data, ["-u", "100", "-d", "100"])


@FUZZ
@given(st.integers(0, 2000), st.binary(min_size=1, max_size=8), st.integers(0, 8))
def test_a_real_region_file_with_bytes_replaced(at, data, cut):
    good = ("\n".join(SUMMIT_LINES[:40]) + "\n").encode()
    at = min(at, len(good))
    run_and_check(good[:at] + data + good[at + cut:], ["-u", "100", "-d", "100"])


_field = st.one_of(
    st.integers(-5, 60_000_000).map(str),
    st.sampled_from(["", "x", "1e5", "-0", "0x10", "99999999999999999999", "1.5", " 7"]),
)
_chrom = st.sampled_from(["chr22", "chr22", "chr1", "22", "chrX_random", "", "chr22 ",
                          "\ufeffchr22"])
_line = st.one_of(
    st.tuples(_chrom, _field, _field, st.sampled_from(["p", ".", ""]), _field,
              st.sampled_from(["+", "-", ".", "x", ""]), st.lists(_field, max_size=5))
    .map(lambda t: "\t".join([*t[:6], *t[6]])),
    st.tuples(_chrom, _field, _field).map(lambda t: "\t".join(t)),
    st.sampled_from(["track name=x", "browser position chr22", "# comment", "", "\t\t",
                     "chr22 100 200"]),
    st.sampled_from(SUMMIT_LINES),
)


@FUZZ
@given(st.lists(_line, min_size=1, max_size=12), st.sampled_from(["\n", "\r\n"]),
       st.booleans())
def test_bedish_lines(lines, newline, summit):
    text = newline.join(lines) + newline
    run_and_check(text.encode(), ["-u", "150", "-d", "150", "-b", "10"] +
                  (["--reference-point", "summit"] if summit else []))


_values = {
    "--upstream": st.one_of(st.integers(-10, 800).map(str), st.just("abc")),
    "--downstream": st.one_of(st.integers(-10, 800).map(str), st.just("")),
    "--bin-size": st.one_of(st.integers(-2, 60).map(str), st.just("1.5")),
    "--fragment-size": st.one_of(st.integers(-3, 400).map(str),
                                 st.sampled_from(["read", "READ", "auto", "0"])),
    "--shift": st.integers(-300, 300).map(str),
    "--shift-reverse": st.integers(-300, 300).map(str),
    "--min-mapq": st.one_of(st.integers(-5, 300).map(str), st.just("q")),
    "--sam-flag-exclude": st.sampled_from(["0", "0x4", "abc", "4096", "0x10000", "-1", "0o7",
                                           "077", "1024"]),
    "--sam-flag-include": st.sampled_from(["0", "1", "0x2", "0x4", "zz", "65536"]),
    "--reference-point": st.sampled_from(["start", "end", "center", "summit", "TSS"]),
    "--normalize": st.sampled_from(["none", "cpm", "rpkm", "bpm"]),
    "--scale-factor": st.sampled_from(["1", "0", "-2", "nan", "inf", "x"]),
    "--processes": st.sampled_from(["1", "2", "0", "-1", "64"]),
    "--max-fragment-length": st.integers(-1, 2000).map(str),
    "--body-length": st.integers(-10, 600).map(str),
}
_flags = ["--strand-wise", "--pairs", "--tn5", "--ignore-duplicates", "--no-orient",
          "--scale-regions"]


@st.composite
def _options(draw) -> list[str]:
    names = draw(st.lists(st.sampled_from(sorted(_values)), max_size=5, unique=True))
    out = []
    for name in names:
        out += [name, draw(_values[name])]
    out += draw(st.lists(st.sampled_from(_flags), max_size=3, unique=True))
    return out


@FUZZ
@given(_options(), st.booleans())
def test_random_option_values(options, with_matrix):
    summits = "\n".join(SUMMIT_LINES[:60]) + "\n"
    if "--upstream" not in options:
        options = [*options, "--upstream", "300"]
    if "--downstream" not in options:
        options = [*options, "--downstream", "300"]
    run_and_check(summits.encode(), options, with_matrix)
