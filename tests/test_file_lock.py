"""``file_lock``: the one lock on a file that the claim, the checked-copy and the counter locks
and the artifact store's per-digest lock are taken with."""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
from unprivileged import as_a_user

from mintaka.errors import MintakaError, NotALockFile
from mintaka.files import file_lock


def test_an_exclusive_lock_keeps_every_other_holder_out_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "entry.lock"
    with file_lock(path) as held:
        assert held
        with file_lock(path, wait=False) as other:
            assert not other
        with file_lock(path, shared=True, wait=False) as reader:
            assert not reader
    with file_lock(path, wait=False) as after:
        assert after


def test_shared_holders_keep_out_an_exclusive_one_but_not_each_other(tmp_path: Path) -> None:
    path = tmp_path / "copy.held"
    with file_lock(path, shared=True) as one, file_lock(path, shared=True, wait=False) as two:
        assert one
        assert two
        with file_lock(path, wait=False) as writer:
            assert not writer


def test_a_waiting_holder_gets_the_lock_once_the_other_lets_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "endpoint.lock"
    flock = fcntl.flock
    waiting = threading.Event()
    order: list[str] = []

    def flock_announced(descriptor: int, operation: int) -> None:
        if threading.current_thread() is second:
            assert operation == fcntl.LOCK_EX  # waits: no LOCK_NB
            waiting.set()
        flock(descriptor, operation)

    def take() -> None:
        with file_lock(path) as held:
            order.append(f"second {held}")

    second = threading.Thread(target=take)
    monkeypatch.setattr(fcntl, "flock", flock_announced)
    with file_lock(path):
        second.start()
        assert waiting.wait(timeout=5)
        order.append("first lets go")
    second.join(timeout=5)
    assert order == ["first lets go", "second True"]


def test_the_lock_ends_with_an_error_in_the_block(tmp_path: Path) -> None:
    path = tmp_path / "entry.lock"
    with pytest.raises(RuntimeError, match="failed"), file_lock(path):
        raise RuntimeError("failed")
    with file_lock(path, wait=False) as held:
        assert held


def test_a_missing_lock_file_and_its_directory_are_created_with_the_mode_asked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locks" / "deeper" / "entry.lock"
    previous = os.umask(0o022)
    try:
        with file_lock(path, mode=0o644):
            pass
        with file_lock(tmp_path / "private.lock"):
            pass
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.lock").stat().st_mode) == 0o600


def test_without_create_a_missing_lock_file_is_not_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), file_lock(tmp_path / "gone.lock", create=False):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize("what", ["link", "dangling link", "named pipe", "socket", "directory"])
def test_what_is_not_a_plain_file_is_refused_never_followed_nor_waited_on(
    tmp_path: Path, what: str, create: bool
) -> None:
    path = tmp_path / "entry.lock"
    target = tmp_path / "elsewhere"
    if what == "link":
        target.write_bytes(b"")
        path.symlink_to(target)
    elif what == "dangling link":
        path.symlink_to(target)
    elif what == "named pipe":
        os.mkfifo(path)
    elif what == "socket":
        listening = socket.socket(socket.AF_UNIX)
        listening.bind(str(path))
        listening.close()  # the socket file stays
    else:
        path.mkdir()
    outcome: list[BaseException] = []

    def take() -> None:
        try:
            with file_lock(path, create=create):
                pass
        except BaseException as exc:  # collected: the test says which
            outcome.append(exc)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()  # a named pipe with no writer is not waited on
    [error] = outcome
    assert isinstance(error, NotALockFile)
    assert isinstance(error, MintakaError)
    assert isinstance(error, OSError)
    assert str(path) in str(error)
    if what == "dangling link":
        assert not target.exists()  # nothing created through the link
    if what == "link":
        with file_lock(target, wait=False) as held:
            assert held  # no lock was taken on the link's target


def test_the_lock_descriptor_is_closed_in_a_program_a_child_executes(tmp_path: Path) -> None:
    path = tmp_path / "entry.lock"
    with file_lock(path):
        [descriptor] = [
            int(fd)
            for fd in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve())
        ]
        assert fcntl.fcntl(descriptor, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def _access_of_the_lock_descriptor(path: Path) -> int:
    [descriptor] = [
        int(fd)
        for fd in os.listdir("/proc/self/fd")
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve())
    ]
    return fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE


def test_an_exclusive_lock_holds_its_file_open_for_writing_a_shared_one_read_only(
    tmp_path: Path,
) -> None:
    """Where ``flock`` is emulated with ``fcntl`` locks (NFS, CIFS), an exclusive lock needs
    the file open for writing: a whole-file write lock is taken on the same descriptor."""
    path = tmp_path / "entry.lock"
    with file_lock(path):
        assert _access_of_the_lock_descriptor(path) == os.O_RDWR
    with file_lock(path, shared=True):
        assert _access_of_the_lock_descriptor(path) == os.O_RDONLY


def test_an_exclusive_lock_on_a_file_this_process_may_not_write_is_still_taken(
    tmp_path: Path,
) -> None:
    path = tmp_path / "entry.lock"
    path.write_bytes(b"")
    os.chmod(path, 0o444)  # another user's lock file, say, readable by all

    def lock_it() -> tuple[bool, int]:
        with file_lock(path) as held:
            return held, _access_of_the_lock_descriptor(path)

    assert as_a_user(lock_it) == (True, os.O_RDONLY)


def test_a_child_forked_while_the_lock_is_held_holds_it_past_the_block_until_it_exits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "entry.lock"
    reading, writing = os.pipe()
    with file_lock(path):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child waits for the parent's word, then exits
            os.close(writing)
            os.read(reading, 1)
            os._exit(0)
    os.close(reading)
    try:
        with file_lock(path, wait=False) as held:
            assert not held  # the forked child shares the lock
    finally:
        os.close(writing)  # the child's read returns: it exits
        os.waitpid(child, 0)
    with file_lock(path, wait=False) as held:
        assert held
