"""bin/figure-ctcf, the worked example, runs on the bundled data and writes real figures."""

import subprocess
import sys

from .conftest import ROOT


def test_figure_script(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bin" / "figure-ctcf"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "library sizes CTCF ChIP: 45,672, input: 50,837" in done.stderr
    for name, magic in (("ctcf_profile.pdf", b"%PDF"), ("ctcf_heatmap.png", b"\x89PNG"),
                        ("ctcf_heatmap.pdf", b"%PDF"), ("ctcf_profile.png", b"\x89PNG")):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(magic) and len(data) > 10_000, name
