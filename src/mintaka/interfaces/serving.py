"""Serving interfaces: endpoints, routes, traffic, shadow, native rollouts, batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mintaka.domain.registry import Flavor
from mintaka.domain.serving import Endpoint, Route, TrafficMap, TrafficPlan


class Serving(ABC):
    """``Capability.SERVING``: endpoints with routes to model versions, invoked for predictions."""

    @abstractmethod
    def create_endpoint(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        """Create an endpoint; ``Conflict`` when it exists."""

    @abstractmethod
    def get_endpoint(self, name: str) -> Endpoint: ...

    @abstractmethod
    def list_endpoints(self) -> list[Endpoint]: ...

    @abstractmethod
    def update_routes(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        """Replace the set of routes (deploy a new version) together with the traffic map."""

    @abstractmethod
    def delete_endpoint(self, name: str) -> None: ...

    @abstractmethod
    def invoke(self, name: str, payload: Any, route: str | None = None) -> dict[str, Any]:
        """Send one request; ``route`` pins it to one route where the cloud allows.

        ``payload`` is ``{"inputs": row}`` or ``{"inputs": [rows]}``. The answer MUST hold
        ``"route"`` (the route that answered) and ``"predictions"``: one ``{"id", "output"}``
        per row, where ``id`` is a prediction id unique across calls (the backend makes one
        when the cloud does not). A killed or unreachable endpoint raises ``BackendError``.
        """

    def serves_flavor(self, flavor: Flavor) -> bool:
        """Whether a route to a version of ``flavor`` can answer requests, checked by core
        before such a route is given live or shadow traffic. By default yes: a cloud's serving
        loads a version's bytes with its own image or runtime, which may read any format; a
        backend that loads models itself says which flavors its loaders take."""
        return True


class TrafficSplit(ABC):
    """``Capability.SERVING_TRAFFIC_SPLIT``: weights changed without redeploying routes."""

    @abstractmethod
    def set_traffic(self, name: str, traffic: TrafficMap) -> Endpoint: ...


class ShadowTraffic(ABC):
    """``Capability.SERVING_SHADOW``: one route receives a copy of live requests."""

    @abstractmethod
    def set_shadow(self, name: str, route: str | None, percent: int) -> Endpoint: ...


class NativeRollout(ABC):
    """``Capability.SERVING_NATIVE_ROLLOUT``: the cloud walks the plan and rolls back itself."""

    def check_native_plan(self, plan: TrafficPlan, current: Endpoint) -> None:  # noqa: B027
        """Refuse with ``ValidationError`` a plan the cloud cannot walk as written from the
        endpoint ``current`` (naming the plan's steps and what the cloud can walk), so it is
        never run as a different rollout.

        Core calls it before the traffic gate and before anything is marked, recorded or sent
        to the cloud, twice: with the endpoint as it has it recorded, and with the endpoint as
        the cloud reports it (``Serving.get_endpoint``), which the cloud walks from (its
        traffic may have changed outside Mintaka); ``start_rollout`` calls it too. It reads
        nothing of the endpoint from the cloud and changes nothing. An optional hook: the
        default accepts every plan, as a cloud whose policy walks any plan has nothing to
        refuse.
        """

    @abstractmethod
    def start_rollout(self, plan: TrafficPlan) -> str:
        """Start a native rollout of a plan ``check_native_plan`` accepts; returns the backend's
        rollout id."""

    @abstractmethod
    def rollout_status(self, name: str, rollout_id: str) -> str:
        """``in_progress``, ``succeeded``, ``rolled_back`` (the cloud undid it, e.g. on an alarm)
        or ``failed`` (``mintaka.rollout.native.NativeRolloutStatus``). A read only: sync asks
        it too."""

    def retire_rollout(self, name: str, rollout_id: str) -> None:  # noqa: B027
        """Remove what a native rollout that has ended left in the cloud and nothing serves any
        more (the configuration the endpoint moved from, or the rollout's own after a
        rollback); never anything an endpoint still serves or is being updated to. Core calls
        it when it records the rollout's end (``mintaka rollout-status``), and again at every
        later status of the rollout (its end recorded, or unknown after a kill) and before the
        endpoint's next rollout, so it must retire only what is still left, and nothing while
        the endpoint is absent (killed); never from a read such as sync. An
        optional hook: the default removes nothing, as a cloud that cleans up after its own
        rollouts leaves nothing behind."""


class BatchScoring(ABC):
    """``Capability.SERVING_BATCH``: score a file with a model version outside any endpoint."""

    @abstractmethod
    def score_batch(
        self,
        route: Route,
        input_path: Path,
        output_path: Path,
        *,
        batch_id: str,
        features: Sequence[str] = (),
    ) -> dict[str, str]:
        """Score every row of ``input_path`` into ``output_path`` (rows gain ``prediction_id``
        and ``prediction`` columns); each row's prediction is logged like an online one, under
        the endpoint ``mintaka.serving.batch.BATCH_SCORED`` and the route ``batch_id``."""


class KillSwitch(ABC):
    """``Capability.SERVING_KILL``: the endpoint refuses every request until released.

    Core's kill switch uses this when no approved version is left to route traffic to; a killed
    endpoint answers 503 (or the cloud's equivalent) and serves no model at all.
    """

    @abstractmethod
    def kill(self, name: str) -> Endpoint: ...

    @abstractmethod
    def unkill(self, name: str) -> Endpoint: ...
