"""``python -m bamcover.cli``: the ``bamcover`` command."""

from .app import run

run()
