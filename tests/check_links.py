"""Check every internal link and anchor of a built documentation site.

Used by the tests on the MkDocs build and by CI on the Zensical build:

    python tests/check_links.py SITE_DIR
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from urllib.parse import unquote


def broken_links(site: Path) -> list[str]:
    """Every internal link or anchor of the built site that leads nowhere."""
    pages = sorted(site.rglob("*.html"))
    ids = {p.resolve(): set(re.findall(r'\bid="([^"]+)"', p.read_text("utf-8"))) for p in pages}
    broken = []
    for page in pages:
        for href in re.findall(r'\bhref="([^"]+)"', page.read_text("utf-8")):
            href = html.unescape(href)
            if re.match(r"[a-z][a-z0-9+.-]*:", href):  # https:, mailto:, ...
                continue
            path, _, fragment = href.partition("#")
            base = site if path.startswith("/") else page.parent
            target = (base / unquote(path.lstrip("/"))).resolve() if path else page.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {href}")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in ids[target]:
                broken.append(f"{page.relative_to(site)}: {href} (no such anchor)")
    return broken


def main() -> int:
    """Print each broken link of the site given as the first argument; exit 1 if any."""
    site = Path(sys.argv[1])
    broken = broken_links(site)
    for link in broken:
        print(f"broken: {link}")
    pages = len(list(site.rglob("*.html")))
    print(f"{pages} pages, {len(broken)} broken internal links or anchors")
    return 1 if broken or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
