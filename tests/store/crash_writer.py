"""A model-registering writer for the crash-consistency test, meant to be SIGKILLed.

Started by ``test_crash_consistency.py`` as ``python crash_writer.py HOME SCRATCH``. It imports
``mintaka.platform`` once (the interpreter's start-up and that import take about a second, far
longer than the kill delays under test) and then serves rounds: for every ``go ROUND`` line on
stdin it forks a writer process, reports ``child PID``, waits for it to die and reports
``exit PID STATUS``. The forked writer opens a fresh ``Platform`` on HOME and registers model
versions in a loop until it is killed, writing ``ack NAME VERSION DIGEST ID`` to stdout after
each ``register_model`` has returned, that is after the commit. Each round also registers a
dataset and starts a run, so that versions carry lineage edges.

It imports neither the CLI nor the test suite. Run by hand (``go 1``, then Ctrl-D) to watch it.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

from mintaka.platform import Platform
from mintaka.provenance import environment

SHARED_MODELS = ("alpha", "beta")


def _say(line: str) -> None:
    """One whole line straight to the stdout pipe: no buffer for a SIGKILL to lose."""
    os.write(1, (line + "\n").encode())


def _artifact(scratch: Path, round_no: int, item: int) -> Path:
    """A new artifact of one or two files whose bytes no other round or item produces."""
    root = scratch / f"r{round_no}-i{item}"
    root.mkdir(parents=True, exist_ok=True)
    body = f"round {round_no} item {item}\n".encode()
    (root / "model.bin").write_bytes(body * (1 + (round_no * 31 + item * 17) % 512))
    if item % 5 == 0:
        (root / "conf").mkdir(exist_ok=True)
        (root / "conf" / "params.json").write_text(f'{{"round": {round_no}, "item": {item}}}')
    return root


def write_forever(home: Path, scratch: Path, round_no: int) -> None:
    """Register versions until killed: shared models, one new model per round, with lineage."""
    platform = Platform(home, actor="crash-writer")
    data = scratch / f"data-r{round_no}.csv"
    data.write_text(f"x,y\n{round_no},1\n")
    dataset = platform.register_dataset(f"train-{round_no % 4}", data)
    run = platform.start_run("crash", dataset_ids=[dataset.id], code_commit_="0" * 40)
    names = (*SHARED_MODELS, f"round-{round_no}")
    item = 0
    while True:
        name = names[item % len(names)]
        lineage: dict[str, object] = {}
        if item % 4 in (1, 3):
            lineage["run_id"] = run.id
        if item % 4 in (2, 3):
            lineage["dataset_ids"] = [dataset.id]
        version = platform.register_model(
            name,
            _artifact(scratch, round_no, item),
            tags={"round": str(round_no)},
            **lineage,  # type: ignore[arg-type]
        )
        _say(f"ack {version.name} {version.version} {version.artifact_digest} {version.id}")
        item += 1


def serve(home: Path, scratch: Path) -> None:
    # Warm what every child would otherwise redo (lazy imports: the schema migrator, the local
    # plugin, the SQLite driver; the cached package lookup) on a throwaway home, and close it,
    # so that a forked writer reaches its first commit in milliseconds, not a tenth of a second.
    importlib.import_module("alembic.command")
    environment()
    Platform(scratch / "warm-up", actor="crash-writer").close()
    _say("ready")
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command != "go":
            break
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                write_forever(home, scratch, int(argument))
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                code = 1
            os._exit(code)
        _say(f"child {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exit {pid} {status}")


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]))
