"""Whether a process recorded earlier still runs.

A process is recorded by its pid and, where the system tells it (``/proc`` on Linux), the time it
started, so that a later process given the same pid is not taken for it. Without ``/proc`` the pid
is all there is, and a reused pid reads as the recorded process still running. A process recorded
on another machine (a home on shared storage) always reads as running: nothing here can tell.
A child process can be made to end with the process that started it where the system can say so
(Linux's parent-death signal).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from mintaka.domain.base import Record

HAS_PROC = Path("/proc/self/stat").is_file()


class ProcessId(Record):
    """A process: its pid and, where known, its start marker and the machine it runs on."""

    pid: int
    start: str | None = None
    host: str | None = None


def _stat(pid: int) -> tuple[str, str] | None:
    """The state and start time of process ``pid`` from /proc; None when it has no entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], fields[19]


def start_marker(pid: int) -> str | None:
    """What tells this process apart from a later one given the same pid (where /proc says)."""
    found = _stat(pid)
    return found[1] if found else None


def this_process() -> ProcessId:
    pid = os.getpid()
    return ProcessId(pid=pid, start=start_marker(pid), host=socket.gethostname())


def running(process: ProcessId) -> bool:
    """Whether ``process`` still runs: not gone, not a zombie, not another process on its pid."""
    if process.host is not None and process.host != socket.gethostname():
        return True  # another machine's process: it cannot be looked at from here
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds the pid now
        return False
    if not HAS_PROC:
        return True  # the pid is all this system tells
    found = _stat(process.pid)
    if found is None:
        return False
    state, start = found
    return state != "Z" and (process.start is None or start == process.start)


def held_by_another(process: ProcessId) -> bool:
    """Whether the pid of ``process`` now belongs to a later process (where /proc says)."""
    found = _stat(process.pid)
    return found is not None and process.start is not None and found[1] != process.start


_PR_SET_PDEATHSIG = 1


def ending_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a child process that makes it receive SIGKILL when this process ends,
    however it ends (killed outright included), so that no child outlives it: Linux's
    ``PR_SET_PDEATHSIG``. None where the system has no such thing (the child then outlives a
    process killed outright, as any child does). Linux sends the signal when the thread that
    started the child ends: start it from a thread that lasts as long as the process."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def end_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent ended before the request took hold
            os.kill(os.getpid(), signal.SIGKILL)

    return end_with_parent
