"""Build script: compiles the htslib read kernel against the htslib that pysam ships.

If the extension cannot be built (no compiler), bamcover still installs and falls back
to the slower pure-pysam reader (``bamcover.reads``); ``bamcover.reads.KERNEL`` says
which one is in use.
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


def extensions():
    try:
        import numpy
        import pysam
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError as exc:  # pragma: no cover - build env without Cython
        print(f"bamcover: not building the compiled kernel ({exc})", file=sys.stderr)
        return []
    ext = Extension(
        "bamcover._kernel",
        ["bamcover/_kernel.pyx"],
        include_dirs=pysam.get_include() + [numpy.get_include()],
        define_macros=pysam.get_defines() + [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # htslib symbols are not linked here but resolved at import time from pysam's
        # libchtslib (see bamcover/reads.py): linking would record the build
        # environment's absolute path of that library, which pip deletes.
        extra_compile_args=["-O3"],
    )
    return cythonize([ext], language_level=3, quiet=True)


class OptionalBuildExt(build_ext):
    """Build the kernel when possible; never fail the install because of it."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the build machine
            print(f"bamcover: compiled kernel not built ({exc}); using the pysam fallback",
                  file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover
            print(f"bamcover: compiled kernel not built ({exc}); using the pysam fallback",
                  file=sys.stderr)


if os.environ.get("BAMCOVER_NO_KERNEL"):
    ext_modules = []
else:
    ext_modules = extensions()

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
