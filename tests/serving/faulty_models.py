"""Python-function models for serving tests (imported by the pyfunc flavor)."""

from __future__ import annotations

import threading
from typing import Any

PREDICTING = threading.Semaphore(0)  # released once per call of ``waits_for_release``
RELEASE = threading.Event()


def always_fails(rows: list[dict[str, Any]]) -> list[Any]:
    raise RuntimeError("challenger is broken")


def echo_sum(rows: list[dict[str, Any]]) -> list[Any]:
    return [sum(float(v) for v in row.values()) for row in rows]


def answers_nan(rows: list[dict[str, Any]]) -> list[Any]:
    return [float("nan") for _ in rows]


def one_answer_short(rows: list[dict[str, Any]]) -> list[Any]:
    return [0.5 for _ in rows[1:]]


def scribbles(rows: list[dict[str, Any]]) -> list[Any]:
    """Changes the rows it was given (pyfunc code may), then answers."""
    for row in rows:
        row["a"] = 999.0
        row["added"] = True
    return [0.0 for _ in rows]


def waits_for_release(rows: list[dict[str, Any]]) -> list[Any]:
    """A slow model under the test's control: answers once ``RELEASE`` is set."""
    PREDICTING.release()
    assert RELEASE.wait(10), "the test never released the prediction"
    return [0.0 for _ in rows]
