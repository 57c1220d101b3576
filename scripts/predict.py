"""``python -m scripts.predict``: the same command as ``kerahep predict`` (:mod:`kerahep.commands.predict`).

Kept for running from the repository root, as the CMS electron project's layout has it;
the installed ``kerahep`` command works from any folder.
"""

import sys

from kerahep import cli
from kerahep.commands.predict import *  # noqa: F401,F403 - the same parser and functions
from kerahep.commands.predict import main

if __name__ == "__main__":
    sys.exit(cli.run(lambda argv=None: main(argv, prog="python -m scripts.predict")))
