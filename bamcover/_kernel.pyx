# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled read kernel: reads BAM records through htslib (the copy pysam ships) and
turns each record that passes the filters into the genomic interval it covers.

Semantics are documented in ``bamcover.reads``; ``bamcover.reads._py_intervals`` is the
pure-pysam fallback with the same contract.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.math cimport NAN
from libc.stdlib cimport malloc, free
import os

import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    const char *BAMCOVER_HTSLIB

#: which htslib this kernel was built against: "system" (libhts, libdeflate) or "pysam"
HTSLIB = BAMCOVER_HTSLIB.decode()

cdef extern from "htslib/hts.h" nogil:
    ctypedef int64_t hts_pos_t
    ctypedef struct htsFile:
        pass
    ctypedef struct hts_idx_t:
        pass
    ctypedef struct hts_itr_t:
        pass
    htsFile *hts_open(const char *fn, const char *mode)
    int hts_close(htsFile *fp)
    void hts_idx_destroy(hts_idx_t *idx)
    void hts_itr_destroy(hts_itr_t *iter)
    int hts_check_EOF(htsFile *fp)
    void hts_set_cache_size(htsFile *fp, int n)
    ctypedef enum htsExactFormat:
        HTS_FORMAT_BAM "bam"
    ctypedef struct htsFormat:
        htsExactFormat format
    const htsFormat *hts_get_format(htsFile *fp)

cdef extern from "htslib/hts_log.h" nogil:
    cdef enum htsLogLevel:
        HTS_LOG_OFF
    void hts_set_log_level(htsLogLevel level)

cdef extern from "htslib/sam.h" nogil:
    ctypedef struct sam_hdr_t:
        pass
    ctypedef struct bam1_core_t:
        hts_pos_t pos
        int32_t tid
        uint16_t bin
        uint8_t qual
        uint8_t l_extranul
        uint16_t flag
        uint16_t l_qname
        uint32_t n_cigar
        int32_t l_qseq
        int32_t mtid
        hts_pos_t mpos
        hts_pos_t isize
    ctypedef struct bam1_t:
        bam1_core_t core
    bam1_t *bam_init1()
    void bam_destroy1(bam1_t *b)
    sam_hdr_t *sam_hdr_read(htsFile *fp)
    void sam_hdr_destroy(sam_hdr_t *h)
    int sam_hdr_name2tid(sam_hdr_t *h, const char *ref)
    int sam_hdr_nref(const sam_hdr_t *h)
    const char *sam_hdr_tid2name(const sam_hdr_t *h, int tid)
    hts_pos_t sam_hdr_tid2len(const sam_hdr_t *h, int tid)
    const char *sam_hdr_str(sam_hdr_t *h)
    hts_idx_t *sam_index_load2(htsFile *fp, const char *fn, const char *fnidx)
    hts_itr_t *sam_itr_regarray(const hts_idx_t *idx, sam_hdr_t *hdr, char **regarray, unsigned int regcount)
    int sam_itr_next(htsFile *htsfp, hts_itr_t *itr, bam1_t *r)
    int sam_read1(htsFile *fp, sam_hdr_t *h, bam1_t *b)
    hts_pos_t bam_endpos(const bam1_t *b)

# htslib's own messages ('[E::bgzf_read] ...') would come on stderr before bamcover's one
# line about the same broken file: every failure it reports reaches us as a return value.
hts_set_log_level(HTS_LOG_OFF)

cdef enum:
    BAM_FPAIRED = 0x1
    BAM_FPROPER_PAIR = 0x2
    BAM_FREVERSE = 0x10
    BAM_FMREVERSE = 0x20
    BAM_FREAD1 = 0x40


cdef class _Buffer:
    """Growable int64/uint8 columns for (start, end, reverse) intervals."""
    cdef int64_t *starts
    cdef int64_t *ends
    cdef uint8_t *rev
    cdef Py_ssize_t n, cap

    def __cinit__(self):
        self.cap = 1 << 16
        self.n = 0
        self.starts = <int64_t *> malloc(self.cap * sizeof(int64_t))
        self.ends = <int64_t *> malloc(self.cap * sizeof(int64_t))
        self.rev = <uint8_t *> malloc(self.cap * sizeof(uint8_t))
        if not self.starts or not self.ends or not self.rev:
            raise MemoryError()

    def __dealloc__(self):
        free(self.starts)
        free(self.ends)
        free(self.rev)

    cdef int grow(self) except -1:
        cdef Py_ssize_t cap = self.cap * 2
        cdef int64_t *s = <int64_t *> malloc(cap * sizeof(int64_t))
        cdef int64_t *e = <int64_t *> malloc(cap * sizeof(int64_t))
        cdef uint8_t *r = <uint8_t *> malloc(cap * sizeof(uint8_t))
        if not s or not e or not r:
            free(s)
            free(e)
            free(r)
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self.n):
            s[i] = self.starts[i]
            e[i] = self.ends[i]
            r[i] = self.rev[i]
        free(self.starts)
        free(self.ends)
        free(self.rev)
        self.starts, self.ends, self.rev, self.cap = s, e, r, cap
        return 0

    cdef object arrays(self):
        starts = np.empty(self.n, dtype=np.int64)
        ends = np.empty(self.n, dtype=np.int64)
        rev = np.empty(self.n, dtype=np.uint8)
        cdef int64_t[::1] sv = starts
        cdef int64_t[::1] ev = ends
        cdef uint8_t[::1] rv = rev
        cdef Py_ssize_t i
        for i in range(self.n):
            sv[i] = self.starts[i]
            ev[i] = self.ends[i]
            rv[i] = self.rev[i]
        return starts, ends, rev


cdef struct Rules:
    uint16_t flag_include
    uint16_t flag_exclude
    uint8_t min_mapq
    int64_t fragment_size      # 0 = aligned span
    int64_t shift_forward
    int64_t shift_reverse
    int pairs
    int64_t max_fragment_length
    int64_t chrom_length


cdef inline int interval(const bam1_t *b, const Rules *r, int64_t *s, int64_t *e, uint8_t *rev) noexcept nogil:
    """Covered interval of one record: 1 if it covers bases, -1 if it passes the
    filters but covers nothing on the chromosome, 0 if the filters skip it."""
    cdef uint16_t flag = b.core.flag
    if (flag & r.flag_exclude) or (flag & r.flag_include) != r.flag_include:
        return 0
    if b.core.qual < r.min_mapq:
        return 0
    cdef int64_t start = b.core.pos, end, five, isize = b.core.isize
    cdef int is_rev = (flag & BAM_FREVERSE) != 0
    if (r.pairs and (flag & BAM_FPAIRED) and (flag & BAM_FPROPER_PAIR)
            and b.core.mtid == b.core.tid and isize != 0
            and -r.max_fragment_length <= isize <= r.max_fragment_length):
        if isize < 0:
            return 0  # counted through the leftmost mate
        s[0] = start + r.shift_forward
        e[0] = start + isize - r.shift_reverse
        if flag & BAM_FREAD1:
            rev[0] = is_rev
        else:
            rev[0] = (flag & BAM_FMREVERSE) != 0
    else:
        end = bam_endpos(b)
        rev[0] = is_rev
        if r.fragment_size == 0:
            if is_rev:
                s[0] = start - r.shift_reverse
                e[0] = end - r.shift_reverse
            else:
                s[0] = start + r.shift_forward
                e[0] = end + r.shift_forward
        elif is_rev:
            five = end - 1 - r.shift_reverse
            s[0] = five - r.fragment_size + 1
            e[0] = five + 1
        else:
            five = start + r.shift_forward
            s[0] = five
            e[0] = five + r.fragment_size
    if s[0] < 0:
        s[0] = 0
    if e[0] > r.chrom_length:
        e[0] = r.chrom_length
    return 1 if e[0] > s[0] else -1


cdef Rules make_rules(dict rules, int64_t chrom_length):
    cdef Rules r
    r.flag_include = rules["flag_include"]
    r.flag_exclude = rules["flag_exclude"]
    r.min_mapq = rules["min_mapq"]
    r.fragment_size = rules["fragment_size"]
    r.shift_forward = rules["shift_forward"]
    r.shift_reverse = rules["shift_reverse"]
    r.pairs = rules["pairs"]
    r.max_fragment_length = rules["max_fragment_length"]
    r.chrom_length = chrom_length
    return r


#: bytes of inflated BGZF blocks each reader keeps (htslib's block cache)
BLOCK_CACHE = 4 << 20


def bam_header(str path):
    """A BAM's header text and its reference lengths ``{name: length}``, read without
    pysam (whose import costs the command line 20-50 ms). OSError saying what is wrong:
    not BAM, no BGZF EOF marker (truncated), a header htslib cannot read."""
    cdef bytes fn = os.fsencode(path)
    cdef htsFile *fp = hts_open(fn, b"r")
    if fp == NULL:
        raise OSError("cannot open it")
    cdef sam_hdr_t *hdr = NULL
    cdef const char *text
    cdef int i
    try:
        if hts_get_format(fp).format != HTS_FORMAT_BAM:
            raise OSError("not in BAM format")
        if hts_check_EOF(fp) == 0:
            raise OSError("no BGZF EOF marker")
        hdr = sam_hdr_read(fp)
        if hdr == NULL:
            raise OSError("htslib cannot read its header")
        text = sam_hdr_str(hdr)
        lengths = {sam_hdr_tid2name(hdr, i).decode(): sam_hdr_tid2len(hdr, i)
                   for i in range(sam_hdr_nref(hdr))}
        return (text.decode("utf-8", "replace") if text != NULL else ""), lengths
    finally:
        if hdr != NULL:
            sam_hdr_destroy(hdr)
        hts_close(fp)


cdef class BamReader:
    """An open, indexed BAM: header, index and one reusable record buffer."""
    cdef htsFile *fp
    cdef sam_hdr_t *hdr
    cdef hts_idx_t *idx
    cdef bam1_t *b
    cdef readonly str path

    def __cinit__(self, str path, str index_path):
        self.path = path
        cdef bytes fn = os.fsencode(path), fnidx = os.fsencode(index_path)
        self.fp = hts_open(fn, b"r")
        if self.fp == NULL:
            raise OSError(f"{path}: cannot open as BAM")
        self.hdr = sam_hdr_read(self.fp)
        if self.hdr == NULL:
            raise OSError(f"{path}: cannot read the BAM header")
        self.idx = sam_index_load2(self.fp, fn, fnidx)
        if self.idx == NULL:
            raise OSError(f"{path}: cannot load the index {index_path}")
        self.b = bam_init1()
        # The multi-region iterator seeks to every region's first block, and neighbouring
        # regions often start in the block just read: cached, it is not inflated again
        # (50k summit windows over 20M reads: 7.1 s -> 5.5 s; 1 MB already does it).
        hts_set_cache_size(self.fp, BLOCK_CACHE)

    def __dealloc__(self):
        if self.b != NULL:
            bam_destroy1(self.b)
        if self.idx != NULL:
            hts_idx_destroy(self.idx)
        if self.hdr != NULL:
            sam_hdr_destroy(self.hdr)
        if self.fp != NULL:
            hts_close(self.fp)

    def intervals(self, str chrom, int64_t chrom_length, object starts, object ends, dict rules):
        """Intervals of the records overlapping any of the sorted, disjoint [starts, ends).

        Each record is read once (htslib's multi-region iterator). Returns
        ``(start, end, reverse)`` arrays in file order.
        """
        cdef Py_ssize_t n = len(starts), i
        cdef Rules r = make_rules(rules, chrom_length)
        cdef _Buffer buf = _Buffer()
        if n == 0:
            return buf.arrays()
        regions = [f"{{{chrom}}}:{int(starts[i]) + 1}-{int(ends[i])}".encode() for i in range(n)]
        cdef char **regarray = <char **> malloc(n * sizeof(char *))
        if regarray == NULL:
            raise MemoryError()
        for i in range(n):
            regarray[i] = regions[i]
        cdef hts_itr_t *itr = sam_itr_regarray(self.idx, self.hdr, regarray, <unsigned int> n)
        free(regarray)
        if itr == NULL:
            raise OSError(f"{self.path}: cannot query {chrom}")
        cdef int ret
        cdef int64_t s, e
        cdef uint8_t rv
        try:
            while True:
                ret = sam_itr_next(self.fp, itr, self.b)
                if ret < 0:
                    break
                if interval(self.b, &r, &s, &e, &rv) == 1:
                    if buf.n == buf.cap:
                        buf.grow()
                    buf.starts[buf.n] = s
                    buf.ends[buf.n] = e
                    buf.rev[buf.n] = rv
                    buf.n += 1
        finally:
            hts_itr_destroy(itr)
        if ret < -1:
            raise OSError(f"{self.path}: corrupt or truncated BAM while reading {chrom} (htslib error {ret})")
        return buf.arrays()

    def count(self, dict rules):
        """Number of records (fragments, with pairs) passing the filters in the whole file,
        read front to back: the unplaced ``*`` records at its end count too (when the flags
        let unmapped records in), as ``samtools view -c -F`` counts them."""
        cdef Rules r = make_rules(rules, 1 << 62)
        cdef int64_t total = 0, s, e
        cdef uint8_t rv
        cdef int ret
        cdef bytes fn = os.fsencode(self.path)
        cdef htsFile *fp = hts_open(fn, b"r")
        if fp == NULL:
            raise OSError(f"{self.path}: cannot open as BAM")
        cdef sam_hdr_t *hdr = sam_hdr_read(fp)
        cdef bam1_t *b = bam_init1()
        try:
            with nogil:
                while True:
                    ret = sam_read1(fp, hdr, b)
                    if ret < 0:
                        break
                    if interval(b, &r, &s, &e, &rv) != 0:
                        total += 1
        finally:
            bam_destroy1(b)
            sam_hdr_destroy(hdr)
            hts_close(fp)
        if ret < -1:
            raise OSError(f"{self.path}: corrupt or truncated BAM (htslib error {ret})")
        return total


# --- per-bin sums and profile accumulators (the numpy versions are the fallback) ------------

def window_sums(const uint32_t[::1] cum_a, object cum_b_obj, const int64_t[::1] ws,
                const int64_t[::1] cs, const int64_t[::1] ce, const int64_t[::1] off,
                const uint8_t[::1] flip, const uint8_t[::1] minus, int64_t size,
                int64_t nbins, int64_t length, int32_t[:, :, ::1] out, uint8_t[:, ::1] valid):
    """Bin sums of every window from cumulative coverage, oriented, in one pass.

    ``cum_a`` is the cumulative coverage (mod 2³², from :func:`coverage`) of all records
    (or of forward records when ``cum_b`` — reverse records — is given: then channel 0 is sense, 1 antisense, by
    ``minus``). Window i's bin k covers genomic [ws+k·size, ws+(k+1)·size); slot of a
    genomic position p is clip(p, cs, ce) + off. Bins with a base off the chromosome are 0
    and not valid. Returns the largest sum (to check int32 range)."""
    cdef const uint32_t[::1] cum_b
    cdef int two = cum_b_obj is not None
    if two:
        cum_b = cum_b_obj
    cdef Py_ssize_t n = ws.shape[0], i, k, j
    cdef int64_t a, b, pa, pb, va, vb, lo, hi, o, top = 0
    with nogil:
        for i in range(n):
            lo, hi, o = cs[i], ce[i], off[i]
            for k in range(nbins):
                j = nbins - 1 - k if flip[i] else k
                a = ws[i] + k * size
                b = a + size
                if a < 0 or b > length:
                    valid[i, j] = 0
                    out[i, 0, j] = 0
                    if two:
                        out[i, 1, j] = 0
                    continue
                valid[i, j] = 1
                pa = (lo if a < lo else (hi if a > hi else a)) + o
                pb = (lo if b < lo else (hi if b > hi else b)) + o
                va = <uint32_t> (cum_a[pb] - cum_a[pa])
                if two:
                    vb = <uint32_t> (cum_b[pb] - cum_b[pa])
                    if minus[i]:
                        va, vb = vb, va
                    out[i, 1, j] = <int32_t> vb
                    if vb > top:
                        top = vb
                out[i, 0, j] = <int32_t> va
                if va > top:
                    top = va
    return top


def accumulate(const int32_t[:, :, ::1] values, const uint8_t[:, ::1] valid,
               int32_t[:, ::1] hist, int64_t[::1] over):
    """Count regions' valid bin values into a dense histogram ``hist[value, cell]`` (cell =
    channel·bins + bin). Value-major, so neighbouring bins of a window, whose values are
    alike, hit nearby counters. Values at or above its height go to ``over`` as keys
    ``cell << 32 | value`` (room for every value needed); returns how many."""
    cdef Py_ssize_t r = values.shape[0], c = values.shape[1], nb = values.shape[2]
    cdef Py_ssize_t i, ch, k, no = 0
    cdef int64_t height = hist.shape[0]
    if hist.shape[1] != c * nb or over.shape[0] < r * c * nb:
        raise ValueError("accumulate: the table needs a cell per channel and bin, and "
                         "'over' room for every value")
    cdef int32_t *h = &hist[0, 0] if hist.shape[0] else NULL
    cdef int64_t *o = &over[0] if over.shape[0] else NULL
    with nogil:
        for i in range(r):
            for k in range(nb):
                if valid[i, k]:
                    for ch in range(c):
                        no = _count(h, height, o, no, values[i, ch, k], ch * nb + k, c * nb)
    return no


def coverage(const int64_t[::1] s, const int64_t[::1] e, const uint8_t[::1] rev,
             int which, const int64_t[::1] bstart, const int64_t[::1] bend,
             const int64_t[::1] base, uint32_t[::1] out, int cumulative):
    """Coverage over blocks laid end to end (one spare slot per block) by the intervals
    [s, e) (``which``: -1 all, 0 forward, 1 reverse records), each clipped to every block
    it overlaps. Writes per-slot coverage to ``out[:total]``, or with ``cumulative`` the
    coverage summed over the slots before each slot to ``out[:total + 1]``, modulo 2³²
    (differences of it are exact below 2³²). Returns the largest coverage."""
    cdef Py_ssize_t n = s.shape[0], nblocks = bstart.shape[0]
    cdef Py_ssize_t total = out.shape[0] - (1 if cumulative else 0)
    cdef Py_ssize_t i, k, first = 0
    cdef int64_t a, b
    cdef uint32_t run = 0, acc = 0, top = 0
    with nogil:
        for i in range(total):
            out[i] = 0
        for i in range(n):
            if which >= 0 and rev[i] != which:
                continue
            # first block whose end > s[i], walked from the previous record's: records
            # come in file order, so it moves little
            while first < nblocks and bend[first] <= s[i]:
                first += 1
            while first > 0 and bend[first - 1] > s[i]:
                first -= 1
            k = first
            while k < nblocks and bstart[k] < e[i]:
                a = s[i] if s[i] > bstart[k] else bstart[k]
                b = e[i] if e[i] < bend[k] else bend[k]
                out[a - bstart[k] + base[k]] += 1    # difference array
                out[b - bstart[k] + base[k]] -= 1
                k += 1
        for i in range(total):
            run += out[i]
            if run > top:
                top = run
            if cumulative:
                out[i] = acc
                acc += run
            else:
                out[i] = run
        if cumulative:
            out[total] = acc
    return top


def window_hist(const uint32_t[::1] cov_a, object cov_b_obj, const int64_t[::1] ws,
                const int64_t[::1] off, const uint8_t[::1] flip, const uint8_t[::1] minus,
                int64_t size, int64_t nbins, int64_t length, int32_t[:, ::1] hist,
                int64_t[::1] over):
    """Profile-only path: count every valid bin sum of every window straight into
    ``hist[value, cell]`` without materialising the values (see ``window_sums`` for the
    geometry; slot = genomic position + off). ``cov_*`` come from :func:`coverage`,
    per-slot for bin size 1, cumulative otherwise. A value at or above the table's height
    is written to ``over`` as the key ``cell << 32 | value`` instead; ``over`` must hold
    one key per bin of every window. Returns the number of keys written."""
    cdef const uint32_t[::1] cov_b = cov_b_obj if cov_b_obj is not None else cov_a
    cdef int two = cov_b_obj is not None
    cdef Py_ssize_t n = ws.shape[0], ncells = hist.shape[1], i, no = 0
    cdef int64_t k0, k1, j0, step, p, height = hist.shape[0]
    cdef const uint32_t *sense
    cdef const uint32_t *anti
    if ncells != nbins * (1 + two) or over.shape[0] < n * ncells:
        raise ValueError("window_hist: the table needs a cell per channel and bin, and "
                         "'over' room for every bin of every window")
    cdef int32_t *h = &hist[0, 0] if hist.shape[0] else NULL
    cdef int64_t *o = &over[0] if over.shape[0] else NULL
    with nogil:
        for i in range(n):
            # bins k0 ≤ k < k1 lie wholly on the chromosome
            k0 = 0 if ws[i] >= 0 else (size - 1 - ws[i]) // size
            k1 = (length - ws[i]) // size if length > ws[i] else 0
            if k1 > nbins:
                k1 = nbins
            if k0 >= k1:
                continue
            if flip[i]:
                j0 = nbins - 1
                step = -1
            else:
                j0 = 0
                step = 1
            p = ws[i] + off[i]
            if two and minus[i]:
                sense = &cov_b[0]
                anti = &cov_a[0]
            else:
                sense = &cov_a[0]
                anti = &cov_b[0]
            no = _hist_run(sense, h, height, o, no, p, size, k0, k1, j0, step, ncells)
            if two:
                no = _hist_run(anti, h, height, o, no, p, size, k0, k1, nbins + j0, step,
                               ncells)
    return no


cdef inline Py_ssize_t _hist_run(const uint32_t *cov, int32_t *h, int64_t height,
                                 int64_t *over, Py_ssize_t no, int64_t p, int64_t size,
                                 int64_t k0, int64_t k1, int64_t j0, int64_t step,
                                 Py_ssize_t ncells) noexcept nogil:
    """hist[value of bin k, j0 + step·k] += 1 for k0 ≤ k < k1, bin k covering slots from
    p + k·size: the coverage itself for size 1, else a difference of the cumulative.
    Values from ``height`` up go to ``over[no…]``; returns the new ``no``."""
    cdef int64_t k, v
    cdef const uint32_t *c = cov + p
    if size == 1:
        for k in range(k0, k1):
            no = _count(h, height, over, no, c[k], j0 + step * k, ncells)
        return no
    for k in range(k0, k1):
        no = _count(h, height, over, no, <uint32_t> (c[(k + 1) * size] - c[k * size]),
                    j0 + step * k, ncells)
    return no


cdef inline Py_ssize_t _count(int32_t *h, int64_t height, int64_t *over, Py_ssize_t no,
                              int64_t v, int64_t cell, Py_ssize_t ncells) noexcept nogil:
    """One value of ``cell`` into the table ``h`` (``height`` × ``ncells``) or, from the
    table's height up, as a key into ``over[no]``; returns the new ``no``."""
    if v < height:
        h[v * ncells + cell] += 1
        return no
    over[no] = (cell << 32) | v
    return no + 1


ctypedef fused _src_t:
    int32_t
    double

ctypedef fused _dst_t:
    float
    double


def matrix_columns(const _src_t[:, ::1] rows, const uint8_t[:, ::1] invalid, Py_ssize_t nch,
                   double factor, bint scale, _dst_t[:, ::1] columns, Py_ssize_t first=0):
    """The matrix in pandas' column layout: ``columns[k, first + r] = rows[r, k]`` (times
    ``factor`` in double precision when ``scale``), NaN where ``invalid[r // nch, k]``.
    Rows are taken 64 at a time so each cache line read serves 16 bins: a transposing
    copy that numpy does with strided access at a third of the speed. ``first`` lets a
    block of rows fill its own part of every column."""
    cdef Py_ssize_t nrows = rows.shape[0], nbins = rows.shape[1], r0, r1, r, k
    cdef const uint8_t *off[64]
    if nbins != columns.shape[0] or first < 0 or first + nrows > columns.shape[1] \
            or invalid.shape[0] * nch < nrows or invalid.shape[1] < nbins:
        raise ValueError("matrix_columns: shapes do not match")
    with nogil:
        for r0 in range(0, nrows, 64):
            r1 = r0 + 64 if r0 + 64 < nrows else nrows
            for r in range(r0, r1):
                off[r - r0] = &invalid[r // nch, 0]
            for k in range(nbins):
                if scale:
                    for r in range(r0, r1):
                        columns[k, first + r] = NAN if off[r - r0][k] \
                            else <_dst_t> (rows[r, k] * factor)
                else:
                    for r in range(r0, r1):
                        columns[k, first + r] = NAN if off[r - r0][k] else <_dst_t> rows[r, k]



def matrix_rows(const _dst_t[:, ::1] columns, const int64_t[::1] rows, double[:, ::1] out):
    """The inverse of :func:`matrix_columns`: ``out[i, k] = columns[k, rows[i]]`` (pandas'
    column layout back to rows, as float64), NaN where ``rows[i]`` is negative. Taken 64
    rows at a time, so consecutive rows read each column's values from one cache line."""
    cdef Py_ssize_t n = rows.shape[0], nbins = columns.shape[0], r0, r1, r, k
    cdef int64_t top = columns.shape[1]
    if out.shape[0] != n or out.shape[1] != nbins:
        raise ValueError("matrix_rows: shapes do not match")
    for r in range(n):
        if rows[r] >= top:
            raise ValueError("matrix_rows: row out of range")
    with nogil:
        for r0 in range(0, n, 64):
            r1 = r0 + 64 if r0 + 64 < n else n
            for k in range(nbins):
                for r in range(r0, r1):
                    out[r, k] = columns[k, rows[r]] if rows[r] >= 0 else NAN

# --- BED text -------------------------------------------------------------------------------

from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcmp, memchr, memcpy


cdef inline bint _integer(const unsigned char *p, Py_ssize_t n, bint plus, int64_t *out) noexcept nogil:
    """``[+-]?[0-9]+`` exactly (``-?[0-9]+`` unless ``plus``), at most 18 digits."""
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef int64_t v = 0
    if n and (p[0] == 45 or (plus and p[0] == 43)):          # '-' / '+'
        neg = p[0] == 45
        i = 1
    if i == n or n - i > 18:
        return False
    while i < n:
        if p[i] < 48 or p[i] > 57:
            return False
        v = v * 10 + (p[i] - 48)
        i += 1
    out[0] = -v if neg else v
    return True


cdef class _Strings:
    """Field text → str, reusing the previous object when a field repeats it (chromosomes,
    strands and scores run in long streaks)."""
    cdef const unsigned char *last
    cdef Py_ssize_t last_n
    cdef object value

    def __cinit__(self):
        self.last = NULL
        self.last_n = -1

    cdef inline object get(self, const unsigned char *p, Py_ssize_t n, bint reuse):
        if n == 0:
            return "."
        if reuse and n == self.last_n and memcmp(p, self.last, n) == 0:
            return self.value
        self.value = PyUnicode_DecodeUTF8(<const char *>p, n, "strict")
        self.last, self.last_n = p, n
        return self.value


def bed_columns(const unsigned char[::1] data):
    """The columns of a plain BED/narrowPeak text (UTF-8) in one pass, or None.

    Plain means: lines of 3–10 tab-separated fields, a non-empty chromosome, integer start
    and end, and an integer narrowPeak summit offset (column 10) when that field is present;
    trailing newlines and ``\\r\\n`` endings are allowed. Anything else (header, comment,
    blank or indented lines, short or long rows, spaces in numbers) gives None: the checked
    parser then reads the file and names the offending line.

    Returns ``(chrom, start, end, name, score, strand, summit)``: object arrays of str
    ('.' for an absent or empty name, score, strand), int64 arrays, and the absolute summit
    (start + offset; -1 without a non-negative offset)."""
    cdef Py_ssize_t n = data.shape[0]
    cdef const unsigned char *buf
    cdef Py_ssize_t pos = 0, end_line, stop, i, k, nlines = 0, row = 0
    cdef const unsigned char *fp[10]
    cdef Py_ssize_t fl[10]
    cdef int nf
    cdef int64_t a, b, off
    while n and data[n - 1] == 10:
        n -= 1
    if n == 0:
        return None
    buf = &data[0]
    if memchr(buf, 13, n) != NULL:              # '\r': allowed only as '\r\n'
        for i in range(n):
            if buf[i] == 13 and not (i + 1 == n or buf[i + 1] == 10):
                return None
    nlines = 1
    for i in range(n):
        if buf[i] == 10:
            nlines += 1
    starts = np.empty(nlines, np.int64)
    ends = np.empty(nlines, np.int64)
    summits = np.full(nlines, -1, np.int64)
    cdef list chrom = [None] * nlines, name = [None] * nlines, score = [None] * nlines
    cdef list strand = [None] * nlines
    cdef int64_t[::1] sv = starts, ev = ends, mv = summits
    cdef _Strings cs = _Strings(), ss = _Strings(), ds = _Strings(), ns = _Strings()
    while pos < n:
        p = <const unsigned char *>memchr(buf + pos, 10, n - pos)
        end_line = (p - buf) if p != NULL else n
        stop = end_line
        if stop > pos and buf[stop - 1] == 13:
            stop -= 1
        if stop == pos or buf[pos] == 35 or buf[pos] == 32 or buf[pos] == 9 or \
                (stop - pos >= 5 and memcmp(buf + pos, b"track", 5) == 0) or \
                (stop - pos >= 7 and memcmp(buf + pos, b"browser", 7) == 0):
            return None
        nf = 0
        k = pos
        for i in range(pos, stop + 1):
            if i == stop or buf[i] == 9:
                if nf == 10:
                    return None
                fp[nf], fl[nf] = buf + k, i - k
                nf += 1
                k = i + 1
        if nf < 3 or not _integer(fp[1], fl[1], True, &a) or \
                not _integer(fp[2], fl[2], True, &b):
            return None
        sv[row], ev[row] = a, b
        if nf == 10 and fl[9]:
            if not _integer(fp[9], fl[9], False, &off):
                return None
            if off >= 0:
                mv[row] = a + off
        chrom[row] = cs.get(fp[0], fl[0], True)
        name[row] = ns.get(fp[3], fl[3], False) if nf > 3 else "."
        score[row] = ss.get(fp[4], fl[4], True) if nf > 4 else "."
        strand[row] = ds.get(fp[5], fl[5], True) if nf > 5 else "."
        row += 1
        pos = end_line + 1
    return (np.array(chrom, object), starts, ends, np.array(name, object),
            np.array(score, object), np.array(strand, object), summits)


def dense_stats(const int32_t[:, ::1] hist, const int64_t[::1] above):
    """Per cell of a dense value histogram ``hist[value, cell]``: the number of values,
    their sum and sum of squares (int64), and the values of rank ⌊(n−1)/2⌋ and ⌊n/2⌋ (the
    two middle values, whose mean is the median). Ranks count ``above[cell]`` more values,
    all larger than the table holds, in n; a middle value that is one of those, or that
    does not exist (n = 0), is -1. Two passes over the table instead of listing and
    sorting its non-zero entries."""
    cdef Py_ssize_t h = hist.shape[0], m = hist.shape[1], v, c
    n = np.zeros(m, np.int64)
    total = np.zeros(m, np.int64)
    sumsq = np.zeros(m, np.int64)
    lo = np.full(m, -1, np.int64)
    hi = np.full(m, -1, np.int64)
    cum = np.zeros(m, np.int64)
    cdef int64_t[::1] nv = n, tv = total, qv = sumsq, lv = lo, hv = hi, cv = cum
    cdef int64_t x
    with nogil:
        for v in range(h):
            for c in range(m):
                x = hist[v, c]
                if x:
                    nv[c] += x
                    tv[c] += x * v
                    qv[c] += x * v * v
    everything = n + np.asarray(above)
    klo_a, khi_a = (everything - 1) // 2, everything // 2    # the middle ranks, once per cell
    cdef const int64_t[::1] klo = klo_a, khi = khi_a
    with nogil:
        for v in range(h):
            for c in range(m):
                x = hist[v, c]
                if x:
                    if cv[c] <= klo[c] < cv[c] + x:
                        lv[c] = v
                    if cv[c] <= khi[c] < cv[c] + x:
                        hv[c] = v
                    cv[c] += x
    return n, total, sumsq, lo, hi


# --- text of whole-number tables -------------------------------------------------------------

from libc.math cimport isnan, signbit, floor


cdef inline Py_ssize_t _digits(unsigned char *o, int64_t x) noexcept nogil:
    """``x`` (≥ 0) in decimal at ``o``; returns the characters written."""
    cdef unsigned char tmp[20]
    cdef Py_ssize_t i = 0, j
    if x == 0:
        o[0] = 48
        return 1
    while x:
        tmp[i] = 48 + x % 10
        x //= 10
        i += 1
    for j in range(i):
        o[j] = tmp[i - 1 - j]
    return i


def whole_rows(const unsigned char[::1] head, const int64_t[::1] ends,
               const double[:, ::1] values, bint nan_empty, unsigned char sep=9):
    """Text lines ``<head line r><sep>v0<sep>v1…\\n`` (``sep`` a tab unless given) for
    every row ``r`` of ``values``: head
    line r is ``head`` up to its newline at ``ends[r]``; values are written as pyarrow's CSV
    writer writes a whole float below 10⁹ in magnitude (its digits, ``-0`` for negative
    zero) and NaN as ``nan`` (nothing with ``nan_empty``). Returns the bytes, or None when
    a value is anything else (the caller lets pyarrow format those rows)."""
    cdef Py_ssize_t n = values.shape[0], m = values.shape[1], r, k, p = 0, s = 0, e
    cdef double v
    cdef bint ok = True
    if ends.shape[0] != n or (n and ends[n - 1] >= head.shape[0]):
        raise ValueError("whole_rows: head lines and value rows do not match")
    out = np.empty(head.shape[0] + n * (m * 11 + 1), np.uint8)
    cdef unsigned char[::1] o = out
    with nogil:
        for r in range(n):
            e = ends[r]
            if e > s:
                memcpy(&o[p], &head[s], e - s)
                p += e - s
            s = e + 1
            for k in range(m):
                v = values[r, k]
                o[p] = sep
                p += 1
                if isnan(v):
                    if not nan_empty:
                        o[p], o[p + 1], o[p + 2] = 110, 97, 110
                        p += 3
                    continue
                if not (-1e9 < v < 1e9) or v != floor(v):
                    ok = False
                    break
                if signbit(v):
                    o[p] = 45
                    p += 1
                    v = -v
                p += _digits(&o[p], <int64_t> v)
            if not ok:
                break
            o[p] = 10
            p += 1
    if not ok:
        return None
    return out[:p].tobytes()
