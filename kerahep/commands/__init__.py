"""The ``kerahep`` command: one subcommand per task of a run's life.

``kerahep prepare|train|evaluate|export|benchmark ...`` runs the same parser and function
as ``python -m scripts.<name>`` from the repository root; installed with the package (a
console entry point), it works from any folder. Relative paths (``data/``, ``results/``)
resolve against the current folder.

Example::

    kerahep train --task dy_electron --preset smoke
    kerahep evaluate --task dy_electron
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys

#: subcommand -> module of kerahep.commands
COMMANDS = {
    "prepare": "prepare_dataset",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "export": "export",
    "compare-variants": "compare_variants",
    "benchmark": "benchmark",
}


def available() -> dict:
    """The subcommands whose module is present, in order."""
    return {name: mod for name, mod in COMMANDS.items()
            if importlib.util.find_spec(f"{__name__}.{mod}") is not None}


def usage() -> str:
    from .. import __version__

    lines = [f"usage: kerahep COMMAND [options]   (kerahep {__version__})", "", "commands:"]
    for name, mod in available().items():
        doc = (importlib.import_module(f"{__name__}.{mod}").__doc__ or "").strip().splitlines()
        lines.append(f"  {name:17s} {doc[0] if doc else ''}")
    lines += ["", "kerahep COMMAND --help shows the options of one command. Relative paths (data/, results/)",
              "are taken from the current folder."]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run ``kerahep COMMAND ...``; returns the exit status (2 for a user mistake)."""
    from .. import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from .. import __version__

        print(f"kerahep {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    commands = available()
    if name not in commands:
        hint = difflib.get_close_matches(name, list(commands), n=1)
        print(f"error: unknown command {name!r}; commands: {', '.join(commands)}"
              + (f". Did you mean {hint[0]!r}?" if hint else ""), file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{commands[name]}")
    return cli.run(lambda args: module.main(args, prog=f"kerahep {name}"), rest)


def console_main() -> None:  # the console entry point
    sys.exit(main())
