"""``python -m scripts.export``: the same command as ``kerahep export`` (:mod:`kerahep.commands.export`).

Kept for running from the repository root, as the CMS electron project's layout has it;
the installed ``kerahep`` command works from any folder.
"""

import sys

from kerahep import cli
from kerahep.commands.export import *  # noqa: F401,F403 - the same parser and functions
from kerahep.commands.export import main

if __name__ == "__main__":
    sys.exit(cli.run(lambda argv=None: main(argv, prog="python -m scripts.export")))
