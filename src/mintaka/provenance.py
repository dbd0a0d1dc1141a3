"""Where a run comes from: the code commit and the package environment, read automatically."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TRACKED_PACKAGES = ("mintaka", "numpy", "scipy", "scikit-learn", "skops", "pandas")


def code_commit(path: Path | None = None) -> str | None:
    """The git commit checked out at ``path`` (``+dirty`` when there are local changes)."""
    cwd = str(path or Path.cwd())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            check=False,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if dirty.stdout.strip() else "")


@lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """Interpreter, platform and the versions of the packages that shape a model's bytes."""
    env = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
    }
    for package in TRACKED_PACKAGES:
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            continue
    return env
