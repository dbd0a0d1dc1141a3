"""The fast canonical JSON path is byte-identical to rfc8785 for every value it accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mintaka.audit import canonical_bytes
from mintaka.audit.chain import _detached, _frame, _jsonable, _plain

# Every code point, surrogates included, so the fallback for unencodable text is exercised.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
keys = st.one_of(
    st.text(max_size=6), any_text, st.sampled_from(["a", "b", "é", "\U0001f600", "\ue000"])
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.1]),
)


class Tier(Enum):
    HIGH = "high"


class Stage(StrEnum):
    LIVE = "live"
    ODD = '\u00e9\n"x'


scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    any_text,
    st.just(Tier.HIGH),
    st.sampled_from(Stage),
    st.just(datetime(2026, 1, 1, tzinfo=UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
        st.frozensets(st.integers(-5, 5), max_size=3),
    ),
    max_leaves=20,
)


def _reference(value: Any) -> bytes | type[Exception]:
    try:
        return bytes(rfc8785.dumps(_jsonable(value)))
    except Exception as exc:
        return type(exc)


def _ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical_bytes(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.dictionaries(keys, values, max_size=6))
def test_fast_path_matches_rfc8785_byte_for_byte(body: dict[str, Any]) -> None:
    assert _ours(body) == _reference(body)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(st.characters(max_codepoint=0x7F), max_size=6), values, max_size=6))
def test_plain_values_match_rfc8785(body: dict[str, Any]) -> None:
    if _plain(body):
        assert canonical_bytes(body) == _reference(body)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    seq=st.integers(min_value=0, max_value=2**53 - 1),
    at=any_text,
    actor=any_text,
    action=any_text,
    subject=any_text,
    backend=st.none() | any_text,
    prev=st.text("0123456789abcdef", min_size=64, max_size=64),
    details=st.dictionaries(st.text(max_size=4), st.integers(-9, 9) | st.text(max_size=4)),
)
def test_event_frame_matches_rfc8785(
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    backend: str | None,
    prev: str,
    details: dict[str, Any],
) -> None:
    body = {
        "format": "mintaka-audit/1",
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "backend": backend,
        "details": details,
        "prev_hash": prev,
    }
    frame = _frame(seq, at, actor, action, subject, backend, prev)
    reference = _reference(body)
    if frame is None:
        assert isinstance(reference, type)  # only unencodable text leaves the fast path
        return
    assert frame[0] + bytes(rfc8785.dumps(details)) + frame[1] == reference


def test_values_outside_the_fast_path_still_canonicalise() -> None:
    body = {"x": 1.0, "y": 1e21, "z": [1e-7, -0.0], "\U0001f600": 1, "\ue000": 2, "s": {3, 1}}
    assert canonical_bytes(body) == rfc8785.dumps(_jsonable(body))
    assert not _plain(body)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(st.characters(max_codepoint=0x7F), max_size=6), values, max_size=6))
def test_returned_details_equal_the_parsed_canonical_details(details: dict[str, Any]) -> None:
    if _plain(details):
        encoded = canonical_bytes(details)
        assert _detached(details, encoded) == json.loads(encoded)


def test_str_enum_members_take_the_fast_path_and_encode_as_their_values() -> None:
    body = {"stage": Stage.LIVE, "odd": [Stage.ODD], "nested": {"s": Stage.LIVE}}
    assert _plain(body)
    assert canonical_bytes(body) == rfc8785.dumps(
        {"stage": "live", "odd": ['\u00e9\n"x'], "nested": {"s": "live"}}
    )
