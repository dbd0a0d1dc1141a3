"""Text values written into MLflow search filters read back as the same text, as MLflow's filter
parser reads them (the fake Databricks parses them the same way), or are refused."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from mintaka_conformance.fakes.databricks.routing import FILTER_STRING, filter_string
from mintaka_databricks.filters import filter_value

from mintaka import ValidationError


@given(st.text())
def test_a_filter_value_reads_back_as_its_text_unless_it_holds_both_quotes(text: str) -> None:
    try:
        written = filter_value(text)
    except ValidationError:
        assert "'" in text
        assert '"' in text
        return
    assert re.fullmatch(FILTER_STRING, written) is not None
    assert filter_string(written) == text


def test_a_value_with_a_single_quote_is_written_in_double_quotes() -> None:
    assert filter_value("churn") == "'churn'"
    assert filter_value("Bob's model") == '"Bob\'s model"'
