"""bin/figure-ctcf, the worked example, runs on the bundled data and writes real figures."""

import os
import subprocess
import sys

from .conftest import ROOT


def _path_without_this_python() -> str:
    """PATH as a new user's shell has it: without the venv's bin directory, which conftest
    puts first (so ``#!/usr/bin/env python3`` would otherwise find the venv's Python)."""
    venv_bin = os.path.dirname(sys.executable)
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and os.path.realpath(p) != os.path.realpath(venv_bin))


def test_figure_script(tmp_path):
    """Run as the README says, ``bin/figure-ctcf``: its shebang finds the system python3,
    and the script must still find bamcover (in the repository's .venv), from any cwd."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = _path_without_this_python()
    done = subprocess.run([str(ROOT / "bin" / "figure-ctcf"), str(tmp_path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "library sizes CTCF ChIP: 45,672, input: 50,837" in done.stderr
    for name, magic in (("ctcf_profile.pdf", b"%PDF"), ("ctcf_heatmap.png", b"\x89PNG"),
                        ("ctcf_heatmap.pdf", b"%PDF"), ("ctcf_profile.png", b"\x89PNG")):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(magic) and len(data) > 10_000, name
