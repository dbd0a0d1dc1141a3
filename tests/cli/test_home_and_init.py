"""Which commands create a home, and what ``mintaka init`` records."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_kit import cli, init_home

from mintaka import Platform
from mintaka.errors import ConfigurationError
from mintaka.store import Store


@pytest.mark.parametrize(
    "command",
    [["models", "list"], ["runs", "list", "--json"], ["audit", "verify"], ["tickets", "list"]],
)
def test_a_mistyped_home_is_an_error_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "hmoe"
    code, out, err = cli(capsys, "--home", str(typo), *command)
    assert code == 1
    said = " ".join(err.split())
    assert "no Mintaka home at" in said
    assert "(it does not exist)" in said
    assert len(err.strip().splitlines()) == 1  # one line, the path whole
    assert f"no Mintaka home at {typo} (it does not exist)" in err
    assert "mintaka init" in said
    assert "Traceback" not in out + err
    assert not typo.exists()


def test_an_empty_directory_is_not_a_home(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(capsys, "--home", str(empty), "models", "list")
    assert code == 1
    assert "holds neither config.toml nor store.db" in " ".join(err.split())
    assert list(empty.iterdir()) == []


def test_a_home_made_by_init_or_the_demo_store_opens(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = init_home(capsys, tmp_path / "h")
    assert cli(capsys, "--home", str(home), "models", "list", "--json")[0] == 0
    (home / "config.toml").unlink()  # a home made through the Python API has only its store
    code, out, err = cli(capsys, "--home", str(home), "models", "list", "--json")
    assert (code, out.strip()) == (0, "[]"), err


def test_init_twice_changes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = init_home(capsys, tmp_path / "h")
    config = (home / "config.toml").read_bytes()
    code, out, _ = cli(capsys, "--home", str(home), "init")
    assert code == 0
    assert "already initialised" in " ".join(out.split())
    assert (home / "config.toml").read_bytes() == config
    code, out, _ = cli(capsys, "--home", str(home), "init", "--backend", "local")
    assert code == 0
    assert "already initialised" in " ".join(out.split())


def test_init_refuses_to_switch_the_backend_unless_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(home), "init", "--backend", "sagemaker")
    assert code == 1
    said = " ".join(err.split())
    assert "initialised with backend 'local'" in said
    assert "--switch-backend" in said
    assert (home / "config.toml").read_text() == 'backend = "local"\n'

    code, _, err = cli(capsys, "--home", str(home), "--as", "ann", "init", "--backend", "sagemaker")
    said = " ".join(err.split())
    assert f"`mintaka --home {home} --as ann init --backend sagemaker --switch-backend`" in said

    # A home recorded for another backend is pointed back at the local one only when asked.
    (home / "config.toml").write_text('backend = "sagemaker"\n')
    code, _, err = cli(capsys, "--home", str(home), "init", "--backend", "local")
    assert code == 1
    assert "initialised with backend 'sagemaker'" in " ".join(err.split())
    assert (home / "config.toml").read_text() == 'backend = "sagemaker"\n'
    code, out, err = cli(
        capsys, "--home", str(home), "init", "--backend", "local", "--switch-backend"
    )
    assert code == 0, err
    assert "switched from sagemaker" in " ".join(out.split())
    assert (home / "config.toml").read_text() == 'backend = "local"\n'
    with Platform(home) as plat:
        [event] = [e for e in plat.audit.events() if e.action == "home.backend.switch"]
        assert (event.backend, event.details["previous"]) == ("local", "sagemaker")


@pytest.mark.parametrize("failing", ["identity", "audit"])
def test_a_backend_switch_that_cannot_be_audited_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    from mintaka.errors import BackendError

    home = init_home(capsys, tmp_path / "h")
    (home / "config.toml").write_text('backend = "sagemaker"\n')

    def fail(*args: object, **kwargs: object) -> None:
        raise BackendError("the caller cannot be established", "local")

    if failing == "identity":
        monkeypatch.setattr("mintaka.platform.resolve_identity", fail)
    else:
        monkeypatch.setattr(Platform, "record_backend_switch", fail)
    code, _, err = cli(
        capsys, "--home", str(home), "init", "--backend", "local", "--switch-backend"
    )
    assert code == 1
    assert "the caller cannot be established" in err
    assert (home / "config.toml").read_text() == 'backend = "sagemaker"\n'


def test_init_writes_no_environment_override(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('store_url = "sqlite:///kept.db"\n')
    monkeypatch.setenv("MINTAKA_STORE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("MINTAKA_BACKEND", "local")
    code, _, err = cli(capsys, "--home", str(home), "init")
    assert code == 0, err
    assert (home / "config.toml").read_text() == (
        'backend = "local"\nstore_url = "sqlite:///kept.db"\n'
    )
    assert (tmp_path / "elsewhere.db").exists()  # the override is used, not recorded
    assert not (home / "kept.db").exists()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:x?mode=memory&uri=true",
    ],
)
def test_an_in_memory_store_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="in-memory SQLite database"):
        Store(url)


def test_an_in_memory_store_url_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTAKA_STORE_URL", "sqlite://")
    code, out, err = cli(capsys, "--home", str(tmp_path / "h"), "init")
    assert code == 1
    assert "in-memory SQLite database" in " ".join(err.split())
    assert "Traceback" not in out + err
    assert not (tmp_path / "h" / "config.toml").exists()


def test_init_records_the_backend_given_before_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    code, out, err = cli(capsys, "--home", str(home), "--backend", "sagemaker", "init")
    assert code == 0, err
    assert "backend sagemaker" in " ".join(out.split())
    assert (home / "config.toml").read_text() == 'backend = "sagemaker"\n'


def test_two_backends_given_to_init_are_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    code, _, err = cli(
        capsys, "--home", str(home), "--backend", "sagemaker", "init", "--backend", "local"
    )
    assert code == 2
    said = " ".join(err.replace("│", " ").split())
    assert "two backends given, 'sagemaker' before `init` and 'local' after it" in said
    assert not home.exists()
    # The same one twice is no contradiction.
    code, _, err = cli(
        capsys, "--home", str(home), "--backend", "local", "init", "--backend", "local"
    )
    assert code == 0, err


def test_init_records_no_backend_from_the_environment_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    monkeypatch.setenv("MINTAKA_BACKEND", "sagemaker")
    monkeypatch.setenv("MINTAKA_STORE_URL", "sqlite:///other.db")
    code, _, err = cli(capsys, "--home", str(home), "init")
    assert code == 0, err
    assert (home / "config.toml").read_text() == 'backend = "local"\n'
    said = " ".join(err.split())
    assert "MINTAKA_BACKEND=sagemaker is set" in said
    assert "other commands use that backend, not local" in said
    assert f"this home's store is sqlite:///{home / 'other.db'} while it is" in said
    monkeypatch.delenv("MINTAKA_STORE_URL")
    monkeypatch.setenv("MINTAKA_BACKEND", "local")
    code, _, err = cli(capsys, "--home", str(home), "init")
    assert (code, err) == (0, "")


def test_init_without_config_takes_the_backend_its_store_was_used_with(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    with Platform(home, backend="sagemaker", actor="ana") as plat:  # made by the Python API
        plat.record_backend_switch("local")  # its newest event names the backend, no cloud call
    assert not (home / "config.toml").exists()
    code, _, err = cli(capsys, "--home", str(home), "init", "--backend", "local")
    assert code == 1
    said = " ".join(err.split())
    assert f"the store of {home} was last used with backend 'sagemaker'" in said
    assert "--switch-backend" in said
    assert not (home / "config.toml").exists()

    code, out, err = cli(capsys, "--home", str(home), "init")
    assert code == 0, err
    assert "backend sagemaker" in " ".join(out.split())
    assert (home / "config.toml").read_text() == 'backend = "sagemaker"\n'
    with Platform(home) as plat:
        assert len([e for e in plat.audit.events() if e.action == "home.backend.switch"]) == 1

    (home / "config.toml").unlink()
    code, out, err = cli(
        capsys, "--home", str(home), "init", "--backend", "local", "--switch-backend"
    )
    assert code == 0, err
    assert "switched from sagemaker" in " ".join(out.split())
    with Platform(home) as plat:
        *_, event = [e for e in plat.audit.events() if e.action == "home.backend.switch"]
        assert (event.backend, event.details["previous"]) == ("local", "sagemaker")


def test_the_demo_refuses_a_home_set_up_for_another_backend(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('backend = "sagemaker"\n')
    code, out, err = cli(capsys, "--home", str(home), "demo")
    assert code == 1
    said = " ".join(err.split())
    assert "sets backend 'sagemaker'; the demo runs on the local backend only" in said
    assert "Traceback" not in out + err
    assert sorted(p.name for p in home.iterdir()) == ["config.toml"]
