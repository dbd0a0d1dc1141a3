"""Where Mintaka keeps its state and which backend it talks to.

Resolution order, later wins: built-in defaults, ``<home>/config.toml`` (written by ``mintaka
init``), environment variables (``MINTAKA_HOME``, ``MINTAKA_BACKEND``, ``MINTAKA_STORE_URL``), and
explicit arguments.

.. code-block:: toml

    backend = "local"
    # store_url = "postgresql+psycopg://mintaka@db/mintaka"

    [backend_settings]
    # settings of the chosen backend, validated by its own settings model
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from mintaka.errors import ConfigurationError, invalid_fields
from mintaka.files import write_atomic

CONFIG_FILE = "config.toml"
DEFAULT_HOME = ".mintaka"


class MintakaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path
    backend: str = "local"
    store_url: str | None = None
    backend_settings: dict[str, Any] = Field(default_factory=dict)


def resolve_home(home: str | Path | None = None) -> Path:
    return Path(home or os.environ.get("MINTAKA_HOME") or DEFAULT_HOME).absolute()


def read_config_file(root: Path) -> dict[str, Any]:
    """What ``<root>/config.toml`` holds, without the environment's overrides ({} without one)."""
    path = root / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigurationError(f"{path} is not valid UTF-8 TOML: {exc}") from exc
    if "home" in data:
        raise ConfigurationError(
            f"{path} sets 'home'; the home is where the file lives (or MINTAKA_HOME)"
        )
    return data


def load_config(
    home: str | Path | None = None,
    *,
    backend: str | None = None,
    store_url: str | None = None,
    backend_settings: dict[str, Any] | None = None,
) -> MintakaConfig:
    root = resolve_home(home)
    path = root / CONFIG_FILE
    data = read_config_file(root)
    for key, variable in (("backend", "MINTAKA_BACKEND"), ("store_url", "MINTAKA_STORE_URL")):
        if os.environ.get(variable):
            data[key] = os.environ[variable]
    if backend is not None:
        data["backend"] = backend
    if store_url is not None:
        data["store_url"] = store_url
    if backend_settings is not None:
        data["backend_settings"] = backend_settings
    try:
        return MintakaConfig(home=root, **data)
    except PydanticValidationError as exc:
        raise ConfigurationError(f"invalid configuration in {path}: {invalid_fields(exc)}") from exc


def _refuse_none(value: Any) -> None:
    """TOML has no null: a setting of ``None`` (also inside an array or table) is refused rather
    than dropped, so what is written is what loads back."""
    if value is None:
        raise ConfigurationError(
            "cannot write None to config.toml: use a string, a number, a boolean, or an array "
            "or table of them"
        )
    if isinstance(value, list | tuple):
        for item in value:
            _refuse_none(item)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_none(item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"cannot write {value!r} to config.toml: not a finite number")


def write_config(config: MintakaConfig) -> Path:
    """Write the non-default parts of ``config`` to ``<home>/config.toml``, replacing the file
    atomically: a write that fails (a full disk) leaves the previous one as it was."""
    document: dict[str, Any] = {"backend": config.backend}
    if config.store_url is not None:
        document["store_url"] = config.store_url
    if config.backend_settings:
        _refuse_none(config.backend_settings)
        document["backend_settings"] = dict(config.backend_settings)
    try:
        text = tomli_w.dumps(document)
    except TypeError as exc:
        raise ConfigurationError(f"cannot write to config.toml: {exc}") from exc
    path = config.home / CONFIG_FILE
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, which TOML cannot hold either
        shown = exc.object[exc.start : exc.end]
        raise ConfigurationError(f"cannot write {shown!r} to config.toml: {exc.reason}") from exc
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
