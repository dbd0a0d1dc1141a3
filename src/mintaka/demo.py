"""The lifecycle demo behind ``mintaka demo``: the whole lifecycle on the local backend, with no
cloud and no download.

1. It generates a credit-default dataset deterministically and binds the training pipeline
   (:mod:`mintaka.demo_pipeline`) to the ``credit-default`` model.
2. The pipeline registers the data, passes the data-validation gate, trains a scikit-learn model in
   a sub-process, passes the evaluation gate and registers the model as high risk; the deployment
   gate then refuses it: no model card, no model-risk approvals.
3. The model is documented and two model-risk approvers (not its developer) sign off; the run
   resumes from that gate, deploys the model on the local inference server, verifies the SLA
   under real traffic and makes it ``champion``.
4. A drift monitor watches the endpoint. Ordinary traffic raises nothing; then applicants arrive
   whose income has shifted and whose risk now depends on it differently. The monitoring runner
   raises a drift alert, opens a ticket for the on-call owner and queues a retraining.
5. The retraining runs the same validated pipeline on the recent labelled data; the challenger
   beats the champion on the declared business cost, is approved, walks the canary 10/50/100 under
   the SLA and is promoted; the old route is retired.
6. An incident drill: the developer pulls the kill switch on the endpoint, which refuses requests
   at once; she may not release it herself (the policy wants model-risk), a model-risk approver
   does, and traffic flows again.
7. A model that predates Mintaka: a team's own script trained it, registered it straight in the
   backend's registry and serves it on an endpoint of its own. Discovery finds both unrecorded;
   they are adopted (bytes read back and digested, flavor read from them, the endpoint's traffic
   as its first deployment) with the controls they fail listed, and the adopted endpoint's
   predictions are traced like any other.
8. Lineage answers which production models used the data source, a prediction is traced back to its
   training data, the audit chain and every stored model's bytes are verified, sync confirms the
   records match the backend, and an evidence pack is exported.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mintaka.artifacts.inventory import VerifyReport
from mintaka.artifacts.inventory import verify as verify_artifacts
from mintaka.clock import ManualClock
from mintaka.demo_pipeline import FEATURES, LABEL, SEGMENT, credit_pipeline
from mintaka.domain.audit import ChainReport
from mintaka.domain.discovery import Difference
from mintaka.domain.lineage import LineageGraph
from mintaka.domain.monitoring import Alert, Ticket
from mintaka.domain.pipelines import GateCheck
from mintaka.domain.registry import ModelVersion
from mintaka.errors import Conflict, GateFailed, NotFound
from mintaka.pipelines.local import RunState, StepEvent
from mintaka.platform import Platform
from mintaka.rollout.challenger import CostMatrix
from mintaka.serving.ops import PredictionTrace

SEED = 7
MODEL = "credit-default"
ENDPOINT = "credit-scoring"
DATA_SOURCE = "credit-applications"
DEVELOPER = "dana.developer"
APPROVERS = ("rita.risk", "raj.risk")
DRIFT_SIGNAL = "income-drift"
LEGACY_MODEL = "collections-priority"
LEGACY_ENDPOINT = "collections-api"
LEGACY_OWNER = "colin.collections"
DEMO_ROLES = f"""
[roles]
"{APPROVERS[0]}" = ["model-risk"]
"{APPROVERS[1]}" = ["model-risk"]
"""
# The world before and after: income shifts up by one standard deviation and, in the recent
# applications, raises the default risk where it used to lower it.
WEIGHTS = (-1.2, 1.4, -0.3, 1.0, 0.8, -0.4)
RECENT_WEIGHTS = (0.9, 1.4, -0.3, 1.0, 0.8, -0.4)
INTERCEPT = -1.6
COSTS = CostMatrix(threshold=0.3, false_positive=1.0, false_negative=5.0)


@dataclass(frozen=True)
class KillDrill:
    """The kill-switch drill: what a request met while the switch was pulled, why the developer
    could not release it, who did, and the endpoint's answer afterwards."""

    pulled_by: str
    refused: str
    release_refused: str
    released_by: str
    answered_after: bool


@dataclass(frozen=True)
class Adoption:
    """The model that predates Mintaka: what discovery found unrecorded, what was adopted, the
    controls it fails, and a prediction from the adopted endpoint traced back."""

    discovered: tuple[str, ...]
    versions: tuple[ModelVersion, ...]
    endpoint: str
    known_good: bool
    findings: tuple[str, ...]
    traced: PredictionTrace | None


@dataclass
class DemoResult:
    champion: ModelVersion
    first: ModelVersion
    lineage: LineageGraph
    audit: ChainReport
    metrics: dict[str, float]
    artifacts: VerifyReport | None = None
    refused: tuple[GateCheck, ...] = ()
    served: int = 0
    calm_alerts: int = 0
    drift_alerts: tuple[Alert, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    traced: PredictionTrace | None = None
    runs: tuple[RunState, ...] = ()
    challenge: tuple[GateCheck, ...] = ()
    canary: tuple[GateCheck, ...] = ()
    retired_routes: tuple[str, ...] = ()
    production_from_source: tuple[str, ...] = ()
    evidence: Path | None = None
    evidence_gaps: int = 0
    already_ran: bool = False
    differences: tuple[Difference, ...] | None = None  # sync against the backend, None: not run
    drill: KillDrill | None = None
    adoption: Adoption | None = None
    events: list[StepEvent] = field(default_factory=list)

    @property
    def version(self) -> ModelVersion:
        return self.champion


def install_demo_policy(home: Path) -> Path:
    """The shipped default policy plus the demo's two model-risk approvers, unless the home
    already has a policy of its own."""
    from mintaka.governance.policy import DEFAULT_POLICY, POLICY_FILE

    path = home / POLICY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        text = DEFAULT_POLICY.read_text().replace("[roles]\n", DEMO_ROLES.lstrip(), 1)
        path.write_text(text)
    return path


def applicants(
    rows: int, seed: int, *, shift: float = 0.0, weights: tuple[float, ...] = WEIGHTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, segments and default labels of ``rows`` applicants (same seed, same values)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    x[:, 0] += shift
    segments = rng.choice(np.array(["north", "south"]), size=rows)
    logits = x @ np.asarray(weights) + INTERCEPT
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(int)
    return x, segments, labels


def write_dataset(
    path: Path,
    rows: int = 2000,
    seed: int = SEED,
    *,
    shift: float = 0.0,
    weights: tuple[float, ...] = WEIGHTS,
) -> Path:
    """A deterministic credit-default dataset: same arguments, same bytes."""
    x, segments, labels = applicants(rows, seed, shift=shift, weights=weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, SEGMENT, LABEL])
        for features, segment, label in zip(x, segments, labels, strict=True):
            writer.writerow([*(f"{v:.6f}" for v in features), segment, int(label)])
    return path


def traffic(seed: int, *, shift: float = 0.0) -> Iterator[dict[str, float]]:
    """An endless, deterministic stream of applicants to score."""
    batch = 0
    while True:
        x, _, _ = applicants(200, seed + 1000 * batch, shift=shift)
        for row in x:
            yield dict(zip(FEATURES, (round(float(v), 6) for v in row), strict=True))
        batch += 1


def run_demo(platform: Platform, step: Callable[[str], None] = lambda _: None) -> DemoResult:
    from mintaka.local.server import InferenceServer

    work = platform.home / "demo"
    already_ran = _already_ran(platform)
    if not already_ran and _holds_records(platform):
        raise Conflict(
            f"{platform.home} already holds records and is no demo home: the demo would grant "
            "its own roles and register its own models there; run the demo in a fresh --home"
        )
    install_demo_policy(platform.home)
    platform.governance.reload_policy()
    if already_ran:
        step("the demo already ran in this home: reporting what it left")
        return _report(platform, work, already_ran=True)

    step("generating the credit data and binding the training pipeline to the model")
    data = write_dataset(work / "credit-applications.csv")
    platform.create_model(
        MODEL,
        tier="high",
        owner=DEVELOPER,
        description="Probability that an applicant defaults within 12 months.",
    )
    platform.serving.declare_business_metric(MODEL, COSTS)
    spec = credit_pipeline()
    platform.pipelines.bind(MODEL, spec, {"data": str(data)}, every="30d")
    events: list[StepEvent] = []

    with InferenceServer(platform) as server:
        server.start()
        stream = traffic(11)

        def bake(seconds: float) -> None:
            started = time.monotonic()
            for _ in range(200):
                platform.serving.invoke(ENDPOINT, next(stream))
            server.predlog.flush()
            if isinstance(platform.clock, ManualClock):
                platform.clock.advance(seconds)
            else:
                time.sleep(max(0.0, seconds - (time.monotonic() - started)))

        def progress(event: StepEvent) -> None:
            events.append(event)
            if event.status in ("succeeded", "cached", "failed"):
                mark = {"succeeded": "ok", "cached": "cached", "failed": "STOPPED"}[event.status]
                step(f"  [{event.index}/{event.total}] {event.step}: {mark}")

        options: dict[str, Any] = {"wait": bake, "on_event": progress}
        step("running the training pipeline: data gate, training, evaluation gate, registration")
        refused: tuple[GateCheck, ...] = ()
        try:
            platform.pipelines.retrain(MODEL, "initial training", **options)
        except GateFailed as exc:
            if exc.gate != "approvals" or exc.run_id is None:
                raise
            refused = tuple(exc.checks)
            first = platform.get_model_version(MODEL, 1)
            step("the deployment gate refused it; documenting it and collecting two approvals")
            _document_and_approve(platform, first, "credit-applications (seed 7), 2,000 rows")
            step("resuming the pipeline from the refused gate: deploy, verify the SLA, promote")
            platform.pipelines.resume(exc.run_id, **options)
        answer = platform.serving.invoke(ENDPOINT, next(stream))
        traced_id = str(answer["predictions"][0]["id"])

        step("watching the champion for drift; ordinary applicants first")
        _add_monitor(platform)
        _send(platform, traffic(21), 200)
        server.predlog.flush()
        calm = platform.monitoring.run_once().alerts
        step("applicants change: income up one standard deviation, risk tied to it differently")
        _send(platform, traffic(31, shift=1.0), 1000)
        server.predlog.flush()
        drifted = platform.monitoring.run_once().alerts

        step("retraining on the recent labelled applications, through the same pipeline")
        recent = write_dataset(
            work / "credit-applications-recent.csv",
            rows=2000,
            seed=SEED + 1,
            shift=1.0,
            weights=RECENT_WEIGHTS,
        )
        platform.pipelines.bind(MODEL, spec, {"data": str(recent)}, every="30d")
        stream = traffic(41, shift=1.0)
        for request, _run in platform.pipelines.process_requests(**options):
            if request.status != "waiting" or request.pipeline_run is None:
                continue
            state = platform.pipelines.get(request.pipeline_run)
            stopped = [s.name for s in state.run.steps if s.status.value == "failed"]
            if stopped != ["approvals"]:
                raise GateFailed(
                    stopped[0] if stopped else "?",
                    "gate",
                    [request.outcome],
                    run_id=request.pipeline_run,
                )
            challenger = platform.list_versions(MODEL)[-1]
            step("the challenger beat the champion; it needs its own sign-off first")
            _document_and_approve(platform, challenger, "recent applications (seed 8), 2,000 rows")
            step("resuming: canary 10% -> 50% -> 100% under the SLA, then promotion")
            platform.pipelines.resume(request.pipeline_run, **options)
        platform.pipelines.process_requests(**options)  # the resumed run settles its request

        step("incident drill: pulling the kill switch on credit-scoring")
        drill = _kill_drill(platform, next(stream))
        step("a model that predates Mintaka: discovered in the backend, then adopted")
        _deploy_legacy(platform, work / "legacy")
        adoption = _adopt_legacy(platform, next(stream), server.predlog.flush)
    result = _report(
        platform, work, refused=refused, calm=calm, drifted=drifted, traced_id=traced_id
    )
    result.events = events
    result.drill = drill
    result.adoption = adoption
    return result


def _kill_drill(platform: Platform, row: dict[str, float]) -> KillDrill:
    """Pull the switch, see a request refused, fail to release it as the developer, release it
    as a model-risk approver, see the endpoint answer again."""
    from mintaka.errors import BackendError, PolicyViolation

    with _colleague(platform, DEVELOPER) as developer:
        developer.serving.kill(ENDPOINT, reason="drill: scores look wrong, stop first, ask later")
        try:
            platform.serving.invoke(ENDPOINT, row)
            refused = "nothing: the endpoint still answered"
        except BackendError as exc:
            refused = str(exc)
        try:
            developer.serving.unkill(ENDPOINT, reason="drill over")
            release_refused = "nothing: the developer released it"
        except PolicyViolation as exc:
            release_refused = str(exc)
    with _colleague(platform, APPROVERS[0]) as risk:
        risk.serving.unkill(ENDPOINT, reason="drill over: scores checked")
    answered = bool(platform.serving.invoke(ENDPOINT, row)["predictions"])
    return KillDrill(DEVELOPER, refused, release_refused, APPROVERS[0], answered)


def _deploy_legacy(platform: Platform, folder: Path) -> None:
    """What a team's own script did before Mintaka ran here: train a model, register it straight
    in the backend's registry and serve it, with no record in Mintaka's store."""
    from sklearn.linear_model import LogisticRegression

    from mintaka.artifacts import manifest_of
    from mintaka.domain.registry import Flavor, VersionRequest
    from mintaka.domain.serving import Route, TrafficMap
    from mintaka.flavors import sklearn as sklearn_flavor
    from mintaka.local.backend import LocalBackend

    backend = platform.backend
    if not isinstance(backend, LocalBackend):
        raise TypeError("the demo runs on the local backend")
    x, _, labels = applicants(1000, SEED + 100)
    model = LogisticRegression(max_iter=200).fit(x, labels)
    directory = sklearn_flavor.save(model, folder / f"{LEGACY_MODEL}-1")
    backend.ensure_model(LEGACY_MODEL, "Which overdue accounts to call first.")
    backend.create_version(
        VersionRequest(
            name=LEGACY_MODEL,
            artifact_path=str(directory),
            artifact_digest=manifest_of(directory).digest,
            flavor=Flavor.SKLEARN,
            mintaka_id="",
            idempotency_key=f"{LEGACY_MODEL}-script-1",
        )
    )
    backend.create_endpoint(
        LEGACY_ENDPOINT,
        [Route(name="live", model=LEGACY_MODEL, version=1)],
        TrafficMap(weights={"live": 100}),
    )


def _adopt_legacy(
    platform: Platform, row: dict[str, float], flush: Callable[[], object]
) -> Adoption:
    migration = platform.migration
    found = tuple(f"{c.kind.value} {c.name}" for c in migration.discover() if not c.recorded)
    model = migration.adopt_model(
        LEGACY_MODEL,
        reason="scores collections since before Mintaka; brought under management",
        owner=LEGACY_OWNER,
        tier="medium",
        features=FEATURES,  # the script trained it on a bare array, in this column order
    )
    endpoint = migration.adopt_endpoint(
        LEGACY_ENDPOINT, reason="serves collections-priority; brought under management"
    )
    answer = platform.serving.invoke(LEGACY_ENDPOINT, row)
    flush()
    traced = platform.serving.trace(str(answer["predictions"][0]["id"]))
    return Adoption(
        discovered=found,
        versions=model.adopted,
        endpoint=LEGACY_ENDPOINT,
        known_good=endpoint.known_good,
        findings=(*model.findings, *endpoint.findings),
        traced=traced,
    )


def _colleague(platform: Platform, actor: str) -> Platform:
    """The same home, acting as someone else."""
    return Platform(platform.home, actor=actor, clock=platform.clock, plugins=platform.plugins)


def _send(platform: Platform, rows: Iterator[dict[str, float]], count: int) -> None:
    """``count`` applicants, fifty to a request."""
    for start in range(0, count, 50):
        batch = [next(rows) for _ in range(min(50, count - start))]
        platform.serving.invoke(ENDPOINT, batch)


def _already_ran(platform: Platform) -> bool:
    try:
        return len(platform.list_versions(MODEL)) >= 2
    except NotFound:
        return False


def _holds_records(platform: Platform) -> bool:
    """Whether anything was ever recorded in the home: every change is an audit event."""
    with platform.store.read() as conn:
        head = platform.audit.head(conn)
    return head is not None and head[0] > 0  # sequence 0: the chain's genesis, no event


def _document_and_approve(platform: Platform, version: ModelVersion, data: str) -> None:
    platform.governance.set_model_card(
        version.ref,
        intended_use="Rank loan applicants by 12-month default risk for manual review.",
        limitations="Trained on synthetic data; not validated for small-business loans.",
        training_data=data,
        evaluation=", ".join(f"{k} {v:.3f}" for k, v in sorted(version.metrics.items())),
        owner=DEVELOPER,
    )
    approved = {a.approver.name for a in platform.governance.approvals(version)}
    for approver in APPROVERS:
        if approver not in approved:
            with _colleague(platform, approver) as colleague:
                colleague.governance.approve(version.ref, comment="validated the holdout metrics")


def _add_monitor(platform: Platform) -> None:
    from mintaka.domain.monitoring import Escalation, MonitorSpec, Signal, SignalKind

    if platform.monitoring.monitors(ENDPOINT):
        return
    platform.monitoring.add_monitor(
        MonitorSpec(
            endpoint=ENDPOINT,
            model=MODEL,
            signals=[
                Signal(
                    name=DRIFT_SIGNAL,
                    kind=SignalKind.DRIFT,
                    metric="psi:income",
                    threshold=0.2,
                    window="1h",
                    severity="critical",
                    owner="credit-oncall",
                    escalation=[Escalation(after_minutes=30, to="credit-lead")],
                    runbook_url="https://runbooks.example/credit-scoring/drift",
                    retrain=True,
                )
            ],
        )
    )


def _report(
    platform: Platform,
    work: Path,
    *,
    refused: tuple[GateCheck, ...] = (),
    calm: tuple[Alert, ...] = (),
    drifted: tuple[Alert, ...] = (),
    already_ran: bool = False,
    traced_id: str | None = None,
) -> DemoResult:
    from mintaka.domain.pipelines import PipelineStatus
    from mintaka.governance.evidence import export_evidence

    champion = platform.get_model_version(MODEL, alias="champion")
    first = platform.get_model_version(MODEL, 1)
    runs = tuple(platform.pipelines.get(r.id) for r in platform.pipelines.runs())
    last = runs[-1].run if runs else None
    steps = {s.name: s for s in last.steps} if last else {}
    challenge = (
        steps["challenge"].gate.checks if "challenge" in steps and steps["challenge"].gate else ()
    )
    canary = steps["canary"].gate.checks if "canary" in steps and steps["canary"].gate else ()
    promoted = steps.get("promote")
    retired = (
        tuple(promoted.outputs.get("retired_routes", []))
        if promoted and (promoted.status is PipelineStatus.SUCCEEDED)
        else ()
    )
    production = platform.lineage_downstream(DATA_SOURCE, stage="production")
    refs = tuple(sorted(n.label for n in production.nodes if n.kind.value == "model_version"))
    traced = platform.serving.trace(traced_id) if traced_id else None
    metrics = platform.serving.endpoint_metrics(ENDPOINT, first.created_at, platform.clock.now())
    exported = export_evidence(platform, champion.ref, work / "evidence")
    return DemoResult(
        champion=champion,
        first=first,
        lineage=platform.lineage_upstream(f"{MODEL}@champion"),
        audit=platform.verify_audit(),
        artifacts=verify_artifacts(platform),
        metrics=dict(champion.metrics),
        refused=refused,
        served=sum(metrics.requests.values()),
        calm_alerts=len(calm),
        drift_alerts=drifted,
        tickets=tuple(
            t
            for t in platform.monitoring.tickets("open")
            if (t.endpoint, t.signal) == (ENDPOINT, f"{ENDPOINT}:{DRIFT_SIGNAL}")
        ),
        traced=traced,
        runs=runs,
        challenge=challenge,
        canary=canary,
        retired_routes=retired,
        production_from_source=refs,
        evidence=exported.html_path,
        evidence_gaps=exported.gaps,
        already_ran=already_ran,
        differences=tuple(platform.sync()),
    )
