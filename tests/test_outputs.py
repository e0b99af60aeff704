"""Table writing: count tables go through Arrow's CSV writer and must come out byte for byte
as pandas' to_csv writes them (the format users' scripts already parse); anything else
goes through pandas itself."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from bamcover import text
from bamcover.outputs import write_table

from .conftest import SE_CHIP, SUMMITS, WINDOW


def _pandas_text(df: pd.DataFrame, sep: str) -> bytes:
    fmt = "%.9g" if any(df.dtypes == "float32") else None
    return df.to_csv(sep=sep, index=False, na_rep="nan", float_format=fmt).encode()


def _read(path) -> bytes:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read()


@pytest.fixture
def fast_path_used(monkeypatch) -> list[bool]:
    """What each call of the Arrow writer returned (True: it wrote the file)."""
    used: list[bool] = []
    real = text.write_counts_text
    monkeypatch.setattr(text, "write_counts_text",
                        lambda *a: used.append(real(*a)) or used[-1])
    return used


def _counts(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    values = rng.poisson(4, size=(n, 50)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[0, 0] = 16_777_215                   # largest whole float32 bamcover writes
    df = pd.DataFrame({"chrom": [f"chr{i % 3}" for i in range(n)],
                       "start": np.arange(n, dtype=np.int64) * 1000 - 5,
                       "name": [f"peak {i}" for i in range(n)], "strand": "."})
    return pd.concat([df, pd.DataFrame(values, columns=[str(c) for c in range(-25, 25)])],
                     axis=1)


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz", ".csv"])
def test_count_tables_are_written_as_pandas_writes_them(tmp_path, fast_path_used, suffix):
    df = _counts()
    path = tmp_path / f"m{suffix}"
    write_table(df, path)
    assert fast_path_used == [True]
    assert _read(path) == _pandas_text(df, "," if ".csv" in suffix else "\t")


@pytest.mark.parametrize("change", ["fraction", "float64", "tab in name", "quote in name",
                                    "missing name", "comma in csv", "inf", "1e9", "-0",
                                    "tab in header", "repeated header"])
def test_other_tables_fall_back_to_pandas(tmp_path, fast_path_used, change):
    df, suffix = _counts(40), ".tsv"
    if change == "fraction":
        df["0"] = df["0"] + np.float32(0.5)
    elif change == "float64":
        df["0"] = df["0"].astype(np.float64)
    elif change == "tab in name":
        df.loc[3, "name"] = "a\tb"
    elif change == "quote in name":
        df.loc[3, "name"] = 'a"b'
    elif change == "tab in header":
        df = df.rename(columns={"3": "3\t4"})
    elif change == "repeated header":
        df = df.rename(columns={"3": "4"})
    elif change in ("inf", "1e9", "-0"):
        df.loc[5, "3"] = {"inf": np.inf, "1e9": 1e9, "-0": -0.0}[change]
    elif change == "missing name":
        df["name"] = df["name"].astype(object)
        df.loc[3, "name"] = None
    else:
        df.loc[3, "name"], suffix = "a,b", ".csv"
    path = tmp_path / f"m{suffix}"
    write_table(df, path)
    # a matrix's negative zero is written by the kernel, as pandas writes it ('-0')
    assert fast_path_used == [change == "-0"]
    assert _read(path) == _pandas_text(df, "," if suffix == ".csv" else "\t")


def test_real_matrix_file_round_trips(tmp_path, fast_path_used):
    """The CLI's matrix file on the fixture goes the fast way, comes out as pandas would
    have written it, and reads back as the same numbers."""
    import bamcover
    from bamcover import formats

    mat = bamcover.matrix(SUMMITS, SE_CHIP, **WINDOW)
    table = formats.matrix_table(mat)
    path = tmp_path / "matrix.tsv.gz"
    write_table(table, path)
    assert fast_path_used == [True]
    assert _read(path) == _pandas_text(table, "\t")
    back = pd.read_csv(path, sep="\t")
    np.testing.assert_array_equal(back.iloc[:, 7:].to_numpy(np.float64),
                                  mat.to_numpy(np.float64))


# --- numpy columns (a profile run's table), written without pandas ---------------------------

def _profile_columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 400
    mean = rng.gamma(2.0, 3.0, n) / 7
    mean[:5] = [np.nan, 0.0, -0.0, 1e-17, 123456789.125]
    return {"offset": np.arange(-200, 200, dtype=np.int64), "sense_mean": mean,
            "sense_median": np.round(mean * 2) / 2, "sense_std": np.sqrt(mean) / 3,
            "sense_n": rng.integers(0, 10_000, n), "antisense_mean": mean * 1e6 / 12345.0}


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz", ".csv", "-"])
def test_numpy_columns_are_written_as_pandas_writes_the_frame(tmp_path, capsys, suffix):
    """The oracle is pandas' own to_csv of the same table as a DataFrame indexed by offset
    (what ``write_table(result.profile, index=True)`` wrote before)."""
    cols = _profile_columns()
    frame = pd.DataFrame(cols).set_index("offset")
    sep = "," if suffix == ".csv" else "\t"
    want = frame.to_csv(sep=sep, na_rep="nan").encode()
    if suffix == "-":
        write_table(cols, "-")
        assert capsys.readouterr().out.encode() == want
    else:
        write_table(cols, tmp_path / f"p{suffix}")
        assert _read(tmp_path / f"p{suffix}") == want


def test_numpy_columns_to_parquet_keep_attrs(tmp_path):
    cols = _profile_columns()
    write_table(cols, tmp_path / "p.parquet", attrs={"units": "CPM"})
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert back.attrs.get("units") == "CPM"
    pd.testing.assert_frame_equal(back, pd.DataFrame(cols))


@pytest.mark.parametrize("other", [np.array([0.1, 1.5, np.nan], np.float32),
                                   np.array(["a", "b", "c"], object)])
def test_numpy_columns_of_other_types_go_through_pandas(tmp_path, other):
    """float32 0.1 is '0.1' through numpy's astype(str) but '0.100000001' through pandas'
    %.9g: the bytes show which writer ran."""
    cols = {"offset": np.arange(3), "value": other}
    write_table(cols, tmp_path / "p.tsv")
    assert _read(tmp_path / "p.tsv") == _pandas_text(pd.DataFrame(cols), "\t")


@pytest.mark.parametrize("case", ["matrix", "float64 and NaN", "mixed floats", "empty"])
def test_parquet_is_the_table_pandas_writes(tmp_path, case):
    """Parquet files hold what ``df.to_parquet(index=False)`` stores: the same Arrow
    table, schema and pandas metadata (attrs too), NaN as null, whichever way a float
    column went (handed over as it is, or scanned for NaN)."""
    import pyarrow.parquet as pq

    import bamcover
    from bamcover import formats

    if case == "matrix":
        df = formats.matrix_table(bamcover.matrix(SUMMITS, SE_CHIP, **WINDOW))
        df.iloc[2, 7:20] = np.nan                # a window clipped at a chromosome end
    else:
        df = _counts()
        if case == "float64 and NaN":
            df = df.astype({c: np.float64 for c in df.columns[4:]})
            df.iloc[3, 6] = np.inf
            df.iloc[4, 6] = -np.inf
        elif case == "mixed floats":
            df = df.astype({"0": np.float64})
        elif case == "empty":
            df = df.iloc[:0]
    df.attrs.update(units="reads", body_length=3000)
    write_table(df, tmp_path / "ours.parquet")
    df.to_parquet(tmp_path / "pandas.parquet", index=False)
    ours, theirs = pq.read_table(tmp_path / "ours.parquet"), \
        pq.read_table(tmp_path / "pandas.parquet")
    assert ours.equals(theirs, check_metadata=True)
    assert [c.null_count for c in ours.columns] == [c.null_count for c in theirs.columns]
    back = pd.read_parquet(tmp_path / "ours.parquet")
    assert back.attrs == df.attrs
    pd.testing.assert_frame_equal(back, pd.read_parquet(tmp_path / "pandas.parquet"))


def test_parquet_with_duplicate_names_fails_as_pandas_does(tmp_path):
    """Duplicate column names take pandas' own path, so the error is pandas' and nothing
    is left behind."""
    df = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    with pytest.raises(ValueError) as theirs:
        df.to_parquet(tmp_path / "pandas.parquet", index=False)
    with pytest.raises(ValueError) as ours:
        write_table(df, tmp_path / "ours.parquet")
    assert str(ours.value) == str(theirs.value)
    assert not any(p.name.startswith((".ours", "ours")) for p in tmp_path.iterdir())


@pytest.mark.parametrize("late", [None, "fraction", "C-ordered"])
def test_matrices_are_written_in_parts_on_threads(tmp_path, fast_path_used, monkeypatch, late):
    """A matrix's rows are formatted and gzipped in parts (7 rows each here) on threads: the
    same bytes for any number of threads, what pandas writes once decompressed. A value
    that is not a count in a late part sends the whole file to pandas."""
    monkeypatch.setattr(text, "PART_CELLS", 50 * 7)
    df = _counts(100)
    if late == "fraction":
        df.loc[97, "3"] = np.float32(0.5)
    elif late == "C-ordered":          # values not in pandas' column layout
        df = df.iloc[:, :4].join(pd.DataFrame(np.ascontiguousarray(df.iloc[:, 4:].to_numpy()),
                                              columns=df.columns[4:]))
    files = []
    for threads in (1, 3):
        path = tmp_path / f"m{threads}.tsv.gz"
        write_table(df, path, threads=threads)
        files.append(path.read_bytes())
    assert fast_path_used == [late != "fraction"] * 2
    assert gzip.decompress(files[0]) == gzip.decompress(files[1]) == _pandas_text(df, "\t")
    if late != "fraction":
        assert files[0] == files[1] and files[0].count(b"\x1f\x8b\x08") > 100 // 7


def test_count_tables_without_the_kernel_still_skip_pandas(tmp_path, fast_path_used,
                                                           monkeypatch):
    """Without the compiled kernel (the pysam fallback install) a matrix still goes through
    Arrow's writer in one piece, in the same bytes."""
    from bamcover import reads

    monkeypatch.setattr(reads, "_kernel", None)
    df = _counts()
    path = tmp_path / "m.tsv.gz"
    write_table(df, path, threads=2)
    assert fast_path_used == [True]
    assert _read(path) == _pandas_text(df, "\t")
