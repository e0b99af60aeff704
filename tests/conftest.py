"""Shared fixtures: paths of the real CTCF fixtures in test_data/."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# The test extra installs ruff and deepTools next to this Python (.venv/bin), which the
# README's `.venv/bin/python -m pytest` does not put on PATH: without this their tests skip.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                      os.environ.get("PATH", "")])

DATA = Path(__file__).resolve().parent.parent / "test_data"
SE_CHIP = DATA / "ctcf_se_chip.bam"
SE_CTRL = DATA / "ctcf_se_ctrl.bam"
PE_CHIP = DATA / "ctcf_pe_chip.bam"
SUMMITS = DATA / "ctcf_summits.bed"
STRANDED = DATA / "ctcf_summits_stranded.bed"
PEAKS = DATA / "ctcf_peaks.narrowPeak"
PE_PEAKS = DATA / "ctcf_pe_peaks.narrowPeak"
CHR22 = 51_304_566
#: the window of the figure and format tests
WINDOW = {"fragment_size": 200, "upstream": 1000, "downstream": 1000, "bin_size": 10}


def need(tool: str) -> None:
    """Skip when an oracle binary is absent (CI installs them, so there it runs)."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (bash bin/setup-env --test installs it)")


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def private_task_index(tmp_path_factory):
    """Tasks the tests submit are indexed under a temporary XDG_STATE_HOME (subprocesses
    and Slurm jobs inherit it), never in the real home."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm started by bin/start-slurm (a failure under CI=true)."""
    import os
    import subprocess

    ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0 and not ci:
        pytest.skip("starting Slurm needs root (bin/start-slurm)")
    try:
        done = subprocess.run(["bash", str(ROOT / "bin" / "start-slurm")], capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL)
        ok, why = done.returncode == 0, (done.stderr.strip().splitlines() or ["?"])[-1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, why = False, str(exc)
    if not ok:
        if ci:
            pytest.fail(f"Slurm did not start under CI: {why}")
        pytest.skip(f"Slurm did not start: {why}")
    # jobs import tests.jobfuncs: sbatch passes this environment on
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return True


@pytest.fixture(scope="session")
def chip():
    """The ChIP matrix over the summits (WINDOW), shared by figure and format tests."""
    import bamcover

    return bamcover.matrix(SUMMITS, SE_CHIP, **WINDOW)


@pytest.fixture(scope="session")
def ctrl():
    import bamcover

    return bamcover.matrix(SUMMITS, SE_CTRL, **WINDOW)


@pytest.fixture(scope="session")
def stranded():
    import bamcover

    return bamcover.matrix(STRANDED, SE_CHIP, strand_wise=True, **WINDOW)
