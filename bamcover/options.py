"""Options shared by the API, the CLI and the workers: one small frozen dataclass."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass

from .errors import BamcoverError
from .schema import NORMALIZATIONS, OPERATIONS, REFERENCE_POINTS

log = logging.getLogger("bamcover")

#: unmapped (0x4), secondary (0x100), QC-fail (0x200), supplementary (0x800)
DEFAULT_FLAG_EXCLUDE = 0x4 | 0x100 | 0x200 | 0x800
DUPLICATE = 0x400
TN5_SHIFT = (4, 5)
#: where cluster tasks keep their chunks, manifests and logs
DEFAULT_WORKDIR = "bamcover-tasks"


def parse_flag(text: str | int) -> int:
    """A SAM flag value as samtools reads one (C ``strtol`` base 0): decimal, ``0x`` hex
    or ``0``-prefixed octal. ValueError for anything else; the range is checked by
    :class:`Options`."""
    if isinstance(text, int):
        return text
    text = str(text).strip()
    if re.fullmatch(r"0[0-7]+", text):
        return int(text, 8)
    if not re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|[1-9][0-9]*|0)", text):
        raise ValueError(f"{text!r} is not a flag value")
    return int(text, 0)


def available_cores() -> int:
    """Cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Options:
    """How reads become coverage and how windows are laid out.

    Parameters
    ----------
    upstream, downstream
        Window around the reference point: offsets ``-upstream … downstream-1``; both are
        rounded up to a multiple of ``bin_size``.
    bin_size
        Bases summed per bin; bins are labelled by their first offset.
    reference_point
        ``start``, ``end``, ``center`` or ``summit`` (narrowPeak column 10).
    orient
        Flip windows of '-' regions so offsets read 5'→3' (default); ``False`` uses
        genomic offsets for every region.
    scale_regions, body_length
        deepTools-like scale-regions mode: each region's body ``[start, end)`` is scaled to
        ``body_length / bin_size`` bins, with unscaled flanks of ``upstream`` bases 5' and
        ``downstream`` bases 3' (``reference_point`` is ignored). Every bin holds the mean
        per-base coverage (float64). ``body_length`` must be a positive multiple of
        ``bin_size``.
    fragment_size
        ``None`` covers each read's aligned span; an integer F ≥ 1 covers F bases from
        the (shifted) 5' end in the read's direction.
    shift, shift_reverse
        Move the 5' end this many bases in the read's direction, on forward and reverse
        reads (``shift_reverse=None`` means the same as ``shift``). Tn5: 4 and 5.
    pairs
        A properly paired fragment (|TLEN| ≤ ``max_fragment_length``) covers its insert
        and counts once; other reads fall back to ``fragment_size``.
    strand_wise
        Two channels, ``sense`` and ``antisense``, instead of ``total``.
    min_mapq, ignore_duplicates, flag_include, flag_exclude
        Read filters (``flag_exclude`` replaces the default 0xB04; duplicates add 0x400).
    normalize
        ``none``, ``cpm`` (× 10⁶ / reads passing the filters) or ``rpkm`` (× 10⁹ /
        (reads passing the filters × bin size)).
    scale_factor
        Multiplies every value after normalisation (e.g. a spike-in factor).
    operation, pseudocount
        With a control BAM: ``log2((sample + p) / (control + p))`` or ``sample - control``,
        both normalised first.
    processes
        Worker processes (``None``: the cores this process may use; more than that are
        capped to it, with a note).
    chunk_bases
        Target window bases per chunk; results do not depend on it.
    """

    upstream: int = 2000
    downstream: int = 2000
    bin_size: int = 1
    reference_point: str = "center"
    orient: bool = True
    scale_regions: bool = False
    body_length: int = 1000
    fragment_size: int | None = None
    shift: int = 0
    shift_reverse: int | None = None
    pairs: bool = False
    max_fragment_length: int = 1000
    strand_wise: bool = False
    min_mapq: int = 0
    ignore_duplicates: bool = False
    flag_include: int = 0
    flag_exclude: int = DEFAULT_FLAG_EXCLUDE
    normalize: str = "none"
    scale_factor: float = 1.0
    operation: str = "log2"
    pseudocount: float = 1.0
    processes: int | None = None
    chunk_bases: int = 1_000_000

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise BamcoverError(msg)

        if self.bin_size <= 0:
            bad(f"--bin-size must be > 0 (got {self.bin_size})")
        if self.upstream < 0 or self.downstream < 0:
            bad("--upstream and --downstream must be ≥ 0")
        if self.scale_regions and (self.body_length <= 0
                                   or self.body_length % self.bin_size):
            bad(f"--body-length must be a positive multiple of --bin-size {self.bin_size} "
                f"(got {self.body_length})")
        if self.upstream + self.downstream == 0 and not self.scale_regions:
            bad("the window has length 0: set --upstream or --downstream > 0")
        if self.reference_point not in REFERENCE_POINTS:
            bad(f"--reference-point must be one of {', '.join(REFERENCE_POINTS)}")
        if self.fragment_size is not None and self.fragment_size < 1:
            bad(f"--fragment-size must be ≥ 1 or 'read' (got {self.fragment_size})")
        if not 0 <= self.min_mapq <= 255:
            bad("--min-mapq must be within 0..255")
        for name in ("flag_include", "flag_exclude"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF:
                bad(f"--sam-{name.replace('_', '-')} must be a 16-bit SAM flag "
                    f"(0..0xffff; got {value:#x})")
        excluded = self.flag_exclude | (DUPLICATE if self.ignore_duplicates else 0)
        both = self.flag_include & excluded
        if both:  # no record can have a bit and lack it: every count would be 0
            dup = " with --ignore-duplicates" if self.ignore_duplicates else ""
            bad(f"--sam-flag-include {self.flag_include:#x} and --sam-flag-exclude "
                f"{self.flag_exclude:#x}{dup} share bit {both:#x}; no read can pass "
                "(drop it from one of them)")
        if self.normalize not in NORMALIZATIONS:
            bad(f"--normalize must be one of {', '.join(NORMALIZATIONS)}")
        if self.operation not in OPERATIONS:
            bad(f"--operation must be one of {', '.join(OPERATIONS)}")
        if not self.scale_factor > 0:
            bad(f"--scale-factor must be > 0 (got {self.scale_factor})")
        if self.pseudocount < 0:
            bad("--pseudocount must be ≥ 0")
        if self.max_fragment_length < 1:
            bad("--max-fragment-length must be ≥ 1")
        if self.processes is not None and self.processes < 1:
            bad(f"--processes must be ≥ 1 (got {self.processes})")
        if self.chunk_bases < 1:
            bad("chunk_bases must be ≥ 1")

    def replace(self, **changes) -> Options:
        return dataclasses.replace(self, **changes)

    @property
    def n_processes(self) -> int:
        """Processes to run: ``processes`` capped at the cores this process may use (each
        worker costs memory, about 40 MB, and more than the cores buy no speed); the cap is
        logged once per Options."""
        cores = available_cores()
        if self.processes is None or self.processes <= cores:
            return self.processes or cores
        if not self.__dict__.get("_capped_noted"):
            object.__setattr__(self, "_capped_noted", True)
            log.info("--processes %d is more than the %d cores this process may use; using %d",
                     self.processes, cores, cores)
        return cores

    @property
    def window_upstream(self) -> int:
        """Upstream length rounded up to whole bins."""
        return -(-self.upstream // self.bin_size) * self.bin_size

    @property
    def window_downstream(self) -> int:
        return -(-self.downstream // self.bin_size) * self.bin_size

    @property
    def window_length(self) -> int:
        return self.window_upstream + self.window_downstream

    @property
    def body_bins(self) -> int:
        """Bins of the scaled body (0 unless ``scale_regions``)."""
        return self.body_length // self.bin_size if self.scale_regions else 0

    @property
    def n_bins(self) -> int:
        return self.window_length // self.bin_size + self.body_bins

    @property
    def offsets(self) -> list[int]:
        """Bin labels: the first offset of each bin. In scale-regions mode the body bins
        are labelled in scaled coordinates ``0 … body_length - bin_size`` and the
        downstream flank continues from ``body_length``."""
        body = self.body_bins * self.bin_size
        return list(range(-self.window_upstream, body + self.window_downstream, self.bin_size))

    @property
    def channels(self) -> tuple[str, ...]:
        return ("sense", "antisense") if self.strand_wise else ("total",)

    @property
    def fetch_margin(self) -> int:
        """Bases around a window within which a record's alignment must start or end for
        its covered interval to reach the window."""
        shift = abs(self.shift) + abs(self.shift_reverse if self.shift_reverse is not None
                                      else self.shift)
        reach = self.fragment_size or 0
        if self.pairs:
            reach = max(reach, self.max_fragment_length)
        return reach + shift + 1

    def read_rules(self) -> dict[str, int]:
        """The per-record rules the read kernel applies."""
        exclude = self.flag_exclude | (DUPLICATE if self.ignore_duplicates else 0)
        return {
            "flag_include": self.flag_include,
            "flag_exclude": exclude,
            "min_mapq": self.min_mapq,
            "fragment_size": self.fragment_size or 0,
            "shift_forward": self.shift,
            "shift_reverse": self.shift if self.shift_reverse is None else self.shift_reverse,
            "pairs": int(self.pairs),
            "max_fragment_length": self.max_fragment_length,
        }

    def warn_rounding(self) -> None:
        """Log when the window was widened to whole bins."""
        for name, asked, used in (("upstream", self.upstream, self.window_upstream),
                                  ("downstream", self.downstream, self.window_downstream)):
            if asked != used:
                log.warning("--%s %d is not a multiple of --bin-size %d; using %d",
                            name, asked, self.bin_size, used)


def with_overrides(options: Options | None, overrides: dict) -> Options:
    """The options an API call runs with.

    Parameters
    ----------
    options
        The caller's :class:`Options` (default: the defaults).
    overrides
        Fields by name that replace those of ``options``.

    Returns
    -------
    Options
    """
    options = options or Options()
    return options.replace(**overrides) if overrides else options
