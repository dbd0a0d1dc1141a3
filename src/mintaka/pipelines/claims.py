"""Claim files: a file naming the process that holds something (a retraining request, a run being
resumed), taken so that two processes never hold it at once.

A claim is written aside and linked into place, which fails when the claim exists, so it is never
read half-written. A claim whose process has gone is taken over under an exclusive lock of its
own: of two processes that find the same stale claim, one replaces it, and the other finds the
lock held or the claim live and leaves it. The lock ends with the process holding it, so a
process that dies while taking a claim over leaves nothing that holds the next one off.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import ValidationError as PydanticValidationError

from mintaka.files import file_lock, write_atomic
from mintaka.processes import ProcessId, running, this_process


def claim(path: Path) -> bool:
    """Take the claim ``path`` for this process: False while another live process holds it, or
    is taking it over at this moment."""
    mine = this_process()
    return _create(path, mine) or _take_over(path, mine)


def release(path: Path) -> None:
    path.unlink(missing_ok=True)


def holder(path: Path) -> ProcessId | None:
    """The process named by the claim ``path``; None when it is unreadable (a claim written by
    an older Mintaka whose process died before writing it). Raises FileNotFoundError when
    nobody holds it."""
    try:
        return ProcessId.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, PydanticValidationError):
        return None


def _create(path: Path, mine: ProcessId) -> bool:
    """Create the claim whole, unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_name(f".{path.name}.{secrets.token_hex(8)}.new")
    written.write_text(mine.model_dump_json())
    try:
        os.link(written, path)
    except FileExistsError:
        return False
    finally:
        written.unlink()
    return True


def _take_over(path: Path, mine: ProcessId) -> bool:
    """Replace the claim if its process has gone, one process at a time."""
    with file_lock(path.with_name(f"{path.name}.lock"), wait=False, mode=0o644) as held:
        if not held:
            return False  # another process is taking it over: it is theirs, or still the holder's
        try:
            current = holder(path)
        except FileNotFoundError:  # released since: free to take
            return _create(path, mine)
        if current is not None and running(current):
            return False
        write_atomic(path, mine.model_dump_json())
        return True
