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

import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

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


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML also escapes."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    """``value`` as TOML: a string, number or boolean, or an array or inline table of them
    (settings such as a backend's alarm names or name maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        pairs = (f"{_toml_string(key)} = {_toml_value(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise ConfigurationError(
        f"cannot write {value!r} to config.toml: use a string, a number, a boolean, or an "
        "array or table of them"
    )


def write_config(config: MintakaConfig) -> Path:
    """Write the non-default parts of ``config`` to ``<home>/config.toml``, replacing the file
    atomically: a write that fails (a full disk) leaves the previous one as it was."""
    lines = [f"backend = {_toml_string(config.backend)}"]
    if config.store_url is not None:
        lines.append(f"store_url = {_toml_string(config.store_url)}")
    if config.backend_settings:
        lines.append("\n[backend_settings]")
        for key, value in config.backend_settings.items():
            lines.append(f"{_toml_string(key)} = {_toml_value(value)}")
    path = config.home / CONFIG_FILE
    try:
        data = ("\n".join(lines) + "\n").encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, which TOML cannot hold either
        shown = exc.object[exc.start : exc.end]
        raise ConfigurationError(f"cannot write {shown!r} to config.toml: {exc.reason}") from exc
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
