"""``python -m kerahep COMMAND ...``: the same as the ``kerahep`` command."""

from .commands import console_main

console_main()
