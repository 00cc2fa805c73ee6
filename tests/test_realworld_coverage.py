"""Every golden fixture of ``tests/fixtures/realworld`` is listed in index.json and covered by a test module."""

from __future__ import annotations

from pathlib import Path

from realworld_fixtures import COVERED, EXPECTED_FIXTURES, INDEX

REPO = Path(__file__).resolve().parents[1]


def test_every_fixture_is_indexed_and_covered(fixtures: Path) -> None:
    files = [e["file"] for e in INDEX["fixtures"]]
    assert len(files) == EXPECTED_FIXTURES == len(set(files))
    assert sorted(p.name for p in (fixtures / "realworld").glob("*.pt")) == sorted(files)
    covered = set().union(*COVERED.values())
    assert {e["component"] for e in INDEX["fixtures"]} == covered
    for module in COVERED:
        assert (REPO / module).is_file(), module
