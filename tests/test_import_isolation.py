from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


STORE_AND_RECORDS = ("sqlalchemy", "pydantic", "mintaka.domain", "mintaka.platform")


def _loaded(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize("module", ["mintaka", "mintaka.errors", "mintaka.capabilities"])
def test_the_package_and_its_errors_import_without_the_store_or_the_records(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    assert _loaded(loaded, STORE_AND_RECORDS) == []


def test_every_public_name_resolves_to_its_definition() -> None:
    import mintaka
    from mintaka.domain import ModelVersion
    from mintaka.platform import Platform

    for name in mintaka.__all__:
        assert getattr(mintaka, name) is not None, name
    assert mintaka.Platform is Platform
    assert mintaka.ModelVersion is ModelVersion


def test_dir_lists_the_names_not_imported_yet() -> None:
    loaded = _modules_after("import mintaka\nassert set(mintaka.__all__) <= set(dir(mintaka))")
    assert "mintaka.platform" not in loaded


def test_no_public_name_is_also_a_module_of_the_package() -> None:
    """Importing ``mintaka.X`` sets the package's ``X`` to that module, which would hide a lazily
    imported name ``X``: the package's ``__getattr__`` is asked only for missing names."""
    import pkgutil

    import mintaka

    modules = {found.name for found in pkgutil.iter_modules(mintaka.__path__)}
    assert modules.isdisjoint(mintaka.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import mintaka

    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        _ = mintaka.Nonexistent  # type: ignore[attr-defined]


def test_star_import_gives_the_lazily_imported_names() -> None:
    namespace: dict[str, object] = {}
    exec("from mintaka import *", namespace)
    assert {"Platform", "ModelVersion", "hookimpl", "Capability"} <= set(namespace)


def _run_cli(*args: str) -> str:
    return (
        "from mintaka.cli.app import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass"
    )


def test_help_imports_neither_the_store_nor_the_records() -> None:
    """``mintaka --help`` is read often; it must not pay for SQLAlchemy, pydantic or the domain."""
    loaded = _modules_after(_run_cli("--help"))
    assert _loaded(loaded, (*STORE_AND_RECORDS, "cryptography")) == []


def test_the_help_of_every_group_imports_no_store() -> None:
    """A group's help parses the global options, which Typer coerces with pydantic; SQLAlchemy
    and the Mintaka records still stay out."""
    statement = (
        "from mintaka.cli.app import _command, main\n"
        "for name, group in _command().commands.items():\n"
        "    if hasattr(group, 'commands'):\n"
        "        main([name, '--help'])\n"
    )
    loaded = _modules_after(statement)
    assert "typer.rich_utils" in loaded  # the help was rendered
    heavy = ("sqlalchemy", "mintaka.domain", "mintaka.platform", "cryptography")
    assert _loaded(loaded, heavy) == []


def test_a_command_loads_only_what_it_uses(tmp_path: Path) -> None:
    """Listing models opens the store, but signs nothing and renders no Markdown."""
    home = str(tmp_path / "home")
    _modules_after(_run_cli("--home", home, "init"))
    loaded = _modules_after(_run_cli("--home", home, "models", "list"))
    assert "sqlalchemy" in loaded
    unused = ("cryptography", "rich.markdown", "pygments", "typer.rich_utils")
    assert _loaded(loaded, unused) == []


NUMERIC = ("numpy", "pandas", "sklearn", "scipy", "pyarrow")


@pytest.mark.parametrize("command", [("tickets", "list"), ("monitor", "list")])
def test_listing_tickets_or_monitors_loads_no_numeric_stack(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The monitoring service and its tickets need the store, not the drift maths."""
    home = str(tmp_path / "home")
    _modules_after(_run_cli("--home", home, "init"))
    loaded = _modules_after(_run_cli("--home", home, *command))
    assert "mintaka.monitoring.service" in loaded
    assert _loaded(loaded, NUMERIC) == []


def test_no_lazy_monitoring_name_is_also_a_module_of_the_package() -> None:
    """As for ``mintaka``: a lazily imported name that is also a submodule would be hidden by the
    submodule once anything imported it (the package imports ``windows`` at once for this)."""
    import pkgutil

    import mintaka.monitoring

    modules = {found.name for found in pkgutil.iter_modules(mintaka.monitoring.__path__)}
    lazy = {name for names in mintaka.monitoring._LAZY_FROM.values() for name in names}
    assert lazy <= set(mintaka.monitoring.__all__)
    assert modules.isdisjoint(lazy)


def test_monitoring_names_are_the_functions_after_their_modules_load() -> None:
    statement = (
        "import mintaka.monitoring.statistics, mintaka.monitoring.windows\n"
        "import mintaka.monitoring as m\n"
        "from mintaka.monitoring.statistics import drift\n"
        "from mintaka.monitoring.windows import windows\n"
        "assert m.drift is drift and m.windows is windows\n"
        "assert all(getattr(m, name) is not None for name in m.__all__)\n"
        "assert set(m.__all__) <= set(dir(m))"
    )
    _modules_after(statement)


def test_a_sqlite_store_does_not_load_the_postgresql_dialect(tmp_path: Path) -> None:
    """SQLAlchemy's PostgreSQL dialect costs ~20 ms at start-up: a SQLite home never needs it
    (creating one runs the Alembic migrations, which load every dialect: that is once)."""
    from mintaka.platform import Platform

    Platform(tmp_path / "home").close()
    home = json.dumps(str(tmp_path / "home"))
    loaded = _modules_after(
        "from mintaka.platform import Platform\n"
        f"p = Platform({home})\np.list_models()\np.audit.verify()\np.close()"
    )
    assert "mintaka.platform" in loaded
    assert _loaded(loaded, ("sqlalchemy.dialects.postgresql",)) == []
