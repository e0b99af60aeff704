"""The code base stays ruff-clean (ruff comes with the test extra)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install -e '.[test]')")
    done = subprocess.run([ruff, "check", "bamcover", "tests", "bin", "setup.py"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


#: ARCHITECTURE.md's layers, top to bottom: a module imports only from layers below its own
LAYERS = [
    {"cli", "cluster", "tasks"},      # cluster, tasks: the job layer's former names
    {"plotting"}, {"samples", "coverage_tasks"},
    {"profiles", "densities"}, {"formats"}, {"matrices", "statistics", "normalisation"},
    {"outputs", "jobs"}, {"counting", "text"}, {"regions"}, {"kernels"}, {"reads"},
    {"pool", "options"},
    {"schema", "errors", "version", "_lazy", "_kernel"},
]


def _imports() -> dict[str, set[str]]:
    """Top-level bamcover module (or package) → the top-level modules it imports, from
    every ``from . import`` and ``from .x import`` (also inside functions)."""
    import re

    pkg = ROOT / "bamcover"
    found: dict[str, set[str]] = {}
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg).with_suffix("").parts
        me = rel[0]
        if me == "__init__":                  # the package's face imports its API
            continue
        depth = len(rel) - (1 if rel[-1] != "__init__" else 2)    # packages below bamcover
        # names run over lines only inside parentheses ("from . import a\nfrom" is a)
        for dots, mod, names in re.findall(r"^\s*from (\.+)([\w.]*) import "
                                           r"(\([\w, \n]+\)|[\w, ]+)", path.read_text(), re.M):
            if len(dots) - 1 < depth:                  # within its own package
                continue
            targets = [mod.split(".")[0]] if mod else \
                [n.split()[0] for n in names.strip("()").split(",") if n.strip()]
            found.setdefault(me, set()).update(t for t in targets if t and t != me)
    return found


def test_imports_flow_down_the_layers():
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = {p.stem if p.is_file() else p.name for p in (ROOT / "bamcover").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert modules <= set(level), f"modules missing from the layers: {modules - set(level)}"
    upward = [(m, t) for m, targets in _imports().items() for t in targets
              if t in level and level[t] <= level[m]]
    assert upward == [], upward


#: the reads layer: the only modules that know whether the compiled kernel is there
KERNEL_AWARE = {"reads.py", "kernels.py"}


def test_only_the_reads_layer_asks_for_the_kernel():
    """Every other module calls kernels' functions (which dispatch themselves) or its
    predicates; none reaches the kernel module itself."""
    pkg = ROOT / "bamcover"
    mentions = [f"{path.relative_to(ROOT)}:{n}" for path in sorted(pkg.rglob("*.py"))
                if path.relative_to(pkg).as_posix() not in KERNEL_AWARE
                for n, line in enumerate(path.read_text().splitlines(), 1)
                if "kernel()" in line or "_kernel" in line]
    assert mentions == [], mentions
