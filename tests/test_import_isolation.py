from __future__ import annotations

import json
import subprocess
import sys

CLOUD_SDKS = ("boto3", "botocore", "sagemaker", "databricks", "google.cloud", "azure", "moto")


def _modules_after(statement: str) -> list[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def _cloud_modules(loaded: list[str]) -> list[str]:
    return [m for m in loaded if any(m == s or m.startswith(s + ".") for s in CLOUD_SDKS)]


def test_import_mintaka_imports_no_cloud_sdk() -> None:
    loaded = _modules_after("import mintaka")
    assert _cloud_modules(loaded) == []


def test_listing_backends_imports_no_cloud_sdk() -> None:
    loaded = _modules_after(
        "from mintaka.plugins import PluginManager\nlist(PluginManager().backends())"
    )
    assert _cloud_modules(loaded) == []


def test_the_cli_starts_without_the_numeric_stack() -> None:
    """numpy, pandas and scikit-learn load when a model is served or monitored, not for every
    command (they cost a few hundred milliseconds at start-up)."""
    loaded = _modules_after("import mintaka.cli.app")
    heavy = ("numpy", "pandas", "sklearn", "scipy", "pyarrow")
    assert [m for m in loaded if m.split(".")[0] in heavy] == []


def test_monitoring_names_import_from_the_package() -> None:
    loaded = _modules_after("from mintaka.monitoring import psi, DriftReport, parse_window")
    assert "numpy" in loaded
