"""Pointing the real ``databricks-sdk`` at the fake: a no-wait clock, a clean environment, a client.

The SDK retries 429 and 503 (honouring ``Retry-After``) and connection errors until
``retry_timeout_seconds`` have passed, sleeping through ``Config(clock=...)`` between attempts.
:class:`NoWaitClock` advances a virtual time instead of sleeping, so retries cost nothing and the
retry deadline still ends a retry storm. The SDK is imported only when a client is built.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.clock import Clock

    from .server import FakeDatabricks

_STRAY_PREFIXES = ("DATABRICKS_", "ARM_")
_LOCAL_HOSTS = "127.0.0.1,localhost"


class NoWaitClock:
    """A ``databricks.sdk.clock.Clock`` whose ``sleep`` advances a virtual time at once.

    ``sleeps`` records every requested sleep, so a test can check that the SDK honoured
    ``Retry-After``; ``time()`` is the real time at creation plus everything slept since.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    @property
    def slept(self) -> float:
        with self._lock:
            return sum(self.sleeps)


@contextmanager
def isolated_environment(home: Path | None = None) -> Iterator[Path]:
    """Hide the developer's Databricks settings while the block runs.

    Removes every ``DATABRICKS_*`` and ``ARM_*`` variable (``DATABRICKS_CONFIG_PROFILE``
    included), points ``HOME`` and ``DATABRICKS_CONFIG_FILE`` at an empty directory so no
    ``~/.databrickscfg`` profile is read, and exempts 127.0.0.1 from any HTTP proxy. Everything
    it changed is restored afterwards. Not thread-safe (it edits ``os.environ``): in pytest
    prefer the ``databricks_environment`` fixture, which uses ``monkeypatch``.
    """
    scratch = None
    if home is None:
        scratch = tempfile.TemporaryDirectory(prefix="fake-databricks-home-")
        home = Path(scratch.name)
    changes = environment_changes(home)
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if scratch is not None:
            scratch.cleanup()


def environment_changes(home: Path) -> dict[str, str | None]:
    """The variables to set (or, with ``None``, remove) so the SDK sees only what it is given."""
    changes: dict[str, str | None] = {
        name: None for name in os.environ if name.upper().startswith(_STRAY_PREFIXES)
    }
    changes["HOME"] = str(home)
    changes["USERPROFILE"] = str(home)
    changes["DATABRICKS_CONFIG_FILE"] = str(home / ".databrickscfg")
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name)
        changes[name] = f"{_LOCAL_HOSTS},{current}" if current else _LOCAL_HOSTS
    return changes


def workspace_client(
    fake: FakeDatabricks,
    *,
    clock: Any = None,
    retry_timeout_seconds: int = 10,
    http_timeout_seconds: float = 5.0,
    **config: Any,
) -> WorkspaceClient:
    """A real ``WorkspaceClient`` for ``fake``: PAT auth, short timeouts, a :class:`NoWaitClock`.

    Build it inside :func:`isolated_environment` (or the pytest fixtures), since ``Config()``
    reads environment variables and ``~/.databrickscfg`` when it is created. ``config`` passes
    further ``Config`` attributes through.
    """
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config

    settings = Config(
        host=fake.host,
        token=fake.token,
        auth_type="pat",
        retry_timeout_seconds=retry_timeout_seconds,
        http_timeout_seconds=http_timeout_seconds,
        clock=cast("Clock", clock if clock is not None else NoWaitClock()),
        **config,
    )
    return WorkspaceClient(config=settings)


@contextmanager
def fake_workspace_client(fake: FakeDatabricks, **options: Any) -> Iterator[WorkspaceClient]:
    """:func:`workspace_client` inside :func:`isolated_environment`, for scripts and notebooks."""
    with isolated_environment():
        yield workspace_client(fake, **options)
