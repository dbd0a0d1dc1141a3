"""Telling whether a recorded process still runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mintaka.processes import ProcessId, running, start_marker, this_process


def test_this_process_runs_and_an_ended_one_does_not() -> None:
    assert running(this_process())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    recorded = ProcessId(pid=child.pid, start=start_marker(child.pid))
    child.wait()
    assert not running(recorded)


def test_a_process_on_another_machine_is_taken_as_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert running(ProcessId(pid=child.pid, host="another-machine.example"))


def test_a_later_process_on_the_same_pid_is_not_the_recorded_one() -> None:
    me = this_process()
    if me.start is None:
        pytest.skip("no /proc here: the pid is all there is")
    assert not running(me.model_copy(update={"start": "0"}))
