"""boto3 clients for tests: explicit retry mode, attempt budget, timeouts, and no real backoff.

botocore's ``standard`` retry mode sleeps ``rand(0, 1) * min(base * 2**i, 20 s)`` between attempts
(base 1 s for throttling). To keep retry tests fast without touching global state, the helper
replaces the client's own retry handler: it unregisters the ``needs-retry`` handler botocore
registered under ``retry-config-<service>`` and registers an equivalent
``botocore.retries.standard.RetryHandler`` (same retry conditions, attempt budget and retry quota)
whose backoff is :class:`ZeroBackoff`. Everything else about the retry decision stays botocore's.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.retries import quota, standard

from .faults import FaultInjector

DUMMY_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class ZeroBackoff(standard.BaseRetryBackoff):  # type: ignore[misc,unused-ignore]
    """A retry backoff that never waits."""

    def delay_amount(self, context: Any) -> float:
        return 0.0


def use_zero_backoff(client: Any, max_attempts: int, *, retry_quota: bool = True) -> None:
    """Swap ``client``'s standard-mode retry handler for one that retries without sleeping.

    ``retry_quota=False`` gives the handler a practically unlimited retry quota, for tests that
    fault thousands of calls through one client (the default quota is 500 tokens).
    """
    if client.meta.config.retries.get("mode") != "standard":
        raise ValueError("zero backoff is only implemented for retries mode 'standard'")
    service = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{service}"
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    adapter = standard.RetryEventAdapter()
    detector = standard.ThrottlingErrorDetector(adapter)
    capacity = quota.RetryQuota() if retry_quota else quota.RetryQuota(initial_capacity=10**9)
    quota_checker = standard.RetryQuotaChecker(capacity, detector)
    handler = standard.RetryHandler(
        retry_policy=standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=ZeroBackoff(),
        ),
        retry_event_adapter=adapter,
        retry_quota=quota_checker,
        service_name=service,
    )
    client.meta.events.register(f"after-call.{service}", quota_checker.release_retry_quota)
    client.meta.events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)


_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    # One session for every client the helper builds: its loader caches the service models, which
    # makes a client about ten times cheaper to build. Credentials are always passed explicitly.
    # Callers hold _SESSION_LOCK (a boto3 session is not thread-safe).
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


def moto_mock_active() -> bool:
    """Whether moto's in-process mock (``mock_aws``) is intercepting boto3 right now."""
    from moto.core.models import botocore_stubber

    return bool(botocore_stubber.enabled)


def make_client(
    service_name: str,
    *,
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    max_attempts: int = 3,
    retry_mode: Literal["standard", "legacy", "adaptive"] = "standard",
    connect_timeout: float = 1.0,
    read_timeout: float = 5.0,
    zero_backoff: bool = True,
    retry_quota: bool = True,
    faults: FaultInjector | None = None,
) -> Any:
    """A boto3 client for moto with an explicit retry policy, dummy credentials and no AWS.

    ``max_attempts`` counts the first request (``total_max_attempts``). Without ``endpoint_url``
    the client relies on ``mock_aws`` and refuses to be built when no mock is active, so a
    misconfigured test cannot reach AWS.
    """
    if endpoint_url is None and not moto_mock_active():
        raise RuntimeError(
            "refusing to build a client that would reach AWS: start mock_aws() / "
            "mock_sagemaker(), or pass endpoint_url of a local moto server"
        )
    config = Config(
        region_name=region_name,
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    with _SESSION_LOCK:
        client = _shared_session().client(
            service_name,
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=config,
            **DUMMY_CREDENTIALS,
        )
    if zero_backoff:
        use_zero_backoff(client, max_attempts, retry_quota=retry_quota)
    if faults is not None:
        faults.attach(client)
    return client
