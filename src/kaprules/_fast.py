"""The one switch of kaprules' fast paths.

``KAPRULES_NO_FAST_PATHS=1`` in the environment turns every fast path off: orjson decoding,
the loader's plain-record constructors, the audit's block reader and its hand-written output
rows. What remains is the general path, which the fast paths must equal: CI runs the whole
test suite both ways, as whenever runs its suite against its pure-Python twin.
"""

import os

ENABLED = os.environ.get("KAPRULES_NO_FAST_PATHS", "").strip() in ("", "0")
"""Whether fast paths may be taken (read once, when kaprules is imported)."""
