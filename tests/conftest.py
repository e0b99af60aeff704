"""Shared fixtures: paths of the real CTCF fixtures in test_data/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "test_data"
SE_CHIP = DATA / "ctcf_se_chip.bam"
SE_CTRL = DATA / "ctcf_se_ctrl.bam"
PE_CHIP = DATA / "ctcf_pe_chip.bam"
SUMMITS = DATA / "ctcf_summits.bed"
STRANDED = DATA / "ctcf_summits_stranded.bed"
PEAKS = DATA / "ctcf_peaks.narrowPeak"
PE_PEAKS = DATA / "ctcf_pe_peaks.narrowPeak"
CHR22 = 51_304_566


def need(tool: str) -> None:
    """Skip when an oracle binary is absent (CI installs them, so there it runs)."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (bash bin/setup-env --test installs it)")
