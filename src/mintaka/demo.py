"""The lifecycle demo behind ``mintaka demo``, on the local backend with no cloud and no download.

It generates a credit-style dataset deterministically, trains a real scikit-learn model in a
recorded run, saves it with skops, registers it as a high-risk model with its lineage, shows the
policy refusing its promotion, documents it, gets two model-risk approvals from people other than
its developer, promotes it to ``champion``, and verifies the audit trail.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mintaka.domain.audit import ChainReport
from mintaka.domain.lineage import LineageGraph
from mintaka.domain.monitoring import Alert, Ticket
from mintaka.domain.registry import ModelVersion, Signature
from mintaka.errors import PolicyViolation
from mintaka.flavors import sklearn as sklearn_flavor
from mintaka.platform import Platform
from mintaka.serving.ops import PredictionTrace

FEATURES = ("income", "debt_ratio", "age", "late_payments", "utilisation", "tenure")
SEED = 7


DEVELOPER = "dana.developer"
APPROVERS = ("rita.risk", "raj.risk")
DEMO_ROLES = f"""
[roles]
"{APPROVERS[0]}" = ["model-risk"]
"{APPROVERS[1]}" = ["model-risk"]
"""


@dataclass(frozen=True)
class DemoResult:
    version: ModelVersion
    lineage: LineageGraph
    audit: ChainReport
    metrics: dict[str, float]
    refused: tuple[str, ...] = ()
    served: int = 0
    calm_alerts: int = 0
    drift_alerts: tuple[Alert, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    traced: PredictionTrace | None = None


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


def write_dataset(path: Path, rows: int = 2000, seed: int = SEED) -> Path:
    """A deterministic credit-default dataset: same seed, same bytes."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=len(FEATURES),
        n_informative=4,
        n_redundant=1,
        weights=[0.8, 0.2],
        random_state=seed,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "default"])
        for features, label in zip(x, y, strict=True):
            writer.writerow([f"{v:.6f}" for v in features] + [int(label)])
    return path


def _load(path: Path) -> tuple[list[list[float]], list[int]]:
    with path.open() as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [[float(v) for v in row] for row in reader]
    return [row[:-1] for row in rows], [int(row[-1]) for row in rows]


def run_demo(platform: Platform, step: Callable[[str], None] = lambda _: None) -> DemoResult:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    work = platform.home / "demo"
    install_demo_policy(platform.home)
    platform.governance.reload_policy()
    step("generating the credit dataset")
    data = write_dataset(work / "credit.csv")
    dataset = platform.register_dataset(
        "credit-applications", data, schema={f: "float" for f in FEATURES} | {"default": "int"}
    )

    step("training a logistic regression in a recorded run")
    params = {"C": 0.5, "max_iter": 500, "seed": SEED}
    run = platform.start_run("credit-default", params=params, dataset_ids=[dataset.id])
    x, y = _load(data)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED)
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"]).fit(x_train, y_train)
    metrics = {
        "auc": float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])),
        "accuracy": float(accuracy_score(y_test, model.predict(x_test))),
    }
    platform.log_metrics(run.id, metrics)
    platform.end_run(run.id)
    artifact = sklearn_flavor.save(model, work / "model")

    step("registering the model as high risk, with its lineage")
    name = "credit-default"
    existing = {v.artifact_digest: v for v in _versions(platform, name)}
    from mintaka.artifacts import manifest_of

    digest = manifest_of(artifact).digest
    version = existing.get(digest) or platform.register_model(
        name,
        artifact,
        run_id=run.id,
        tier="high",
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        tags={"team": "credit-risk", "use": "loan-approval"},
        description="Probability that an applicant defaults within 12 months.",
        owner=DEVELOPER,
    )

    refused: tuple[str, ...] = ()
    if "champion" not in version.aliases:
        step("asking to promote it to champion: the high-risk policy refuses")
        try:
            version = platform.set_alias(name, "champion", version.version)
        except PolicyViolation as exc:
            refused = tuple(exc.unmet)
    if refused:
        step("documenting it and collecting two model-risk approvals")
        platform.governance.set_model_card(
            version.ref,
            intended_use="Rank loan applicants by 12-month default risk for manual review.",
            limitations="Trained on synthetic data; not validated for small-business loans.",
            training_data="credit-applications (generated, seed 7), 2,000 rows.",
            evaluation=f"AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f} "
            "on a 25% holdout.",
            owner=DEVELOPER,
        )
        approved = {a.approver.name for a in platform.governance.approvals(version)}
        for approver in APPROVERS:
            if approver not in approved:
                with Platform(
                    platform.home, actor=approver, clock=platform.clock, plugins=platform.plugins
                ) as colleague:
                    colleague.governance.approve(version.ref, comment="validated holdout metrics")
        version = platform.set_alias(name, "champion", version.version)

    step("serving the champion on a local endpoint and sending it applicants")
    rows = [dict(zip(FEATURES, row, strict=True)) for row in x_test[:200]]
    served, calm, drifted, first_id = _serve_and_watch(platform, name, rows, step)
    traced = platform.serving.trace(first_id)

    step("walking the lineage and verifying the audit chain")
    lineage = platform.lineage_upstream(f"{name}@champion")
    report = platform.verify_audit()
    return DemoResult(
        version=version,
        lineage=lineage,
        audit=report,
        metrics=metrics,
        refused=refused,
        served=served,
        calm_alerts=len(calm),
        drift_alerts=drifted,
        tickets=tuple(platform.monitoring.tickets("open")),
        traced=traced,
    )


ENDPOINT = "credit-scoring"


def _serve_and_watch(
    platform: Platform, name: str, rows: list[dict[str, float]], step: Callable[[str], None]
) -> tuple[int, tuple[Alert, ...], tuple[Alert, ...], str]:
    """Serve the champion on the local inference server, watch it with a drift monitor, send
    ordinary traffic (no alert), then traffic whose income has shifted (an alert and a ticket)."""
    from mintaka.domain.monitoring import Escalation, MonitorSpec, Signal, SignalKind
    from mintaka.local.server import InferenceServer

    if ENDPOINT not in {e.name for e in platform.serving.list_endpoints()}:
        platform.serving.create_endpoint(ENDPOINT, f"{name}@champion", route="champion")
    if not platform.monitoring.monitors(ENDPOINT):
        platform.monitoring.add_monitor(
            MonitorSpec(
                endpoint=ENDPOINT,
                model=name,
                signals=[
                    Signal(
                        name="income-drift",
                        kind=SignalKind.DRIFT,
                        metric="psi:income",
                        threshold=0.2,
                        window="1h",
                        severity="critical",
                        owner="credit-oncall",
                        escalation=[Escalation(after_minutes=30, to="credit-lead")],
                        runbook_url="https://runbooks.example/credit-scoring/drift",
                    )
                ],
            )
        )
    with InferenceServer(platform) as server:
        server.start()
        answers = [platform.serving.invoke(ENDPOINT, row) for row in rows]
        server.predlog.flush()
        calm = platform.monitoring.run_once().alerts
        step("injecting drift: the same applicants with a much higher income")
        for row in rows:
            platform.serving.invoke(ENDPOINT, {**row, "income": row["income"] + 2.5})
        server.predlog.flush()
        step("running the monitors: drift is detected and a ticket opens")
        drifted = platform.monitoring.run_once().alerts
    return 2 * len(rows), calm, drifted, answers[0]["predictions"][0]["id"]


def _versions(platform: Platform, name: str) -> list[ModelVersion]:
    from mintaka.errors import NotFound

    try:
        return platform.list_versions(name)
    except NotFound:
        return []
