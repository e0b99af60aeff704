"""Reads: opening and checking BAM files, and turning records into covered intervals.

Which records count
    Records with any ``flag_exclude`` bit (default unmapped 0x4, secondary 0x100, QC-fail
    0x200, supplementary 0x800; ``ignore_duplicates`` adds 0x400) are skipped, as are
    records lacking a ``flag_include`` bit or with MAPQ < ``min_mapq``.
Where the 5' end is
    ``reference_start`` on forward reads, ``reference_end - 1`` on reverse reads. A shift
    S moves it S bases in the read's direction (forward reads by ``shift``, reverse reads by
    ``shift_reverse``).
What a record covers
    ``fragment_size=None``: the aligned span ``[reference_start, reference_end)`` (deletions
    and introns included), shifted like the 5' end. ``fragment_size=F``: F bases from the
    shifted 5' end in the read's direction. With ``pairs``, a properly paired record
    (flag 0x1 and 0x2, mate on the same chromosome, 0 < |TLEN| ≤ ``max_fragment_length``)
    stands for its fragment ``[pos, pos + TLEN)``, counted once through the mate with a
    positive TLEN (the filters are those of that mate); the fragment's left end moves right
    by ``shift`` and its right end left by ``shift_reverse``; its strand is mate 1's. Other
    records fall back to the single-read rule.
Chromosome ends
    Intervals are clipped to ``[0, chromosome length)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from dataclasses import dataclass

import numpy as np

from .errors import BamcoverError
from .schema import BAM_SUFFIX, INDEX_SUFFIXES

log = logging.getLogger("bamcover")


def _load_kernel():
    """The compiled kernel, or None. Built against the system's libhts it loads as it is;
    built against pysam's htslib, its symbols come from pysam's libchtslib, made visible
    by re-opening that library RTLD_GLOBAL first."""
    try:
        from . import _kernel
        return _kernel
    except ImportError:
        pass
    try:
        import pysam.libchtslib
        ctypes.CDLL(pysam.libchtslib.__file__, mode=ctypes.RTLD_GLOBAL)
        from . import _kernel
    except (ImportError, OSError):  # pragma: no cover - only where the build failed
        return None
    return _kernel


_kernel = _load_kernel()


def kernel_module():
    """The compiled kernel module, or None where only the pysam fallback runs; for
    :mod:`bamcover.kernels` alone (the other modules call kernels' functions, which
    dispatch themselves).

    Returns
    -------
    module or None
        ``bamcover._kernel``; read at each call, so that a test may set ``_kernel`` to
        None to run the fallbacks.
    """
    return _kernel


def _pysam():
    """pysam, with htslib's own stderr messages off: a broken BAM gives bamcover's one
    line, not ``[E::bgzf_read] ...`` lines before it (pysam raises for each of them)."""
    import pysam

    pysam.set_verbosity(0)
    return pysam


#: the record reader in use: 'htslib-system', 'htslib-pysam' or 'pysam' (the fallback)
KERNEL = "pysam" if _kernel is None else f"htslib-{_kernel.HTSLIB}"


@dataclass(frozen=True)
class Bam:
    """A checked, indexed, coordinate-sorted BAM."""

    path: str
    index: str
    lengths: dict[str, int]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def _find_index(path: str) -> str | None:
    bai, csi = INDEX_SUFFIXES
    stem = path.removesuffix(BAM_SUFFIX)
    for candidate in (path + bai, stem + bai, path + csi):
        if os.path.exists(candidate):
            return candidate
    return None


def open_bam(path: str | os.PathLike, build_index: bool = True) -> Bam:
    """Check a BAM (readable, not truncated, coordinate-sorted, indexed) and read its
    chromosome lengths. A missing index is built next to the BAM when that directory is
    writable (logged), else it is an error.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BamcoverError(f"{path}: no such file")
    if os.path.isdir(path):
        raise BamcoverError(f"{path}: is a directory, not a BAM file")
    if not os.path.isfile(path):
        raise BamcoverError(f"{path}: not a regular file; a BAM is read through its index, "
                            "so it cannot come from a pipe")
    if not os.access(path, os.R_OK):
        raise BamcoverError(f"{path}: permission denied")
    try:
        text, lengths = _header(path)
    except (ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in msg or "EOF marker" in msg:
            raise BamcoverError(f"{path}: truncated BAM (no BGZF EOF marker)") from None
        raise BamcoverError(f"{path}: not a readable BAM file ({msg})") from None
    order = next((tag[3:] for line in text.splitlines() if line.startswith("@HD\t")
                  for tag in line.split("\t")[1:] if tag.startswith("SO:")), None)
    if order != "coordinate":
        raise BamcoverError(f"{path}: BAM is not coordinate-sorted (@HD SO:{order or 'absent'}); "
                            "run 'samtools sort'")
    if not lengths:
        raise BamcoverError(f"{path}: BAM header has no @SQ lines")
    index = _find_index(path)
    if index is None:
        index = _build_index(path, build_index)
    elif os.path.getmtime(index) < os.path.getmtime(path):
        log.warning("%s: index %s is older than the BAM; rebuild it if the BAM changed",
                    path, index)
    return Bam(path=path, index=index, lengths=lengths)


def _header(path: str) -> tuple[str, dict[str, int]]:
    """The header text and reference lengths (the kernel's reader, else pysam's)."""
    if _kernel is not None:
        return _kernel.bam_header(path)
    pysam = _pysam()
    with pysam.AlignmentFile(path, "rb", check_sq=False) as bam:
        return str(bam.header), dict(zip(bam.references, bam.lengths, strict=True))


def _build_index(path: str, allowed: bool) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not allowed or not os.access(directory, os.W_OK):
        raise BamcoverError(f"{path}: BAM has no index (.bai/.csi) and its directory is not "
                            "writable; run 'samtools index'")
    pysam = _pysam()
    try:
        pysam.index(path)
    except pysam.SamtoolsError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise BamcoverError(f"{path}: cannot index the BAM ({detail})") from None
    log.warning("%s: built the missing index %s.bai", path, path)
    return path + INDEX_SUFFIXES[0]


_READERS: dict[tuple[int, str, str], object] = {}


def _reader(bam: Bam):
    # keyed by process: a forked worker must never share its parent's file offset
    key = (os.getpid(), bam.path, bam.index)
    if key not in _READERS:
        _READERS[key] = _kernel.BamReader(bam.path, bam.index)
    return _READERS[key]


def intervals(bam: Bam, chrom: str, starts: np.ndarray, ends: np.ndarray,
              rules: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covered intervals of the records overlapping the sorted, disjoint regions
    ``[starts, ends)`` of ``chrom``; each record is read once.

    Returns
    -------
    ``(start, end, reverse)`` arrays (int64, int64, uint8), clipped to the chromosome;
    records that cover nothing are left out.
    """
    length = bam.lengths[chrom]
    try:
        if _kernel is not None:
            return _reader(bam).intervals(chrom, length, starts, ends, rules)
        return _py_intervals(bam, chrom, length, starts, ends, rules)
    except OSError as exc:
        raise BamcoverError(str(exc).splitlines()[0]) from None


def library_size(bam: Bam, rules: dict[str, int]) -> int:
    """Records (fragments, with pairs) in the whole BAM that pass the filters, read front
    to back: with flags that let unmapped records in, the unplaced ones (``*``, after the
    last chromosome) count too, as ``samtools view -c`` counts them."""
    try:
        if _kernel is not None:
            return _kernel.BamReader(bam.path, bam.index).count(rules)
        return _py_library_size(bam, rules)
    except OSError as exc:
        raise BamcoverError(str(exc).splitlines()[0]) from None


# --- pure-pysam fallback: the same contract, a Python loop per record -------------------

def _py_interval(read, rules: dict[str, int], length: int):
    flag = read.flag
    if flag & rules["flag_exclude"] or (flag & rules["flag_include"]) != rules["flag_include"]:
        return None
    if read.mapping_quality < rules["min_mapq"]:
        return None
    rev = bool(flag & 0x10)
    tlen, maxlen = read.template_length, rules["max_fragment_length"]
    if (rules["pairs"] and flag & 0x1 and flag & 0x2 and read.next_reference_id == read.reference_id
            and tlen != 0 and -maxlen <= tlen <= maxlen):
        if tlen < 0:
            return None
        s = read.reference_start + rules["shift_forward"]
        e = read.reference_start + tlen - rules["shift_reverse"]
        rev = rev if flag & 0x40 else bool(flag & 0x20)
    else:
        start, end, size = read.reference_start, read.reference_end, rules["fragment_size"]
        if end is None:
            end = start + 1
        sf, sr = rules["shift_forward"], rules["shift_reverse"]
        if size == 0:
            s, e = (start - sr, end - sr) if rev else (start + sf, end + sf)
        elif rev:
            five = end - 1 - sr
            s, e = five - size + 1, five + 1
        else:
            s, e = start + sf, start + sf + size
    return max(s, 0), min(e, length), rev


def _py_intervals(bam: Bam, chrom, length, starts, ends, rules):
    out_s, out_e, out_r = [], [], []
    with _py_reading(bam, f" while reading {chrom}") as fh:
        previous_end = -1
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            for read in fh.fetch(chrom, start, end):
                if read.reference_start < previous_end:
                    continue  # already returned for the previous region
                got = _py_interval(read, rules, length)
                if got is not None and got[1] > got[0]:
                    out_s.append(got[0])
                    out_e.append(got[1])
                    out_r.append(got[2])
            previous_end = end
    return (np.asarray(out_s, np.int64), np.asarray(out_e, np.int64),
            np.asarray(out_r, np.uint8))


def _py_library_size(bam: Bam, rules):
    n = 0
    with _py_reading(bam, "") as fh:
        for read in fh.fetch(until_eof=True):     # every record, the unplaced ones too
            if _py_interval(read, rules, 1 << 62) is not None:
                n += 1
    return n


@contextlib.contextmanager
def _py_reading(bam: Bam, where: str):
    """The BAM opened with pysam; its read errors (and the close that fails after them)
    become the kernel's one line."""
    pysam = _pysam()
    try:
        fh = pysam.AlignmentFile(bam.path, "rb", index_filename=bam.index)
    except (OSError, ValueError) as exc:
        raise OSError(f"{bam.path}: cannot open as BAM ({exc})") from None
    try:
        yield fh
    except OSError as exc:
        raise OSError(f"{bam.path}: corrupt or truncated BAM{where} ({exc})") from None
    finally:
        with contextlib.suppress(OSError):
            fh.close()

