"""docs/bad-input.md and the bad-input tests list the same cases: the tests are the source of truth."""

from __future__ import annotations

from tests.conftest import REPO
from tests.integration.test_bad_input import CASES

DOC = REPO / "docs" / "bad-input.md"


def _doc_cases() -> list[str]:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ")]
    return [row.split(" | ")[0].removeprefix("| ").strip() for row in rows[2:]]   # skip header, rule


def test_every_case_is_documented():
    missing = [name for name in CASES if name not in _doc_cases()]
    assert not missing, f"add to {DOC.name}: {missing}"


def test_every_documented_case_is_tested():
    stale = [name for name in _doc_cases() if name not in CASES]
    assert not stale, f"rows without a test in tests/integration/test_bad_input.py: {stale}"


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
