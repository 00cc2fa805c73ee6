"""Tables that README.md documents and the tests hold the shipped files to."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_FLAGS = {"`true`": True, "`false`": False}


def drsformer_protocol() -> dict[str, dict[str, bool]]:
    """``{set: {"y_channel_uint8": bool, "y_channel_float64": bool, "auto_downsample": bool}}`` from the README's
    DRSformer protocol table."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- DRSFORMER-PROTOCOL -->\n(.*?)<!-- /DRSFORMER-PROTOCOL -->", text, re.S)
    assert block, "README.md: the DRSformer protocol table (between DRSFORMER-PROTOCOL markers) is missing"
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.group(1).strip().splitlines()]
    header, body = rows[0], rows[2:]
    columns = {name.strip("`"): i for i, name in enumerate(header)}
    keys = ("y_channel_uint8", "y_channel_float64", "auto_downsample")
    return {r[0]: {key: _FLAGS[r[columns[key]]] for key in keys} for r in body}
