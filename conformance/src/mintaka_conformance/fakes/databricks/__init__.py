"""A faithful fake Databricks workspace, driven by the real ``databricks-sdk``.

``FakeDatabricks`` is a small HTTP server on ``127.0.0.1`` (ephemeral port, plain HTTP,
background thread) that answers the REST paths a Mintaka Databricks backend uses, with the
service's status transitions, validation and error bodies, so that the real SDK code runs end to
end and raises its real typed errors (``NotFound``, ``ResourceAlreadyExists``,
``InvalidParameterValue`` ...)::

    from mintaka_conformance.fakes.databricks import FakeDatabricks, fake_workspace_client

    with FakeDatabricks(seed=7) as fake, fake_workspace_client(fake) as w:
        w.registered_models.create(catalog_name="main", schema_name="default", name="churn")
        fake.state.uc.add_version("main.default.churn")        # out-of-band change
        w.registered_models.set_alias("main.default.churn", "champion", 1)

Implemented paths:

- ``GET /.well-known/databricks-config`` (read by ``Config()``) and SCIM ``Me``; PAT auth.
- Unity Catalog models, versions and aliases (``/api/2.1/unity-catalog/models/...``) and MLflow's
  Unity Catalog registry (``/api/2.0/mlflow/unity-catalog/...``): version create / finalize
  (``PENDING_REGISTRATION`` -> ``READY``), tags on models and versions, aliases, search.
- The workspace model registry (``/api/2.0/mlflow/registered-models/...``,
  ``/api/2.0/mlflow/model-versions/...``): models, versions, tags, stages and transitions.
- MLflow experiments and runs (create, get, update, log-batch, search ...).
- Serving endpoints (``/api/2.0/serving-endpoints``): create, get, list, delete, config updates
  through a pending config, traffic route validation, tags, AI gateway, Prometheus metrics,
  inference-table capture, and invocations answered with the ``served-model-name`` header.
- Jobs 2.2: jobs, run-now, runs submit / get / get-output / list / cancel, with scripted outcomes
  (a script task's ``logs`` among them).
- The Files API and the Workspace API (folders, files and notebooks: mkdirs, import, export,
  get-status, delete).

Faults come from a seeded :class:`FaultSchedule` (429 with ``Retry-After``, 503, plain 500, a
response lost after the operation ran, a connection reset). :func:`workspace_client` builds a
client whose retries do not wait in real time (:class:`NoWaitClock`), and
:func:`isolated_environment` hides stray ``DATABRICKS_*`` / ``ARM_*`` variables and
``~/.databrickscfg``. ``mintaka_conformance.fakes.databricks_fixtures`` offers the same as pytest
fixtures. The server needs only the standard library; the SDK is imported when a client is built.
See ``docs/fakes/databricks.md``.
"""

from __future__ import annotations

from .client import NoWaitClock, fake_workspace_client, isolated_environment, workspace_client
from .faults import Fault, FaultSchedule, InjectedFault
from .routing import ApiError
from .server import FakeDatabricks, RecordedRequest, WorkspaceState

__all__ = [
    "ApiError",
    "FakeDatabricks",
    "Fault",
    "FaultSchedule",
    "InjectedFault",
    "NoWaitClock",
    "RecordedRequest",
    "WorkspaceState",
    "fake_workspace_client",
    "isolated_environment",
    "workspace_client",
]
