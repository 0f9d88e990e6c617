"""``python -m kaprules``: the same as the ``kaprules`` command."""

import sys

from kaprules.cli import main

# Guarded: documentation tools import every module, and importing must not run the CLI.
if __name__ == "__main__":
    sys.exit(main())
