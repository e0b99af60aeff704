"""Command line: parses arguments and calls the API; results to files or stdout, messages
to stderr. One module per command group (:mod:`.profile`, :mod:`.density`, :mod:`.tasks`,
:mod:`.plot`), what they share in :mod:`.common`, the group itself in :mod:`.app`."""

from .app import invoke, main, run

__all__ = ["invoke", "main", "run"]
