"""Approval rows written straight into the store, as someone bypassing Mintaka would, for the
tests that check such rows count nowhere (a uniquely named module: every test folder's
``conftest`` is imported as ``conftest``)."""

from __future__ import annotations

from datetime import datetime

from mintaka import Platform
from mintaka.domain.registry import ModelVersion
from mintaka.store.schema import approvals


def forge_approval(plat: Platform, version: ModelVersion, row_id: str, at: datetime) -> None:
    """Write raj's model-risk sign-off of ``version`` as of ``at`` straight into the approvals
    table, with no audit event recording it."""
    with plat.store.write() as conn:
        conn.execute(
            approvals.insert().values(
                id=row_id,
                version_id=version.id,
                artifact_digest=version.artifact_digest,
                approver="raj",
                identity_source="flag",
                role="model-risk",
                comment="",
                at=at.isoformat(),
            )
        )
