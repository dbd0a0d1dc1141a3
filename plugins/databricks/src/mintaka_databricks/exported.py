"""The serving endpoint's metrics export, read into counters, latency quantiles and samples.

``GET /api/2.0/serving-endpoints/{name}/metrics`` answers in the Prometheus text format or in
OpenMetrics (which ends with ``# EOF``); prometheus_client's own parsers read either, labels in
any order and escaped label values included. Per served entity (the ``served_entity_name`` label,
``served_model_name`` on older endpoints) the export has cumulative counters:
``request_count_total`` (every request), ``request_4xx_count_total`` (requests refused, which
Mintaka reads as ``invalid``) and ``request_5xx_count_total`` (requests the entity failed on, read
as ``errors``). Latency comes as a histogram (``<name>_bucket{le="..."}`` cumulative counts up to
``le="+Inf"``, ``_sum``, ``_count``), whose p50 and p99 are estimated as Prometheus'
``histogram_quantile`` does, or as a summary (``quantile="0.5"`` and ``"0.99"`` samples). The
round-trip ``request_latency_ms`` is the route's latency where exported; any other latency
family's quantiles are reported as samples ``<family>_p50`` and ``<family>_p99``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from mintaka.domain.names import route_name_of
from mintaka.errors import BackendError

# Counter kinds per route: every request, those answered 5xx, those answered 4xx. The names
# are those remembered between reads (``counters.py``).
REQUESTS, SERVER_ERRORS, REFUSED = "requests", "5xx", "4xx"
KINDS = (REQUESTS, SERVER_ERRORS, REFUSED)
_COUNTERS = {
    "request_count_total": REQUESTS,
    "request_5xx_count_total": SERVER_ERRORS,
    "request_4xx_count_total": REFUSED,
}
ROUND_TRIP = "request_latency_ms"  # the latency a route is judged on, where exported
QUANTILES = {0.5: "p50", 0.99: "p99"}


@dataclass
class Export:
    """One read of the export: counters per kind and route, latency quantiles in ms per route,
    and every other sample as ``<name>/<route>``."""

    counters: dict[str, dict[str, int]] = field(default_factory=lambda: {k: {} for k in KINDS})
    p50: dict[str, float] = field(default_factory=dict)
    p99: dict[str, float] = field(default_factory=dict)
    custom: dict[str, float] = field(default_factory=dict)


def _families(text: str) -> list[object]:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )
    from prometheus_client.parser import text_string_to_metric_families

    lines = text.rstrip("\n").splitlines()
    parse = (
        openmetrics_families if lines and lines[-1] == "# EOF" else (text_string_to_metric_families)
    )
    return list(parse(text))


def _in_ms(family: str, value: float) -> float:
    return value * 1000.0 if family.endswith("_seconds") else value


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram given as (upper bound ``le``, cumulative count)
    pairs, interpolated linearly inside its bucket as Prometheus' ``histogram_quantile`` does:
    the first bucket starts at 0 (or at its bound, if negative), and a quantile in the ``+Inf``
    bucket is the highest finite bound. None when the histogram counts nothing."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None  # no +Inf bucket: not a complete histogram
    # Cumulative counts never fall: a torn export's are raised to the count below them first,
    # so the total is the +Inf bucket's count as raised.
    monotonic: list[tuple[float, float]] = []
    for bound, exported in ordered:
        monotonic.append((bound, max(exported, monotonic[-1][1]) if monotonic else exported))
    total = monotonic[-1][1]
    if total <= 0 or math.isnan(total):
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for index, (bound, count) in enumerate(monotonic):
        if count >= rank:
            if math.isinf(bound):
                return ordered[index - 1][0] if index > 0 else None
            if index == 0 and bound <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return None


def read_export(text: str, backend: str = "databricks") -> Export:
    """The export ``text`` read; a text neither format parses is the cloud's error."""
    try:
        families = _families(text)
    except (ValueError, TypeError, IndexError) as exc:
        raise BackendError(f"the endpoint's metrics export cannot be parsed: {exc}", backend) from (
            exc
        )
    found = Export()
    latency: dict[str, dict[str, dict[float, float]]] = {}  # family -> route -> q -> ms
    for family in families:
        name, kind = str(getattr(family, "name", "")), str(getattr(family, "type", ""))
        buckets: dict[str, dict[float, float]] = {}  # route -> le -> count, summed over series
        for sample in getattr(family, "samples", []):
            labels = sample.labels
            route = route_name_of(
                labels.get("served_entity_name") or labels.get("served_model_name") or "-"
            )
            if sample.name.endswith("_created"):
                continue  # when the series began, not a measurement
            if sample.name in _COUNTERS:
                if not math.isfinite(sample.value):
                    raise BackendError(
                        f"the endpoint's metrics export counts {sample.value} for "
                        f"{sample.name} of {route!r}, no number of requests",
                        backend,
                    )
                counted = found.counters[_COUNTERS[sample.name]]
                counted[route] = counted.get(route, 0) + int(sample.value)
            elif "latency" in name and kind == "histogram":
                if sample.name == f"{name}_bucket" and "le" in labels:
                    counts = buckets.setdefault(route, {})
                    bound = float(labels["le"])
                    counts[bound] = counts.get(bound, 0.0) + sample.value
            elif "latency" in name and kind == "summary":
                if "quantile" in labels and float(labels["quantile"]) in QUANTILES:
                    quantiles = latency.setdefault(name, {}).setdefault(route, {})
                    quantiles[float(labels["quantile"])] = _in_ms(name, sample.value)
            else:
                found.custom[f"{sample.name}/{route}"] = sample.value
        for route, counts in buckets.items():
            for q in QUANTILES:
                value = histogram_quantile(q, counts.items())
                if value is not None:
                    quantiles = latency.setdefault(name, {}).setdefault(route, {})
                    quantiles[q] = _in_ms(name, value)
    judged = ROUND_TRIP if ROUND_TRIP in latency else min(latency, default=None)
    for name, routes in latency.items():
        for route, quantiles in routes.items():
            for q, label in QUANTILES.items():
                if q not in quantiles:
                    continue
                if name == judged:
                    (found.p50 if label == "p50" else found.p99)[route] = quantiles[q]
                else:
                    found.custom[f"{name}_{label}/{route}"] = quantiles[q]
    return found
