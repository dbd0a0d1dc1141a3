"""A stage put back on SageMaker, which reports a version in the NONE stage as having no stage
(``mintaka_stage`` removed from the package): what it shows is compared as NONE."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sagemaker_testkit import sagemaker_platform

from mintaka import Conflict, Platform
from mintaka.domain.registry import Stage


def test_a_stage_put_back_leaves_a_change_recorded_after_its_read_alone(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The put-back reads the backend's stage as NONE, as the store records it by then, so it
    writes nothing: a move to production that another process makes and records right after
    is left as it is."""
    art = tmp_path / "art"
    art.mkdir()
    (art / "model.bin").write_bytes(b"one")
    platform.register_model("churn", art)
    with sagemaker_platform(tmp_path / "home", seed=9, actor="bob") as other:
        real_set_stage = platform.backend.set_stage
        first = [lambda: other.set_stage("churn", 1, "production")]

        def set_stage(*args: Any) -> None:
            real_set_stage(*args)
            if first:
                first.pop()()

        monkeypatch.setattr(platform.backend, "set_stage", set_stage)
        refuse = platform._refuse_changed_meanwhile
        real_existing = platform._existing_version

        def then_production(*args: Any) -> Any:  # the put-back's read of the store
            read = real_existing(*args)
            monkeypatch.setattr(platform, "_existing_version", real_existing)
            other.set_stage("churn", 1, "production")
            return read

        def later(message: str, put_back: Callable[[], None]) -> None:
            other.set_stage("churn", 1, "none")  # recorded before this put-back reads
            monkeypatch.setattr(platform, "_existing_version", then_production)
            refuse(message, put_back)

        monkeypatch.setattr(platform, "_refuse_changed_meanwhile", later)
        with pytest.raises(Conflict, match="churn:1 was moved to production meanwhile"):
            platform.set_stage("churn", 1, "staging")
        assert other.get_model_version("churn", 1).stage is Stage.PRODUCTION
        assert platform.backend.get_version("churn", 1).stage is Stage.PRODUCTION
        assert platform.sync() == []
