"""pandas, imported on first use.

Counting a profile from a region file needs no pandas, and importing it (with pyarrow)
is most of bamcover's start-up: about 0.45 s of the command line's 0.6 s. Modules on the
counting path (regions, counting, profiles, outputs, cli and the task layer) reach pandas
through ``pd`` here; the first attribute looked up imports it.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


class _Pandas:
    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("pandas"), name)

    def __repr__(self) -> str:
        return f"<pandas, {'imported' if 'pandas' in sys.modules else 'not imported yet'}>"


pd: Any = _Pandas()


def is_frame(obj: object) -> bool:
    """Whether ``obj`` is a DataFrame, without importing pandas to find out (no DataFrame
    exists before pandas is imported)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)
