"""docs/monitoring.md, the reference of the monitor spec file, stays in step with the spec:
every field is documented, every accepted metric is named, and the example file is a valid
monitor."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mintaka import Platform
from mintaka.domain.monitoring import Escalation, MonitorSpec, Severity, Signal, SignalKind
from mintaka.monitoring.service import (
    DRIFT_METRICS,
    FAIRNESS_METRICS,
    PERFORMANCE_METRICS,
    TELEMETRY_METRICS,
)

PAGE = Path(__file__).parents[2] / "docs" / "monitoring.md"


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


@pytest.mark.parametrize("spec", [MonitorSpec, Signal, Escalation])
def test_every_field_of_the_monitor_spec_is_documented(spec: type[BaseModel]) -> None:
    text = page()
    missing = [name for name in spec.model_fields if f"`{name}`" not in text]
    assert missing == [], f"docs/monitoring.md does not document {spec.__name__} {missing}"


def test_every_kind_severity_and_metric_the_spec_accepts_is_named() -> None:
    text = page()
    names = [
        *(k.value for k in SignalKind),
        *(s.value for s in Severity),
        *DRIFT_METRICS,
        *PERFORMANCE_METRICS,
        *TELEMETRY_METRICS,
        *FAIRNESS_METRICS,
    ]
    assert [n for n in names if f"`{n}`" not in text and f'"{n}"' not in text] == []


def example() -> dict[str, Any]:
    [block] = re.findall(r"^```toml\n(.*?)^```", page(), flags=re.MULTILINE | re.DOTALL)
    return tomllib.loads(block)


def test_the_example_file_is_a_monitor_add_would_take(served: Platform) -> None:
    spec = MonitorSpec.model_validate(example())
    assert {s.kind for s in spec.signals} == set(SignalKind)
    assert any(s.escalation for s in spec.signals)
    served.monitoring.check_monitor(  # its signals, on the endpoint of the fixture
        spec.model_copy(update={"endpoint": "scoring", "model": "credit"})
    )
