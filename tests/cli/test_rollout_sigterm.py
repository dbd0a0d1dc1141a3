"""`mintaka rollout` stopped by SIGTERM, as a process manager stops it: like Ctrl-C, the traffic
the rollout started from is put back and recorded."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli, init_home

from mintaka import Platform

STOPPED_REASON = "rollout stopped by RolloutTerminated: SIGTERM"


def _two_routes(capsys: pytest.CaptureFixture[str], home: Path, make: MakeArtifact) -> list[str]:
    """A home whose endpoint ``api`` serves m:1 on ``blue`` and has m:2 on ``green``, idle; the
    CLI's leading options for it."""
    h = ["--home", str(init_home(capsys, home)), "--as", "ops"]
    for content in (b"v1", b"v2"):
        args = ("models", "register", "m", "--artifact", str(make(content)), "--flavor", "pyfunc")
        assert cli(capsys, *h, *args)[0] == 0
    assert cli(capsys, *h, "endpoints", "create", "api", "m:1", "--route", "blue")[0] == 0
    assert cli(capsys, *h, "endpoints", "deploy", "api", "m:2", "--route", "green")[0] == 0
    return h


def _assert_restored(home: Path) -> None:
    with Platform(home) as plat:
        assert plat.serving.get_endpoint("api").traffic.weights == {"blue": 100, "green": 0}
        history = plat.serving.deployment_history("api")
        assert [d.reason for d in history[-2:]] == ["rollout step 1/3", STOPPED_REASON]
        assert history[-1].known_good
        rollbacks = [e for e in plat.audit.events() if e.action == "endpoint.rollback"]
        assert [e.actor for e in rollbacks] == ["ops"]


def test_sigterm_mid_bake_restores_the_starting_traffic_and_exits_143(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make_servable: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _two_routes(capsys, tmp_path / "home", make_servable)
    outside: list[int] = []

    def handler_outside_the_rollout(signum: int, _frame: FrameType | None) -> None:
        outside.append(signum)

    sleep = time.sleep

    def terminated_while_baking(seconds: float) -> None:
        if seconds != 30:  # not the bake
            sleep(seconds)
            return
        signal.raise_signal(signal.SIGTERM)  # what a service manager sends
        raise AssertionError("SIGTERM did not stop the bake")

    before = signal.signal(signal.SIGTERM, handler_outside_the_rollout)
    try:
        monkeypatch.setattr(time, "sleep", terminated_while_baking)
        code, _, err = cli(capsys, *h, "rollout", "api", "--to", "green", "--bake", "30")
        monkeypatch.undo()
        assert signal.getsignal(signal.SIGTERM) is handler_outside_the_rollout
    finally:
        signal.signal(signal.SIGTERM, before)
    assert outside == []  # the rollout's own handler took it
    assert code == 143, err
    assert "rollout stopped by SIGTERM; traffic now {'blue': 100, 'green': 0}" in err
    assert "Traceback" not in err
    _assert_restored(tmp_path / "home")


def test_a_second_sigterm_does_not_interrupt_the_restore_the_first_set_off() -> None:
    from mintaka.cli.serving import RolloutTerminated, _sigterm_stops_rollout

    restored = []

    def terminated_twice() -> None:
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:  # the restore the first one set off
            signal.raise_signal(signal.SIGTERM)  # ignored: the first one is being handled
            restored.append(True)

    before = signal.getsignal(signal.SIGTERM)
    with _sigterm_stops_rollout(), pytest.raises(RolloutTerminated):
        terminated_twice()
    assert restored == [True]
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_while_the_final_step_is_marked_restores_the_starting_traffic(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make_servable: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The final step verified, SIGTERM lands while it is marked known-good: the rollout stops
    as anywhere else, instead of leaving the endpoint in the middle of a rollout."""
    from mintaka.serving.ops import ServingService

    h = _two_routes(capsys, tmp_path / "home", make_servable)
    marks: list[str | None] = []
    mark = ServingService.mark_known_good

    def terminated_while_marking(
        self: ServingService, endpoint: str, *, expected: str | None = None
    ) -> object:
        marks.append(expected)
        if len(marks) == 2:  # the final mark, after the last step was verified
            signal.raise_signal(signal.SIGTERM)
        return mark(self, endpoint, expected=expected)

    monkeypatch.setattr(ServingService, "mark_known_good", terminated_while_marking)
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    code, _, err = cli(
        capsys, *h, "rollout", "api", "--to", "green", "--bake", "30", "--min-requests", "0"
    )
    monkeypatch.undo()
    assert len(marks) == 2
    assert code == 143, err
    assert "rollout stopped by SIGTERM; traffic now {'blue': 100, 'green': 0}" in err
    with Platform(tmp_path / "home") as plat:
        assert plat.serving.get_endpoint("api").traffic.weights == {"blue": 100, "green": 0}
        history = plat.serving.deployment_history("api")
        assert [d.reason for d in history[-2:]] == ["rollout step 3/3", STOPPED_REASON]
        assert history[-1].known_good


def test_sigterm_during_the_restore_ctrl_c_set_off_does_not_abandon_it(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make_servable: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mintaka.serving.ops import ServingService

    h = _two_routes(capsys, tmp_path / "home", make_servable)
    set_traffic = ServingService._set_traffic

    def terminated_while_restoring(
        self: ServingService, endpoint: str, weights: dict[str, int], **options: object
    ) -> object:
        if options.get("action") == "endpoint.rollback":
            signal.raise_signal(signal.SIGTERM)
        return set_traffic(self, endpoint, weights, **options)  # type: ignore[arg-type]

    sleep = time.sleep

    def interrupted_while_baking(seconds: float) -> None:
        if seconds != 30:  # not the bake
            sleep(seconds)
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(ServingService, "_set_traffic", terminated_while_restoring)
    monkeypatch.setattr(time, "sleep", interrupted_while_baking)
    code, _, err = cli(capsys, *h, "rollout", "api", "--to", "green", "--bake", "30")
    monkeypatch.undo()
    assert code == 143, err  # the SIGTERM, once the restore has ended
    assert "rollout stopped by SIGTERM; traffic now {'blue': 100, 'green': 0}" in err
    with Platform(tmp_path / "home") as plat:
        assert plat.serving.get_endpoint("api").traffic.weights == {"blue": 100, "green": 0}
        history = plat.serving.deployment_history("api")
        assert [d.reason for d in history[-2:]] == [
            "rollout step 1/3",
            "rollout stopped by KeyboardInterrupt",
        ]


def _cleanup_lines() -> int:
    """How many lines ``_sigterm_stops_rollout`` runs once the rollout in it has ended."""
    from mintaka.cli.serving import _sigterm_stops_rollout

    counted: list[int] = []
    code = _sigterm_stops_rollout.__wrapped__.__code__

    def tracer(frame: FrameType, event: str, _arg: object) -> object:
        if frame.f_code is not code:
            return None
        counted.append(0)  # a call: the start, then the resumption after the yield

        def local(frame: FrameType, event: str, _arg: object) -> object:
            if event == "line" and len(counted) > 1:
                counted[-1] += 1
            return local

        return local

    sys.settrace(tracer)
    try:
        with _sigterm_stops_rollout():
            pass
    finally:
        sys.settrace(None)
    return counted[-1]


def test_a_sigterm_as_the_rollout_ends_leaves_the_handler_found_before() -> None:
    """Wherever a SIGTERM lands once the rollout has ended, the handler found before is put
    back; the SIGTERM either stops the command (RolloutTerminated) or reaches that handler."""
    lines = _cleanup_lines()
    assert lines >= 1
    for line in range(lines):
        _sigterm_at_cleanup_line(line)


def _sigterm_at_cleanup_line(line: int) -> None:
    from mintaka.cli.serving import RolloutTerminated, _sigterm_stops_rollout

    code = _sigterm_stops_rollout.__wrapped__.__code__
    outside: list[int] = []

    def handler_outside_the_rollout(signum: int, _frame: FrameType | None) -> None:
        outside.append(signum)

    calls: list[int] = []

    def tracer(frame: FrameType, event: str, _arg: object) -> object:
        if frame.f_code is not code:
            return None
        calls.append(0)
        seen = iter(range(1_000))

        def local(frame: FrameType, event: str, _arg: object) -> object:
            if event == "line" and len(calls) > 1 and next(seen) == line:
                sys.settrace(None)
                signal.raise_signal(signal.SIGTERM)
            return local

        return local

    before = signal.signal(signal.SIGTERM, handler_outside_the_rollout)
    stopped = False
    try:
        sys.settrace(tracer)
        try:
            with _sigterm_stops_rollout():
                pass  # the rollout ended
        except RolloutTerminated:
            stopped = True
        finally:
            sys.settrace(None)
        assert signal.getsignal(signal.SIGTERM) is handler_outside_the_rollout, line
        assert stopped != (outside == [signal.SIGTERM]), (line, stopped, outside)
        signal.raise_signal(signal.SIGTERM)  # a later one, outside any rollout
        assert outside[-1:] == [signal.SIGTERM], line
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_sigterm_another_thread_takes_while_the_rollout_holds_it_waits_for_the_hold() -> None:
    """The rollout holds SIGTERM back in its thread, but another thread of the process takes
    it (the handler runs all the same): it is raised once the hold ends, not inside it."""
    from mintaka.cli.serving import RolloutTerminated, _sigterm_stops_rollout
    from mintaka.rollout.controller import signals_held

    finished = []

    def held_while_another_thread_takes_it() -> None:
        terminate = signal.getsignal(signal.SIGTERM)
        assert callable(terminate)
        with signals_held():
            terminate(signal.SIGTERM, None)  # as its C-level handler in another thread sets off
            finished.append(True)

    with _sigterm_stops_rollout(), pytest.raises(RolloutTerminated):
        held_while_another_thread_takes_it()
    assert finished == [True]
