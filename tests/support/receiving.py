"""docs/receiving.md as the tests read it: the page's marked snippets and the golden delivery its
SQL snippets load (the ``erasures_manifest`` case)."""

from __future__ import annotations

import re

from tests.support.project import ROOT

PAGE = ROOT / "docs" / "receiving.md"
GOLDEN = ROOT / "tests" / "golden" / "erasures_manifest"


def snippet(kind: str, language: str = "sql") -> str:
    """The block the page marks with ``<!-- test: kind -->``."""
    text = PAGE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {kind} -->\n```{language}\n(.*?)\n```", text, flags=re.S)
    assert found, f"docs/receiving.md has no {language} block marked <!-- test: {kind} -->"
    return found.group(1)
