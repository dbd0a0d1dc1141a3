"""Every boto3 client the backend uses, built in one place with an explicit retry policy.

Each client gets the same ``botocore.config.Config``: the retry mode and attempt budget
(``total_max_attempts`` counts the first request), connect and read timeouts, and the region.
In ``standard`` mode the backoff is botocore's own full-jitter exponential one, capped at
``max_backoff_seconds`` (botocore fixes the cap at 20 s; a cap of 0 retries at once). boto3 is
imported here, on first use, never when the plugin is loaded.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from mintaka.errors import ConfigurationError
from mintaka_sagemaker import INSTALL_HINT

if TYPE_CHECKING:
    from mintaka_sagemaker.settings import SageMakerSettings

SERVICES = ("sagemaker", "sagemaker-runtime", "s3", "cloudwatch", "sts")

# One boto3 session per (profile, region) for the process: its loader caches the service models,
# which makes building a client about ten times cheaper. boto3 sessions are not thread-safe, so
# clients are built under one lock.
_SESSION_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str | None, str], Any] = {}


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise ConfigurationError(
            f"the SageMaker backend needs boto3, which is not installed: {INSTALL_HINT}"
        ) from exc
    return boto3


class ClientFactory:
    """Builds and caches one client per service from the backend's settings (thread-safe)."""

    def __init__(self, settings: SageMakerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def config(self, service: str) -> Any:
        from botocore.config import Config

        s = self.settings
        options: dict[str, Any] = {
            "region_name": s.region,
            "retries": {"mode": s.retry_mode, "total_max_attempts": s.max_attempts},
            "connect_timeout": s.connect_timeout,
            "read_timeout": s.read_timeout,
        }
        if service == "s3" and s.endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        return Config(**options)

    def get(self, service: str) -> Any:
        client = self._clients.get(service)  # built once; later calls need no lock
        if client is not None:
            return client
        if service not in SERVICES:
            raise ValueError(f"the SageMaker backend uses no {service!r} client")
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = self._build(service)
                self._clients[service] = client
            return client

    def _build(self, service: str) -> Any:
        boto3 = _boto3()
        key = (self.settings.profile, self.settings.region)
        with _SESSION_LOCK:
            session = _SESSIONS.get(key)
            if session is None:
                session = boto3.session.Session(
                    profile_name=self.settings.profile, region_name=self.settings.region
                )
                _SESSIONS[key] = session
            client = session.client(
                service,
                region_name=self.settings.region,
                endpoint_url=self.settings.endpoint_url,
                config=self.config(service),
            )
        if self.settings.retry_mode == "standard" and self.settings.max_backoff_seconds != 20.0:
            cap_backoff(client, self.settings.max_attempts, self.settings.max_backoff_seconds)
        return client

    @property
    def sagemaker(self) -> Any:
        return self.get("sagemaker")

    @property
    def runtime(self) -> Any:
        return self.get("sagemaker-runtime")

    @property
    def s3(self) -> Any:
        return self.get("s3")

    @property
    def cloudwatch(self) -> Any:
        return self.get("cloudwatch")

    @property
    def sts(self) -> Any:
        return self.get("sts")

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                close = getattr(client, "close", None)
                if close is not None:
                    close()
            self._clients.clear()


def cap_backoff(client: Any, max_attempts: int, max_backoff: float) -> None:
    """Replace ``client``'s standard-mode retry handler by one whose backoff is capped.

    Mirrors ``botocore.retries.standard.register_retry_handler`` (retry conditions, attempt budget
    and retry quota stay botocore's) with the backoff cap set: full jitter over
    ``min(base * 2**(attempt-1), max_backoff)``, and no wait at all for a cap of 0.
    """
    from botocore.retries import quota, standard

    class NoBackoff(standard.ExponentialBackoff):  # type: ignore[misc]
        def delay_amount(self, context: Any) -> float:
            return 0.0

    service = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{service}"
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    adapter = standard.RetryEventAdapter()
    detector = standard.ThrottlingErrorDetector(adapter)
    quota_checker = standard.RetryQuotaChecker(quota.RetryQuota(), detector)
    backoff_class = NoBackoff if max_backoff <= 0 else standard.ExponentialBackoff
    handler = standard.RetryHandler(
        retry_policy=standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=backoff_class(
                max_backoff=max_backoff, service_name=service, throttling_detector=detector
            ),
        ),
        retry_event_adapter=adapter,
        retry_quota=quota_checker,
        service_name=service,
    )
    client.meta.events.register(f"after-call.{service}", quota_checker.release_retry_quota)
    client.meta.events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)
