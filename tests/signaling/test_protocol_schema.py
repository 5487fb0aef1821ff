"""The WebSocket protocol's JSON schema, snapshotted, so that a protocol change shows up in review.

`UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/signaling/test_protocol_schema.py` rewrites the snapshot.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from signaling.protocol import protocol_schema

SNAPSHOT = Path(__file__).with_name("protocol_schema.json")
PROTOCOL_DOC = Path(__file__).parents[2] / "docs" / "protocol.md"
UPDATE_COMMAND = "UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/signaling/test_protocol_schema.py"
MAX_DIFF_LINES = 200


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def updating() -> bool:
    return os.environ.get("UPDATE_SNAPSHOT", "") not in ("", "0")


def test_protocol_schema_matches_snapshot() -> None:
    current = render(protocol_schema())
    if updating():
        SNAPSHOT.write_text(current, encoding="utf-8")
        return
    recorded = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if current == recorded:
        return
    diff = list(
        difflib.unified_diff(
            recorded.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile="tests/signaling/protocol_schema.json (recorded)",
            tofile="signaling.protocol.protocol_schema() (current)",
        )
    )
    if len(diff) > MAX_DIFF_LINES:
        diff = [*diff[:MAX_DIFF_LINES], f"... {len(diff) - MAX_DIFF_LINES} more diff lines\n"]
    pytest.fail(
        "The WebSocket protocol changed (signaling/protocol.py no longer matches the recorded schema).\n"
        "If the change is intended:\n"
        "  1. describe it in docs/protocol.md, and add an entry to its changelog (a change that an existing client\n"
        "     could trip over needs a new protocol version, see 'Conventions' there);\n"
        f"  2. record the new schema: {UPDATE_COMMAND}\n"
        "  3. commit the snapshot with the change so that reviewers see both.\n\n" + "".join(diff),
        pytrace=False,
    )


def message_types(schema: dict[str, Any]) -> set[str]:
    """Every `type` constant of the client and server message unions."""
    types: set[str] = set()
    for direction in ("client", "server"):
        mapping = schema[direction].get("discriminator", {}).get("mapping", {})
        types.update(mapping)
    return types


def test_every_message_type_has_an_example_in_the_protocol_doc() -> None:
    """docs/protocol.md shows each message as JSON; a new message type needs its paragraph there too."""
    doc = PROTOCOL_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r'"type":\s*"([a-z_]+)"', doc))
    types = message_types(protocol_schema())
    assert types, "the schema lists no message types: has protocol_schema() changed shape?"
    missing = sorted(types - documented)
    assert not missing, (
        f"message types without a JSON example in docs/protocol.md: {missing}; "
        "describe them there and add a changelog entry"
    )
