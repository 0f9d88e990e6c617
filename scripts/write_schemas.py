"""Write the generated protocol schema to src/kaprules/protocol.schema.json.

The schema is generated from the rule classes (kaprules.protocol_schema); the shipped
file is for editors and other tools. tests/test_self_description.py fails when it is stale.
"""

import json
from pathlib import Path

import kaprules

TARGET = Path(__file__).resolve().parents[1] / "src" / "kaprules" / "protocol.schema.json"


def rendered() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(kaprules.protocol_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    TARGET.write_text(rendered(), encoding="utf-8")
    print(f"wrote {TARGET}")
