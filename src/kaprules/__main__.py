"""``python -m kaprules``: the same as the ``kaprules`` command."""

import sys

from kaprules.cli import main

sys.exit(main())
