"""``mintaka monitor report``: one self-contained HTML page per endpoint.

As the drift runner measures it, the page groups the window's logged inputs by the model version
that answered them (see :meth:`~mintaka.monitoring.service.MonitoringService.version_traffic`:
one section per live version, and per version whose rows the window holds from before a
redeploy; versions trained on the same data share one) and compares each group with its own
version's training-data profile; a version naming no profiled training data is shown as
unmeasurable, by its route and version; a group of too few rows to measure (see
:func:`~mintaka.monitoring.service.enough_rows`) shows no statistics, only the note the runner
gives it. For each version the page shows the features the runner
watches (the serving version's inputs, not the label column), each numeric one's reference
histogram beside the current one (on the profile's bin edges, as proportions,
drawn with matplotlib's Agg backend and embedded as PNG; the logged values read as the drift
statistics read them, a numeric string as its number), the drift table, and the endpoint's
tickets. A statistic of a feature's kind that the window's traffic cannot give (no
values of the feature in it, say), or that the runner does not judge because the feature has
fewer values than its floor (see :func:`~mintaka.monitoring.statistics.min_values`), reads
"unmeasured" in the table, with why below it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mintaka.domain.monitoring import Ticket
from mintaka.monitoring.kinds import STATISTICS as STATISTICS_OF
from mintaka.monitoring.service import NO_PROFILE

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    from mintaka.monitoring.profiles import DatasetProfile, NumericProfile
    from mintaka.monitoring.service import Reference, VersionTraffic
    from mintaka.monitoring.statistics import DriftReport
    from mintaka.platform import Platform

TEMPLATE = "monitor_report.html.j2"
STATISTICS = ("psi", "jensen_shannon", "ks_statistic", "wasserstein", "chi2_statistic")


@dataclass(frozen=True)
class FeatureSection:
    name: str
    kind: str
    statistics: dict[str, float | None]
    chart_png: str | None  # base64, numeric features only
    unmeasured: dict[str, str] = field(default_factory=dict)  # statistic: why it is missing


@dataclass(frozen=True)
class VersionSection:
    """The drift of the rows one version answered against that version's training data."""

    name: str  # route 'green' (credit:2)
    dataset_id: str | None  # None: the version names no profiled training data
    current_rows: int
    features: list[FeatureSection]
    left_out: str | None = None  # why the runner does not measure the group, if it does not


@dataclass(frozen=True)
class MonitorReport:
    endpoint: str
    generated_at: datetime
    window: str
    current_rows: int
    versions: list[VersionSection]
    tickets: list[Ticket]


def histogram_png(feature: str, numeric: NumericProfile, current: list[float]) -> bytes:
    """Reference vs current proportions in the profile's bins: the inner bins on its edges, and
    the two open-ended outer bins (where current values outside the reference range fall) drawn
    one mean bin width wide on either side."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    from mintaka.monitoring.profiles import histogram

    edges = np.asarray(numeric.edges, dtype=np.float64)
    reference = np.asarray(numeric.counts, dtype=np.float64)
    now = histogram(edges, np.asarray(current, dtype=np.float64)).astype(np.float64)
    inner = np.diff(edges)
    outer = float(inner.mean()) if len(inner) and inner.mean() > 0 else 1.0
    lefts = np.concatenate(([edges[0] - outer], edges[:-1], [edges[-1]]))
    # A dominant value's bin is one float wide: draw it a fiftieth of the range wide.
    visible = np.maximum(inner, (edges[-1] - edges[0]) / 50) if len(inner) else inner
    widths = np.concatenate(([outer], visible, [outer]))
    figure = Figure(figsize=(5.0, 2.6), dpi=80)
    axes = figure.subplots()
    for counts, label, colour in ((reference, "reference", "#8aa"), (now, "current", "#c63")):
        total = counts.sum()
        share = counts / total if total else counts
        axes.bar(lefts, share, width=widths, align="edge", alpha=0.55, label=label, color=colour)
    axes.set_title(feature)
    axes.set_ylabel("share of rows")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def build_report(platform: Platform, endpoint: str, window: str = "1d") -> MonitorReport:
    """The drift of ``endpoint``'s last ``window`` of live predictions, version by version as
    the runner measures it, and its tickets. Every live version has its section, one that
    answered nothing in the window too (its features are named, without statistics)."""
    serving = platform.serving.get_endpoint(endpoint)
    now = platform._now()
    logged = [
        r
        for r in platform.monitoring.window_predictions(endpoint, window, now)
        if isinstance(r["inputs"], dict)
    ]
    groups = platform.monitoring.version_traffic(serving, logged, idle=True)
    tickets = [t for t in platform.monitoring.tickets() if t.endpoint == endpoint]
    return MonitorReport(
        endpoint=endpoint,
        generated_at=now,
        window=window,
        current_rows=len(logged),
        versions=[
            _version_section(platform, endpoint, group, _left_out(groups, group))
            for group in groups
        ],
        tickets=tickets,
    )


def _left_out(groups: Sequence[VersionTraffic], group: VersionTraffic) -> str | None:
    """The runner's note on ``group`` when it leaves it out of the drift it measures for too
    few rows (see :func:`~mintaka.monitoring.service.enough_rows`), ``None`` when it measures
    it, has no profile to measure it against, or the window holds none of its rows."""
    from mintaka.monitoring.service import enough_rows, too_few

    measured, _ = enough_rows([g for g in groups if g.reference is not None and g.rows])
    if group.reference is None or not group.rows or any(group is m for m in measured):
        return None
    return too_few(group)


def _version_section(
    platform: Platform, endpoint: str, group: VersionTraffic, left_out: str | None
) -> VersionSection:
    """``group``'s rows against its version's profile, feature by feature; without statistics
    when the runner leaves the group out (``left_out`` says why)."""
    from mintaka.monitoring.profiles import DatasetProfile, as_columns
    from mintaka.monitoring.statistics import drift

    reference = group.reference
    sections: list[FeatureSection] = []
    if reference is not None:
        profile = DatasetProfile.from_json(reference.profile)
        names = _shown_features(platform, endpoint, reference, group.rows)
        columns = as_columns(group.rows)  # once: the drift statistics read the same columns
        measured = group.rows and left_out is None
        report = drift(profile, columns, features=names) if measured else None
        for name in names:
            sections.append(_section(profile, report, name, columns.get(name)))
    return VersionSection(
        name=group.name,
        dataset_id=None if reference is None else reference.dataset_id,
        current_rows=len(group.rows),
        features=sections,
        left_out=left_out,
    )


def _shown_features(
    platform: Platform, endpoint: str, reference: Reference, rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The features the runner watches on ``endpoint``, in the profile's order: those an
    all-features drift signal watches in the window (the serving version's inputs, not the
    label; see :func:`~mintaka.monitoring.service.watched_features`) and the profiled ones a
    drift signal of the endpoint names."""
    from mintaka.domain.monitoring import SignalKind
    from mintaka.monitoring.service import watched_features

    named = {
        signal.metric.partition(":")[2]
        for spec in platform.monitoring.monitors(endpoint)
        for signal in spec.signals
        if signal.kind is SignalKind.DRIFT
    }
    shown = set(watched_features(reference, rows)) | named
    return [name for name in reference.profile.get("features", {}) if name in shown]


def _section(
    profile: DatasetProfile,
    report: DriftReport | None,
    name: str,
    column: npt.NDArray[Any] | None,
) -> FeatureSection:
    from mintaka.monitoring.profiles import NumericProfile

    feature = profile.features[name]
    statistics = {s: None if report is None else report.value(name, s) for s in STATISTICS}
    unmeasured = {} if report is None else _unmeasured(report, name, logged=column is not None)
    few = None if report is None else report.features[name].too_few()
    if few is not None:
        # Below the feature's floor the runner judges nothing: its statistics would be noise.
        kinds = STATISTICS_OF[feature.kind]
        statistics = {s: None if s in kinds else v for s, v in statistics.items()}
        unmeasured = {s: f"too few values to judge: {few}" for s in STATISTICS if s in kinds}
    chart = None
    if isinstance(feature, NumericProfile) and len(feature.edges) > 1:
        current = [] if column is None else charted_numbers(column)
        chart = base64.b64encode(histogram_png(name, feature, current)).decode("ascii")
    return FeatureSection(name, feature.kind, statistics, chart, unmeasured)


def _unmeasured(report: DriftReport, name: str, *, logged: bool) -> dict[str, str]:
    """Why each statistic of feature ``name`` could not be measured, in the runner's words."""
    from mintaka.monitoring.service import why_unmeasured

    found = {s: report.features[name].unmeasured(s) for s in STATISTICS}
    seen = (name,) if logged else ()
    return {s: why_unmeasured(name, why, seen) for s, why in found.items() if why is not None}


def charted_numbers(column: npt.NDArray[Any]) -> list[float]:
    """The logged values of a numeric feature that the drift statistics count, read as they read
    them (a numeric string is its number; a value that is not a number is left out)."""
    import numpy as np

    from mintaka.monitoring.profiles import to_numeric_lenient

    numbers = to_numeric_lenient(column)[0]
    return [float(n) for n in numbers[~np.isnan(numbers)]]


def render_html(report: MonitorReport) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["stat"] = lambda v: "-" if v is None else f"{v:.4f}"
    return environment.get_template(TEMPLATE).render(
        report=report, statistics=STATISTICS, no_profile=NO_PROFILE
    )


def write_report(platform: Platform, endpoint: str, out: str | Path, window: str = "1d") -> Path:
    """Write ``<endpoint>.monitor.html`` under ``out`` and return its path. The report is built
    first: an unknown endpoint or window leaves no directory behind."""
    page = render_html(build_report(platform, endpoint, window))
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{endpoint}.monitor.html"
    path.write_text(page, encoding="utf-8")
    return path
