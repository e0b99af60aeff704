"""bamcover.schema: the one file-name → label rule, for inputs and for tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from bamcover.schema import label_from_path, separator


@pytest.mark.parametrize("path,label", [
    ("data/chip.bam", "chip"),
    ("CHIP.BAM", "CHIP"),
    ("peaks.narrowPeak", "peaks"),
    ("peaks.narrowPeak.gz", "peaks"),
    ("genes.bed.gz", "genes"),
    ("a.b.tsv", "a.b"),
    ("signal.bigwig", "signal.bigwig"),       # not a known extension: the whole name
    ("noext", "noext"),
    ("x.mat.gz", "x.mat"),
    (Path("dir/ctrl.bam"), "ctrl"),
])
def test_input_labels(path, label):
    assert label_from_path(path) == label


@pytest.mark.parametrize("path,label", [
    ("out/profile.tsv.gz", "profile"),
    ("m.mat.gz", "m"),
    ("p.parquet", "p"),
    ("p.csv", "p"),
    ("chip.bam", "chip.bam"),
    ("P.TSV", "P.TSV"),                       # table suffixes are matched as written
])
def test_table_labels(path, label):
    assert label_from_path(path, table=True) == label


def test_separator():
    assert separator("a.csv") == separator("a.csv.gz") == ","
    assert separator("a.tsv") == separator("a.txt.gz") == "\t"
