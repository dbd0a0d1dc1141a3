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
from mintaka.domain.registry import ModelVersion
from mintaka.errors import PolicyViolation
from mintaka.flavors import sklearn as sklearn_flavor
from mintaka.platform import Platform

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

    step("walking the lineage and verifying the audit chain")
    lineage = platform.lineage_upstream(f"{name}@champion")
    report = platform.verify_audit()
    return DemoResult(
        version=version, lineage=lineage, audit=report, metrics=metrics, refused=refused
    )


def _versions(platform: Platform, name: str) -> list[ModelVersion]:
    from mintaka.errors import NotFound

    try:
        return platform.list_versions(name)
    except NotFound:
        return []
