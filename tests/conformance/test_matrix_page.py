"""The committed conformance page matches the declarations, docstrings and committed results.

Fast and static: the results part is rendered from docs/conformance-results.json, never by running
the suite here. Regenerate with ``mintaka conformance matrix`` (or ``--no-run`` to re-render only).
"""

from __future__ import annotations

import re
from pathlib import Path

from mintaka_conformance import matrix

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_page_matches_declarations_docstrings_and_results() -> None:
    results = matrix.load_results(DOCS / "conformance-results.json")
    expected = matrix.render_installed(results)
    assert (DOCS / "conformance.md").read_text() == expected, (
        "docs/conformance.md is stale: run `mintaka conformance matrix`"
    )


def test_every_conformance_test_has_a_one_sentence_must_docstring() -> None:
    tests = matrix.catalogue()
    assert len(tests) >= 40
    for test in tests:
        assert re.fullmatch(r"The backend MUST [^.]+(\.[^ .][^.]*)*\.", test.doc), (
            f"{test.area}::{test.name}: {test.doc!r}"
        )


def test_results_name_only_tests_that_exist() -> None:
    known = {t.key for t in matrix.catalogue()}
    for backend, rows in matrix.load_results(DOCS / "conformance-results.json").items():
        unknown = {(r["area"], r["test"]) for r in rows} - known
        assert not unknown, f"{backend}: results for tests the suite no longer has: {unknown}"
