"""bamcover: exact, strand-aware, fragment-extended read coverage from BAM over BED regions."""

__version__ = "0.1.0"

from .errors import BamcoverError
from .options import Options
from .profiles import density, matrix, profile
from .regions import read_regions

__all__ = ["BamcoverError", "Options", "__version__", "density", "matrix", "profile",
           "read_regions"]
