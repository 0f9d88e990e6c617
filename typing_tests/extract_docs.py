"""Write the docs' Python examples as modules, one per page and session, for mypy --strict.

The guide's examples are the documented usage: type-checking them keeps an example from
drifting away from the types (as attrs' typing_tests do). Run from the repository root:

    python typing_tests/extract_docs.py && mypy --strict typing_tests
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "typing_tests" / "docs_examples"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.S | re.M)
# Pages whose examples are checked: the guides for app developers, audits, waivers and FHIR.
PAGES = ("guide.md", "scheduling.md", "audits.md", "waivers.md", "fhir.md")
# What a page's modules may leave unchecked: the audits page calls Dask, whose functions
# are not annotated.
RELAXED = {"audits.md": '# mypy: disable-error-code="no-untyped-call"\n'}


def main() -> None:
    """Write one module per page and session of PAGES into OUT."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    (OUT / "__init__.py").write_text("")
    for page in PAGES:
        sessions: dict[str, list[str]] = {}
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            info = match["info"].strip()
            if info.split(" ", 1)[0] != "python":
                continue
            session = dict(re.findall(r'(\w+)="([^"]*)"', info)).get("session", "main")
            sessions.setdefault(session, []).append(match["body"])
        for session, bodies in sessions.items():
            name = f"{Path(page).stem}_{session}.py".replace("-", "_")
            text = RELAXED.get(page, "") + "\n".join(bodies)
            (OUT / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
