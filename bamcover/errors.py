"""The one exception bamcover raises for bad input: its message is a single line that
names the file and, where there is one, the line or record."""


class BamcoverError(ValueError):
    """Bad input or an impossible request; the CLI prints it and exits with status 2."""
