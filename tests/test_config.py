from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mintaka.config import CONFIG_FILE, MintakaConfig, load_config, write_config
from mintaka.errors import ConfigurationError


@pytest.mark.parametrize(
    "settings",
    [
        {"region": "us-east-1", "rollback_alarms": ["p99-latency", "5xx"]},
        {"model_names": {"churn": "ChurnModel", "a b.c": 'quoted "key"'}, "endpoint_names": {}},
        {"nested": [[1, 2], [], [{"k": True, "f": 0.5}]], "empty": []},
    ],
)
def test_backend_settings_with_arrays_and_tables_are_written_and_load_back(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    config = MintakaConfig(home=tmp_path, backend="sagemaker", backend_settings=settings)
    write_config(config)
    assert load_config(tmp_path) == config


@pytest.mark.parametrize("value", [None, float("nan"), [1, None], {"k": None}, "\udcff"])
def test_a_setting_toml_cannot_hold_is_refused_and_the_file_kept(
    tmp_path: Path, value: object
) -> None:
    (tmp_path / CONFIG_FILE).write_text('backend = "local"\n')
    config = MintakaConfig(home=tmp_path, backend="local", backend_settings={"x": value})
    with pytest.raises(ConfigurationError, match="cannot write"):
        write_config(config)
    assert (tmp_path / CONFIG_FILE).read_text() == 'backend = "local"\n'


def test_a_config_write_that_fails_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / CONFIG_FILE).write_text('backend = "local"\n')

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ConfigurationError, match="No space left on device"):
        write_config(MintakaConfig(home=tmp_path, backend="sagemaker"))
    monkeypatch.undo()
    assert (tmp_path / CONFIG_FILE).read_text() == 'backend = "local"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE]
