"""docs/api.md is generated from the app; it must match what the app serves today."""

from __future__ import annotations

from pathlib import Path

from docs.generate_api import generate

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_api_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == generate(), (
        "docs/api.md is stale: run `.venv/bin/python -m docs.generate_api > docs/api.md`")
