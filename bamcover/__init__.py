"""bamcover: exact, strand-aware, fragment-extended read coverage from BAM over BED regions."""

from .densities import density
from .errors import BamcoverError
from .options import Options
from .profiles import matrix, profile
from .regions import read_regions
from .samples import Coverage, coverage
from .version import __version__

__all__ = ["BamcoverError", "Coverage", "Options", "__version__", "coverage", "density",
           "matrix", "profile", "read_regions"]
