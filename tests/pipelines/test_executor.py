"""The local executor: sub-processes, caching by code and input digests, resuming, gates."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
from artifact_kit import MakeArtifact

from mintaka import (
    Conflict,
    GateFailed,
    IdFactory,
    ManualClock,
    NodeKind,
    Platform,
    ValidationError,
)
from mintaka.domain.lineage import EdgeKind
from mintaka.domain.pipelines import GateKind, PipelineRun, PipelineSpec, PipelineStatus, StepSpec
from mintaka.domain.runs import RunStatus
from mintaka.pipelines import local as local_executor
from mintaka.pipelines.local import PipelineFailed, StepEvent, failed_run

STEPS = "pipeline_steps"


def two_steps(**parameters: str | int | float | bool) -> PipelineSpec:
    return PipelineSpec(
        name="two-steps",
        parameters={"n": 3, **parameters},
        steps=[
            StepSpec(name="produce", entrypoint=f"{STEPS}:produce", inputs={"n": "params.n"}),
            StepSpec(
                name="consume",
                entrypoint=f"{STEPS}:consume",
                inputs={"file": "produce.file", "total": "produce.total"},
            ),
        ],
    )


def test_steps_run_in_sub_processes_and_pass_typed_outputs_on(platform: Platform) -> None:
    events: list[StepEvent] = []
    run = platform.pipelines.run(two_steps(), on_event=events.append)
    assert run.status is PipelineStatus.SUCCEEDED
    produce, consume = run.steps
    assert produce.outputs["pid"] != os.getpid()
    assert consume.outputs == {"doubled": 12}
    assert [(e.step, e.status) for e in events] == [
        ("produce", "started"),
        ("produce", "succeeded"),
        ("consume", "started"),
        ("consume", "succeeded"),
    ]
    actions = [e.action for e in platform.audit.events()]
    assert actions[0] == "pipeline.start"
    assert actions[-1] == "pipeline.succeeded"


def test_a_rerun_with_the_same_inputs_is_served_from_the_cache(platform: Platform) -> None:
    first = platform.pipelines.run(two_steps(), isolation="inline")
    second = platform.pipelines.run(two_steps(), isolation="inline")
    assert [s.cached for s in first.steps] == [False, False]
    assert [s.cached for s in second.steps] == [True, True]
    assert [s.outputs for s in second.steps] == [s.outputs for s in first.steps]
    assert [s.cache_key for s in second.steps] == [s.cache_key for s in first.steps]
    changed = platform.pipelines.run(two_steps(), {"n": 4}, isolation="inline")
    assert [s.cached for s in changed.steps] == [False, False]


def test_runs_computing_the_same_step_each_get_their_own_workdir(platform: Platform) -> None:
    uncached = PipelineSpec(
        name="uncached",
        parameters={"n": 3},
        steps=[
            StepSpec(
                name="produce", entrypoint=f"{STEPS}:produce", inputs={"n": "params.n"}, cache=False
            )
        ],
    )
    first = platform.pipelines.run(uncached, isolation="inline")
    second = platform.pipelines.run(uncached, isolation="inline")
    assert first.steps[0].cache_key == second.steps[0].cache_key
    files = [Path(run.steps[0].outputs["file"]) for run in (first, second)]
    assert files[0] != files[1]
    assert [f.parent.name for f in files] == [first.id, second.id]
    assert all(f.read_text() == "6" for f in files)  # the earlier run's outputs are intact


def test_runs_computing_the_same_step_at_once_each_read_their_own_outputs(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    uncached = PipelineSpec(
        name="uncached",
        parameters={"n": 3},
        steps=[
            StepSpec(
                name="produce", entrypoint=f"{STEPS}:produce", inputs={"n": "params.n"}, cache=False
            )
        ],
    )
    real = subprocess.run
    other: list[PipelineRun | None] = []

    def step_process(command: list[str], **options: Any) -> Any:
        done = real(command, **options)
        if "mintaka.pipelines.step" in command and not other:
            other.append(None)  # another run computes the same step before this one reads it
            other.append(platform.pipelines.run(uncached))
        return done

    monkeypatch.setattr(subprocess, "run", step_process)
    first = platform.pipelines.run(uncached)
    [_, second] = other
    assert second is not None
    assert first.steps[0].cache_key == second.steps[0].cache_key
    for run in (first, second):
        produced = Path(run.steps[0].outputs["file"])
        assert produced.parent.name == run.id
        assert produced.read_text() == "6"


def test_changed_data_bytes_are_a_cache_miss(platform: Platform, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("abc")
    spec = PipelineSpec(
        name="reads-data",
        parameters={"n": 1, "data": str(data)},
        steps=[
            StepSpec(
                name="produce",
                entrypoint=f"{STEPS}:produce",
                inputs={"n": "params.n", "data": "params.data"},
            )
        ],
    )
    assert platform.pipelines.run(spec, isolation="inline").steps[0].outputs["total"] == 5
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached
    data.write_text("abcd")  # same path, other bytes
    again = platform.pipelines.run(spec, isolation="inline").steps[0]
    assert not again.cached
    assert again.outputs["total"] == 6


def test_changed_step_code_is_a_cache_miss(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "editable_steps.py"
    module.write_text(Path(__file__).with_name("pipeline_steps.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = PipelineSpec(
        name="edited",
        parameters={"n": 2},
        steps=[StepSpec(name="p", entrypoint="editable_steps:produce", inputs={"n": "params.n"})],
    )
    assert not platform.pipelines.run(spec, isolation="inline").steps[0].cached
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached
    module.write_text(module.read_text() + "\n# a changed line of step code\n")
    assert not platform.pipelines.run(spec, isolation="inline").steps[0].cached


DECORATED_STEP = """from pydantic import BaseModel
from k10_deco import traced
class I(BaseModel):
    n: int
class O(BaseModel):
    value: int
@traced
def step(inputs: I) -> O:
    return O(value=inputs.n * FACTOR)
"""
DECORATOR = """import functools
def traced(fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        return fn(*a, **k)
    return wrapper
"""


@pytest.mark.parametrize("changed", ["step", "decorator"])
def test_changed_code_of_a_decorated_step_is_a_cache_miss(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: str
) -> None:
    """A step wrapped by a decorator from another module is digested by its own source and the
    decorator's; each run's sub-process imports the code as it is on disk."""
    deco = tmp_path / "k10_deco.py"
    deco.write_text(DECORATOR)
    steps = tmp_path / "k10_steps.py"
    steps.write_text(DECORATED_STEP.replace("FACTOR", "2"))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("k10_deco", "k10_steps"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    spec = PipelineSpec(
        name="deco",
        parameters={"n": 3},
        steps=[StepSpec(name="s", entrypoint="k10_steps:step", inputs={"n": "params.n"})],
    )
    first = platform.pipelines.run(spec)
    assert first.steps[0].outputs == {"value": 6}
    if changed == "step":
        steps.write_text(DECORATED_STEP.replace("FACTOR", "100"))
        expected = 300
    else:
        deco.write_text(
            DECORATOR.replace("fn(*a, **k)", "fn(*a, **k).model_copy(update={'value': 7})")
        )
        expected = 7
    second = platform.pipelines.run(spec)
    assert second.steps[0].cached is False
    assert second.steps[0].outputs == {"value": expected}


OUTPUT_MODELS = """from pydantic import BaseModel
class I(BaseModel):
    n: int
class O(BaseModel):
    value: int
def build(n: int) -> O:
    return O(value=n)
"""
STEP_OF_MODELS = """from k11_models import I, O, build
def step(inputs: I) -> O:
    return build(inputs.n)
"""


def test_a_cache_entry_its_output_model_no_longer_reads_is_a_miss(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's output model lives in a module of its own, which gains a required field: the
    step's code is unchanged, so the entry is found, but it no longer reads as the outputs."""
    models = tmp_path / "k11_models.py"
    models.write_text(OUTPUT_MODELS)
    (tmp_path / "k11_steps.py").write_text(STEP_OF_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = PipelineSpec(
        name="models",
        parameters={"n": 3},
        steps=[StepSpec(name="s", entrypoint="k11_steps:step", inputs={"n": "params.n"})],
    )
    for name in ("k11_models", "k11_steps"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert platform.pipelines.run(spec, isolation="inline").steps[0].outputs == {"value": 3}
    models.write_text(
        OUTPUT_MODELS.replace("    value: int\n", "    value: int\n    label: str\n").replace(
            "O(value=n)", "O(value=n, label='new')"
        )
    )
    for name in ("k11_models", "k11_steps"):  # as a new process imports them
        monkeypatch.delitem(sys.modules, name, raising=False)
    again = platform.pipelines.run(spec, isolation="inline").steps[0]
    assert (again.cached, again.outputs) == (False, {"value": 3, "label": "new"})


@pytest.mark.parametrize(
    ("edits", "produced"),
    [
        (  # a field added with a default
            [
                ("    value: int\n", "    value: int\n    label: str = 'unset'\n"),
                ("O(value=n)", "O(value=n, label='new')"),
            ],
            {"value": 3, "label": "new"},
        ),
        ([("    value: int\n", "    value: float\n")], {"value": 3.0}),  # retyped
    ],
)
def test_a_changed_output_model_in_a_module_of_its_own_is_a_cache_miss(
    platform: Platform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edits: list[tuple[str, str]],
    produced: dict[str, Any],
) -> None:
    """The step's output model lives in a module of its own, which changes: the step's code is
    unchanged and the entry still reads as the outputs, but the key covers the model's fields,
    their types and defaults, so the step runs again."""
    models = tmp_path / "k12_models.py"
    models.write_text(OUTPUT_MODELS)
    (tmp_path / "k12_steps.py").write_text(STEP_OF_MODELS.replace("k11_", "k12_"))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = PipelineSpec(
        name="models",
        parameters={"n": 3},
        steps=[StepSpec(name="s", entrypoint="k12_steps:step", inputs={"n": "params.n"})],
    )
    for name in ("k12_models", "k12_steps"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert platform.pipelines.run(spec, isolation="inline").steps[0].outputs == {"value": 3}
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached
    changed = OUTPUT_MODELS
    for old, new in edits:
        changed = changed.replace(old, new)
    models.write_text(changed)
    for name in ("k12_models", "k12_steps"):  # as a new process imports them
        monkeypatch.delitem(sys.modules, name, raising=False)
    again = platform.pipelines.run(spec, isolation="inline").steps[0]
    assert (again.cached, again.outputs) == (False, produced)
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached


PATH_OUTPUT_MODELS = """from pathlib import Path
from pydantic import BaseModel
class I(BaseModel):
    n: int
class O(BaseModel):
    file: Path
def build(n: int, workdir: Path) -> O:
    out = workdir / "out.txt"
    out.write_text(str(n))
    return O(file=out)
"""
PATH_STEP_OF_MODELS = """from pathlib import Path
from k12_models import I, O, build
from mintaka.pipelines.contract import StepContext
def step(inputs: I, ctx: StepContext) -> O:
    return build(inputs.n, ctx.workdir)
"""
RESHAPED_PATHS = {
    "dict": ("file: dict[str, Path]", "O(file={'main': out})"),
    "list": ("file: list[Path]", "O(file=[out])"),
}


@pytest.mark.parametrize("shape", sorted(RESHAPED_PATHS))
def test_a_cache_entry_whose_path_output_changed_shape_is_a_miss(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """A path output that becomes a mapping or a list of paths: the stored path no longer reads
    as the outputs, so the entry is a miss, and no digest is taken of what its text would name
    read as the new shape (a list of paths would read its characters, ``/`` among them)."""
    models = tmp_path / "k12_models.py"
    models.write_text(PATH_OUTPUT_MODELS)
    (tmp_path / "k12_steps.py").write_text(PATH_STEP_OF_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = PipelineSpec(
        name="reshaped",
        parameters={"n": 3},
        steps=[StepSpec(name="s", entrypoint="k12_steps:step", inputs={"n": "params.n"})],
    )
    for name in ("k12_models", "k12_steps"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    first = platform.pipelines.run(spec, isolation="inline").steps[0]
    field, built = RESHAPED_PATHS[shape]
    models.write_text(PATH_OUTPUT_MODELS.replace("file: Path", field).replace("O(file=out)", built))
    for name in ("k12_models", "k12_steps"):  # as a new process imports them
        monkeypatch.delitem(sys.modules, name, raising=False)
    digest = local_executor.content_digest

    def only_under_tmp_path(path: Path) -> str | None:
        assert path.is_relative_to(tmp_path), f"digest of {path}"
        return digest(path)

    monkeypatch.setattr(local_executor, "content_digest", only_under_tmp_path)
    again = platform.pipelines.run(spec, isolation="inline").steps[0]
    assert again.cached is False
    assert again.outputs["file"] != first.outputs["file"]
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached


def test_a_cached_output_whose_file_changed_is_recomputed(platform: Platform) -> None:
    first = platform.pipelines.run(two_steps(), isolation="inline")
    Path(first.steps[0].outputs["file"]).write_text("999")
    again = platform.pipelines.run(two_steps(), isolation="inline")
    assert not again.steps[0].cached
    assert again.steps[1].outputs == {"doubled": 12}


def test_lists_and_mappings_of_paths_are_passed_on_and_digested_for_the_cache(
    platform: Platform, tmp_path: Path
) -> None:
    source = tmp_path / "parts"
    source.mkdir()
    (source / "a.txt").write_text("a")
    (source / "b.txt").write_text("bb")
    spec = PipelineSpec(
        name="bundles",
        parameters={"source": str(source)},
        steps=[
            StepSpec(
                name="bundle", entrypoint=f"{STEPS}:bundle", inputs={"source": "params.source"}
            ),
            StepSpec(
                name="measure",
                entrypoint=f"{STEPS}:measure",
                inputs={"files": "bundle.files", "named": "bundle.named"},
            ),
        ],
    )
    first = platform.pipelines.run(spec)  # in sub-processes: the paths cross as JSON
    assert first.steps[1].outputs == {"sizes": [1, 2], "named": {"a": 1, "b": 2}}
    cached = platform.pipelines.run(spec, isolation="inline")
    assert [s.cached for s in cached.steps] == [True, True]
    (source / "b.txt").write_text("bbb")  # the same paths, other bytes
    again = platform.pipelines.run(spec, isolation="inline")
    assert [s.cached for s in again.steps] == [False, False]
    assert again.steps[1].outputs == {"sizes": [1, 3], "named": {"a": 1, "b": 3}}


@pytest.mark.parametrize("at", [("produce", "succeeded"), ("consume", "started")])
def test_ctrl_c_between_steps_leaves_the_run_stopped_and_resumable(
    platform: Platform, at: tuple[str, str]
) -> None:
    """A Ctrl-C outside a step's own code (here in the progress callback) stops the run as one
    inside a step does: stopped, audited, and resumable in the same process."""

    def interrupt(event: StepEvent) -> None:
        if (event.step, event.status) == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        platform.pipelines.run(two_steps(), isolation="inline", on_event=interrupt)
    (run,) = platform.pipelines.runs()
    assert run.status is PipelineStatus.STOPPED
    assert run.failure_reason == "interrupted between steps"
    assert [s.status for s in run.steps] == [PipelineStatus.SUCCEEDED, PipelineStatus.PENDING]
    assert platform.pipelines.get(run.id).driver is None
    assert [e.action for e in platform.audit.events()][-1] == "pipeline.stopped"
    resumed = platform.pipelines.resume(run.id, isolation="inline")
    assert resumed.status is PipelineStatus.SUCCEEDED
    assert resumed.steps[1].outputs == {"doubled": 12}


def test_ctrl_c_inside_a_step_stops_that_step_and_the_run(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "k10_interrupted_steps.py").write_text(
        "from pydantic import BaseModel\n"
        "class I(BaseModel):\n    n: int\n"
        "class O(BaseModel):\n    value: int\n"
        "def step(inputs: I) -> O:\n    raise KeyboardInterrupt\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = PipelineSpec(
        name="interrupted",
        parameters={"n": 1},
        steps=[
            StepSpec(name="s", entrypoint="k10_interrupted_steps:step", inputs={"n": "params.n"})
        ],
    )
    with pytest.raises(KeyboardInterrupt):
        platform.pipelines.run(spec, isolation="inline")
    (run,) = platform.pipelines.runs()
    assert run.status is PipelineStatus.STOPPED
    assert run.failure_reason == "interrupted in step 's'"
    assert run.steps[0].status is PipelineStatus.STOPPED
    assert run.steps[0].ended_at is not None
    assert [e.action for e in platform.audit.events()][-1] == "pipeline.stopped"


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)
def test_a_step_process_ends_with_the_process_driving_its_run(
    platform: Platform, tmp_path: Path
) -> None:
    """A driver killed outright (SIGKILL) takes its step's sub-process with it, so a resume
    never runs a second copy of the step beside the first."""
    import signal
    import subprocess
    import time

    from mintaka.processes import ProcessId, running

    spec = PipelineSpec(
        name="waits",
        parameters={"folder": str(tmp_path)},
        steps=[
            StepSpec(
                name="wait",
                entrypoint="detached_steps:wait_for_release",
                inputs={"folder": "params.folder"},
            )
        ],
    )
    code = (
        "import sys\nfrom mintaka import Platform\nfrom mintaka.domain.pipelines import "
        "PipelineSpec\nwith Platform(sys.argv[1], actor='alice') as platform:\n"
        "    platform.pipelines.run(PipelineSpec.model_validate_json(sys.argv[2]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    driver = subprocess.Popen(
        [sys.executable, "-c", code, str(platform.home), spec.model_dump_json()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        started = tmp_path / "started"
        while not (started.exists() and started.read_text()):
            assert time.monotonic() < deadline, "the step never started"
            assert driver.poll() is None, "the driver ended before its step started"
            time.sleep(0.02)
        step = ProcessId(pid=int(started.read_text()))
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 5
        while running(step) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not running(step)
    finally:
        driver.kill()
        driver.wait()
        (tmp_path / "release").write_text("")  # a step that outlived its driver ends too


def test_a_failed_run_resumes_from_its_last_good_step(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(PipelineFailed, match="asked to fail by the flag file") as raised:
        platform.pipelines.run(two_steps(), isolation="inline")
    state = platform.pipelines.get(raised.value.run_id)
    assert state.run.status is PipelineStatus.FAILED
    assert [s.status for s in state.run.steps] == [PipelineStatus.SUCCEEDED, PipelineStatus.FAILED]
    assert raised.value.step == "consume"
    flag.unlink()
    events: list[StepEvent] = []
    resumed = platform.pipelines.resume(
        raised.value.run_id, on_event=events.append, isolation="inline"
    )
    assert resumed.id == raised.value.run_id
    assert resumed.status is PipelineStatus.SUCCEEDED
    assert [(e.step, e.status) for e in events] == [
        ("produce", "reused"),
        ("consume", "started"),
        ("consume", "succeeded"),
    ]
    assert platform.pipelines.resume(resumed.id).status is PipelineStatus.SUCCEEDED


@pytest.mark.parametrize(
    "behind_mintakas_back", [lambda f: f.write_text("999"), Path.unlink], ids=["altered", "deleted"]
)
def test_a_resume_runs_again_a_done_step_whose_output_file_changed_or_went(
    platform: Platform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    behind_mintakas_back: Callable[[Path], object],
) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(PipelineFailed) as raised:
        platform.pipelines.run(two_steps(), isolation="inline")
    state = platform.pipelines.get(raised.value.run_id)
    behind_mintakas_back(Path(state.run.steps[0].outputs["file"]))
    flag.unlink()
    events: list[StepEvent] = []
    resumed = platform.pipelines.resume(
        raised.value.run_id, on_event=events.append, isolation="inline"
    )
    assert resumed.status is PipelineStatus.SUCCEEDED
    assert resumed.steps[1].outputs == {"doubled": 12}
    assert [(e.step, e.status) for e in events] == [
        ("produce", "started"),
        ("produce", "succeeded"),
        ("consume", "started"),
        ("consume", "succeeded"),
    ]


def test_the_steps_downstream_of_a_step_run_again_on_resume_run_again_too(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "hold"
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    spec = PipelineSpec(
        name="signed",
        parameters={"n": 3},
        steps=[
            *two_steps().steps,
            StepSpec(
                name="sign-off",
                entrypoint=f"{STEPS}:signed_off",
                gate=GateKind.DEPLOYMENT,
                depends_on=["consume"],
                inputs={"total": "produce.total"},
            ),
        ],
    )

    def hold_after_consume(event: StepEvent) -> None:
        if (event.step, event.status) == ("consume", "succeeded"):
            flag.touch()  # the sign-off is still outstanding

    with pytest.raises(GateFailed) as raised:
        platform.pipelines.run(spec, isolation="inline", on_event=hold_after_consume)
    run_id = raised.value.run_id or ""
    Path(platform.pipelines.get(run_id).run.steps[0].outputs["file"]).write_text("999")
    flag.unlink()
    events: list[StepEvent] = []
    resumed = platform.pipelines.resume(run_id, on_event=events.append, isolation="inline")
    assert resumed.status is PipelineStatus.SUCCEEDED
    assert [(e.step, e.status) for e in events if e.status != "started"] == [
        ("produce", "succeeded"),
        ("consume", "cached"),  # run again, not reused: its inputs' bytes are as before
        ("sign-off", "succeeded"),
    ]


def test_of_two_resumes_of_one_run_at_once_only_one_drives_it(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka import Conflict
    from mintaka.pipelines import local

    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(PipelineFailed) as raised:
        platform.pipelines.run(two_steps(), isolation="inline")
    run_id = raised.value.run_id
    flag.unlink()
    real = local.check_spec
    second: list[BaseException | None] = []

    def slow_check(spec: PipelineSpec, parameters: Mapping[str, Any]) -> Any:
        if not second:  # another process resumes the run while this one checks the spec
            second.append(None)
            with pytest.raises(Conflict, match="is being resumed by another process") as other:
                platform.pipelines.resume(run_id, isolation="inline")
            second.append(other.value)
        return real(spec, parameters)

    monkeypatch.setattr(local, "check_spec", slow_check)
    resumed = platform.pipelines.resume(run_id, isolation="inline")
    assert resumed.status is PipelineStatus.SUCCEEDED
    assert len(second) == 2
    actions = [e.action for e in platform.audit.events()]
    assert actions.count("pipeline.resume") == 1
    assert actions.count("pipeline.succeeded") == 1
    assert not (platform.home / "pipelines" / "runs" / f"{run_id}.claim").exists()


def test_a_failing_gate_stops_the_run_naming_the_gate_and_its_numbers(
    platform: Platform,
) -> None:
    spec = PipelineSpec(
        name="gated",
        parameters={"n": 3, "value": 0.42, "limit": 0.3},
        steps=[
            StepSpec(
                name="check",
                entrypoint=f"{STEPS}:at_most",
                gate=GateKind.EVALUATION,
                inputs={"value": "params.value", "limit": "params.limit"},
            ),
            StepSpec(
                name="produce",
                entrypoint=f"{STEPS}:produce",
                depends_on=["check"],
                inputs={"n": "params.n"},
            ),
        ],
    )
    with pytest.raises(GateFailed) as raised:
        platform.pipelines.run(spec, isolation="inline")
    error = raised.value
    assert (error.gate, error.kind) == ("check", "evaluation")
    assert str(error) == "gate 'check' (evaluation) failed: value: 0.42 (limit 0.3)"
    state = platform.pipelines.get(error.run_id or "")
    assert [s.status for s in state.run.steps] == [PipelineStatus.FAILED, PipelineStatus.PENDING]
    [gate] = platform.lineage_downstream(f"pipeline_run:{state.run.id}").of_kind(NodeKind.GATE)
    assert gate.attrs["passed"] is False
    assert gate.attrs["checks"][0]["value"] == 0.42
    passing = platform.pipelines.run(spec, {"value": 0.1}, isolation="inline")
    assert passing.status is PipelineStatus.SUCCEEDED


def test_a_step_that_raises_gate_failed_itself_ends_the_run_failed_and_resumable(
    platform: Platform,
) -> None:
    spec = PipelineSpec(
        name="self-checking",
        parameters={"value": 0.42, "limit": 0.3},
        steps=[
            StepSpec(
                name="check",
                entrypoint=f"{STEPS}:refuses_itself",
                inputs={"value": "params.value", "limit": "params.limit"},
            )
        ],
    )
    with pytest.raises(GateFailed) as raised:
        platform.pipelines.run(spec, isolation="inline")
    state = platform.pipelines.get(raised.value.run_id or "")
    assert state.run.status is PipelineStatus.FAILED
    [step] = state.run.steps
    assert step.status is PipelineStatus.FAILED
    assert step.failure_reason == "gate 'own-check' (evaluation) failed: value: 0.42 (limit 0.3)"
    assert [e.action for e in platform.audit.events()][-1] == "pipeline.failed"


def test_an_exception_a_step_raises_again_names_the_run_it_failed_now(
    platform: Platform,
) -> None:
    """A step module raising one exception instance in two runs: each failure names its own run
    to resume, not the first run that raised it."""
    named = []
    for n in (0, 1):
        spec = PipelineSpec(
            name="refusing",
            parameters={"n": n},
            steps=[StepSpec(name="s", entrypoint=f"{STEPS}:refuses", inputs={"n": "params.n"})],
        )
        with pytest.raises(ValidationError, match="quota") as raised:
            platform.pipelines.run(spec, isolation="inline")
        named.append(failed_run(raised.value))
    assert named[0] != named[1]
    assert set(named) == {r.id for r in platform.pipelines.runs()}


@pytest.mark.parametrize("cache", [False, True])
def test_a_step_reporting_a_metric_that_is_not_a_number_fails_and_resumes(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:

    flag = tmp_path / "nan"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    spec = PipelineSpec(
        name="measured",
        steps=[StepSpec(name="measure", entrypoint=f"{STEPS}:measures", cache=cache)],
    )
    with pytest.raises(
        ValidationError, match=r"step 'measure' reported metrics .* \['auc'\]"
    ) as raised:
        platform.pipelines.run(spec, isolation="inline")
    [run] = platform.pipelines.runs()
    assert failed_run(raised.value) == run.id  # still a ValidationError, naming the run
    assert run.status is PipelineStatus.FAILED
    assert run.steps[0].status is PipelineStatus.FAILED
    assert "not finite numbers" in (run.steps[0].failure_reason or "")
    assert [e.action for e in platform.audit.events()][-1] == "pipeline.failed"
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.status is RunStatus.FAILED
    flag.unlink()
    resumed = platform.pipelines.resume(run.id, isolation="inline")
    assert resumed.status is PipelineStatus.SUCCEEDED
    retrained = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert retrained.metrics == {"auc": 0.8, "loss": 0.3}


def registering(model: Path, *steps: StepSpec, **parameters: str | int) -> PipelineSpec:
    """``steps``, then registering ``model`` as ``credit`` once they are done."""
    return PipelineSpec(
        name="registering",
        parameters={"model": str(model), "name": "credit", "flavor": "opaque", **parameters},
        steps=[
            *steps,
            StepSpec(
                name="register",
                entrypoint="mintaka.pipelines.builtins:register_model",
                depends_on=[steps[-1].name],
                inputs={"model": "params.model", "name": "params.name", "flavor": "params.flavor"},
            ),
        ],
    )


def test_a_resumed_run_registers_its_model_with_the_metrics_measured_before_it_failed(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registering(
        make_artifact(b"weights"),
        StepSpec(name="train", entrypoint=f"{STEPS}:trains"),
        StepSpec(
            name="sign-off",
            entrypoint=f"{STEPS}:signed_off",
            gate="evaluation",
            depends_on=["train"],
            inputs={"total": "params.n"},
        ),
        n=1,
    )
    flag = tmp_path / "outstanding"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(GateFailed) as held:
        platform.pipelines.run(spec, isolation="inline")
    first = platform.pipelines.get(held.value.run_id or "").experiment_run or ""
    assert platform.get_run(first).status is RunStatus.FAILED
    flag.unlink()
    run = platform.pipelines.resume(held.value.run_id or "", isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    assert [s.cached for s in run.steps] == [False, False, False]
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.id != first
    assert experiment.metrics == {"auc": 0.9, "loss": 0.2}
    version = platform.get_model_version("credit", 1)
    assert version.run_id == experiment.id
    assert version.metrics == {"auc": 0.9, "loss": 0.2}


def test_a_resumed_run_logs_no_metrics_of_the_steps_it_runs_again(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file ``produce`` wrote changed, so it and ``evaluate`` downstream of it run again:
    the new experiment run, and the model it registers, hold what ``evaluate`` measures now,
    not what it measured in the attempt before."""
    spec = registering(
        make_artifact(b"weights"),
        StepSpec(
            name="produce", entrypoint=f"{STEPS}:produce", inputs={"n": "params.n"}, cache=False
        ),
        StepSpec(
            name="evaluate",
            entrypoint=f"{STEPS}:evaluates",
            inputs={"file": "produce.file"},
            cache=False,
        ),
        StepSpec(
            name="sign-off",
            entrypoint=f"{STEPS}:signed_off",
            gate="evaluation",
            depends_on=["evaluate"],
            inputs={"total": "produce.total"},
        ),
        n=1,
    )
    flag = tmp_path / "outstanding"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(GateFailed) as held:
        platform.pipelines.run(spec, isolation="inline")
    state = platform.pipelines.get(held.value.run_id or "")
    assert platform.get_run(state.experiment_run or "").metrics == {"auc": 0.9, "recall": 0.6}
    Path(state.run.steps[0].outputs["file"]).write_text("999")
    monkeypatch.setenv("MINTAKA_TEST_RETUNED", "1")
    flag.unlink()
    run = platform.pipelines.resume(state.run.id, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.metrics == {"auc": 0.7}
    assert platform.get_model_version("credit", 1).metrics == {"auc": 0.7}


def test_a_resume_redoing_steps_after_the_model_was_registered_trains_in_a_new_run(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model was registered before the gate held, so the experiment run it came from is
    finished. ``produce``'s file changed, so ``evaluate`` and ``register`` run again (the model
    retuned meanwhile): in a new experiment run, holding what ``evaluate`` measures now, which
    the new version is registered from; the version registered before keeps its run and the
    metrics it was registered with."""
    model = make_artifact(b"weights")
    spec = PipelineSpec(
        name="registered-then-gated",
        parameters={
            "model": str(model),
            "name": "credit",
            "flavor": "opaque",
            "n": 1,
        },
        steps=[
            StepSpec(
                name="produce", entrypoint=f"{STEPS}:produce", inputs={"n": "params.n"}, cache=False
            ),
            StepSpec(
                name="evaluate",
                entrypoint=f"{STEPS}:evaluates",
                inputs={"file": "produce.file"},
                cache=False,
            ),
            StepSpec(
                name="register",
                entrypoint="mintaka.pipelines.builtins:register_model",
                depends_on=["evaluate"],
                inputs={"model": "params.model", "name": "params.name", "flavor": "params.flavor"},
            ),
            StepSpec(
                name="sign-off",
                entrypoint=f"{STEPS}:signed_off",
                gate="evaluation",
                depends_on=["register"],
                inputs={"total": "produce.total"},
            ),
        ],
    )
    flag = tmp_path / "outstanding"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(GateFailed) as held:
        platform.pipelines.run(spec, isolation="inline")
    state = platform.pipelines.get(held.value.run_id or "")
    first = state.experiment_run or ""
    assert platform.get_run(first).status is RunStatus.FINISHED
    Path(state.run.steps[0].outputs["file"]).write_text("999")
    (model / "model.bin").write_bytes(b"retuned weights")
    monkeypatch.setenv("MINTAKA_TEST_RETUNED", "1")
    flag.unlink()
    run = platform.pipelines.resume(state.run.id, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    assert run.steps[2].outputs["ref"] == "credit:2"
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.id != first
    assert experiment.metrics == {"auc": 0.7}
    registered = platform.get_model_version("credit", 2)
    assert registered.run_id == experiment.id
    assert registered.metrics == {"auc": 0.7}
    before = platform.get_model_version("credit", 1)
    assert before.run_id == first
    assert before.metrics == {"auc": 0.9, "recall": 0.6}
    assert platform.get_run(first).metrics == {"auc": 0.9, "recall": 0.6}


def test_a_model_trained_on_data_a_step_prepared_records_that_data(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    spec = registering(
        make_artifact(b"weights"),
        StepSpec(name="prepare", entrypoint=f"{STEPS}:writes_rows", inputs={"rows": "params.rows"}),
        StepSpec(
            name="ingest",
            entrypoint="mintaka.pipelines.builtins:register_dataset",
            inputs={"path": "prepare.csv", "name": "params.dataset"},
        ),
        rows=20,
        dataset="prepared",
    )
    run = platform.pipelines.run(spec, isolation="inline")
    state = platform.pipelines.get(run.id)
    [dataset] = state.datasets
    experiment = platform.get_run(state.experiment_run or "")
    assert experiment.dataset_ids == (dataset,)
    version = platform.get_model_version("credit", 1)
    assert version.dataset_ids == (dataset,)
    assert platform.lineage.ancestors(f"run:{experiment.id}", NodeKind.DATASET) == [dataset]


def test_a_resume_preparing_the_data_again_trains_on_the_new_data_alone(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file ``prepare`` wrote changed, so it and ``ingest`` run again, ingesting the data
    refreshed meanwhile: the run, its new experiment run and the version it registers hold that
    dataset, not the one the earlier attempt ingested."""
    spec = registering(
        make_artifact(b"weights"),
        StepSpec(
            name="prepare",
            entrypoint=f"{STEPS}:refreshes_rows",
            inputs={"rows": "params.rows"},
            cache=False,
        ),
        StepSpec(
            name="ingest",
            entrypoint="mintaka.pipelines.builtins:register_dataset",
            inputs={"path": "prepare.csv", "name": "params.dataset"},
        ),
        StepSpec(
            name="sign-off",
            entrypoint=f"{STEPS}:signed_off",
            gate="evaluation",
            depends_on=["ingest"],
            inputs={"total": "params.rows"},
        ),
        rows=20,
        dataset="prepared",
    )
    flag = tmp_path / "outstanding"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(GateFailed) as held:
        platform.pipelines.run(spec, isolation="inline")
    state = platform.pipelines.get(held.value.run_id or "")
    [before] = state.datasets
    Path(state.run.steps[0].outputs["csv"]).write_text("x,label\n")
    monkeypatch.setenv("MINTAKA_TEST_RETUNED", "1")
    flag.unlink()
    run = platform.pipelines.resume(state.run.id, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    state = platform.pipelines.get(run.id)
    [dataset] = state.datasets
    assert dataset != before
    assert dataset == run.steps[1].outputs["dataset_id"]
    assert list(state.data_digests) == [dataset]
    assert platform.get_run(state.experiment_run or "").dataset_ids == (dataset,)
    assert platform.get_model_version("credit", 1).dataset_ids == (dataset,)


@pytest.mark.parametrize("isolation", ["inline", "process"])
@pytest.mark.parametrize(
    "step", ["measures", "loosely_measures", "measures_none", "measures_text", "measures_a_list"]
)
def test_a_metric_that_is_not_a_number_fails_its_step_naming_it_in_either_isolation(
    platform: Platform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    isolation: Literal["inline", "process"],
    step: str,
) -> None:
    flag = tmp_path / "nan"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    spec = PipelineSpec(
        name="measured", steps=[StepSpec(name="measure", entrypoint=f"{STEPS}:{step}")]
    )
    with pytest.raises(ValidationError, match=r"step 'measure' reported metrics .* \['auc'\]"):
        platform.pipelines.run(spec, isolation=isolation)
    [run] = platform.pipelines.runs()
    assert run.steps[0].status is PipelineStatus.FAILED
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.metrics == {}


def test_a_cache_entry_holding_a_metric_that_is_null_is_a_miss(platform: Platform) -> None:
    """An entry written by an older Mintaka, which cached a NaN under an untyped field as
    ``null``: no measurement, so the step runs again rather than succeeding without it."""
    spec = PipelineSpec(
        name="measured", steps=[StepSpec(name="train", entrypoint=f"{STEPS}:loosely_trains")]
    )
    first = platform.pipelines.run(spec, isolation="inline").steps[0]
    stored = platform.home / "pipelines" / "cache"
    stored /= (first.cache_key or "").removeprefix("sha256:") + "/outputs.json"
    entry = json.loads(stored.read_text())
    entry["outputs"]["metrics"]["auc"] = None
    stored.write_text(json.dumps(entry))
    again = platform.pipelines.run(spec, isolation="inline").steps[0]
    assert (again.cached, again.outputs) == (False, {"metrics": {"auc": 0.9, "loss": 0.2}})
    assert platform.pipelines.run(spec, isolation="inline").steps[0].cached


def test_a_step_reporting_a_count_beyond_a_floats_range_fails_typed(platform: Platform) -> None:
    from mintaka import ValidationError

    spec = PipelineSpec(
        name="counted", steps=[StepSpec(name="count", entrypoint=f"{STEPS}:counts_too_many")]
    )
    with pytest.raises(ValidationError, match=r"step 'count' reported metrics .* \['rows'\]"):
        platform.pipelines.run(spec, isolation="inline")
    [run] = platform.pipelines.runs()
    assert run.status is PipelineStatus.FAILED
    assert "not finite numbers" in (run.steps[0].failure_reason or "")


def test_missing_runs_are_not_found(platform: Platform) -> None:
    from mintaka import NotFound

    with pytest.raises(NotFound):
        platform.pipelines.resume("prun-nope")


def loose_pipeline() -> PipelineSpec:
    return PipelineSpec(
        name="loose",
        parameters={"value": 3, "rate": 0.5, "early": False},
        steps=[
            StepSpec(name="kind", entrypoint=f"{STEPS}:kind_of", inputs={"value": "params.value"})
        ],
    )


def test_a_parameter_given_as_text_reaches_the_step_as_its_declared_type(
    platform: Platform,
) -> None:
    """A submitted run's parameters are text: the executor hands each step the declared type
    all the same, as for a run given typed values."""
    given = {"value": "7", "rate": "1", "early": "true"}
    run = platform.pipelines.run(loose_pipeline(), given, isolation="inline")
    assert run.steps[0].outputs == {"kind": "int"}
    assert run.parameters == {"value": 7, "rate": 1.0, "early": True}


def test_a_spec_default_that_is_not_finite_is_refused_like_a_given_value(
    platform: Platform,
) -> None:
    spec = loose_pipeline().model_copy(update={"parameters": {"value": 3, "rate": math.inf}})
    says = "parameter 'rate' is declared as float (default inf); inf is not one"
    with pytest.raises(ValidationError, match=re.escape(says)):
        platform.pipelines.run(spec, isolation="inline")
    with pytest.raises(ValidationError, match=re.escape(says)):
        platform.pipelines.submit(spec)
    assert platform.pipelines.runs() == []


def test_an_output_holding_text_that_is_not_unicode_fails_its_step_naming_it(
    platform: Platform,
) -> None:
    spec = PipelineSpec(
        name="names", steps=[StepSpec(name="list", entrypoint=f"{STEPS}:undecodable_name")]
    )
    says = "output 'text' of step 'list' holds text that is not Unicode"
    with pytest.raises(ValidationError, match=says):
        platform.pipelines.run(spec, isolation="inline")
    [run] = platform.pipelines.runs()
    assert run.status is PipelineStatus.FAILED
    assert says in (run.steps[0].failure_reason or "")


@pytest.mark.parametrize("action", ["run", "bind"])
def test_a_text_parameter_that_is_not_unicode_is_refused_naming_it(
    platform: Platform, action: str
) -> None:
    spec = PipelineSpec(
        name="tagged",
        parameters={"tag": "x"},
        steps=[StepSpec(name="echo", entrypoint=f"{STEPS}:echo_tag", inputs={"tag": "params.tag"})],
    )
    name = b"data-\xff.csv".decode("utf-8", "surrogateescape")  # as os.listdir reads it
    given: Callable[[], object] = (
        (lambda: platform.pipelines.run(spec, {"tag": name}, isolation="inline"))
        if action == "run"
        else (lambda: platform.pipelines.bind("credit", spec, {"tag": name}))
    )
    with pytest.raises(ValidationError, match=r"parameter 'tag' .* holds text that is not Unicode"):
        given()
    assert platform.pipelines.runs() == []
    assert platform.pipelines.bindings() == []


def test_a_bool_parameter_takes_true_or_false_in_any_case(platform: Platform) -> None:
    run = platform.pipelines.run(loose_pipeline(), {"early": "TRUE"}, isolation="inline")
    assert run.parameters["early"] is True
    run = platform.pipelines.run(loose_pipeline(), {"early": "False"}, isolation="inline")
    assert run.parameters["early"] is False


def test_a_number_given_for_a_text_parameter_is_its_text(platform: Platform) -> None:
    """A parameter declared as text takes an int or a finite float as its text (what a submit always
    made of it), never a bool; every executor hands the step that text."""
    spec = loose_pipeline().model_copy(update={"parameters": {"value": "x"}})
    run = platform.pipelines.run(spec, {"value": 2024}, isolation="inline")
    assert run.steps[0].outputs == {"kind": "str"}
    assert run.parameters == {"value": "2024"}
    submitted = platform.pipelines.submit(spec, {"value": 0.5})
    assert submitted.parameters == {"value": "0.5"}
    with pytest.raises(ValidationError, match="parameter 'value' is declared as str"):
        platform.pipelines.submit(spec, {"value": True})
    with pytest.raises(ValidationError, match="parameter 'value' is declared as str"):
        platform.pipelines.run(spec, {"value": 10**5000}, isolation="inline")
    for not_finite in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValidationError, match="parameter 'value' is declared as str"):
            platform.pipelines.run(spec, {"value": not_finite}, isolation="inline")
        with pytest.raises(ValidationError, match="parameter 'value' is declared as str"):
            platform.pipelines.submit(spec, {"value": not_finite})
    assert len(platform.pipelines.runs()) == 1


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"value": "seven"}, "parameter 'value' is declared as int (default 3); 'seven' is not"),
        ({"value": 7.5}, "parameter 'value' is declared as int"),
        ({"value": True}, "parameter 'value' is declared as int"),
        ({"rate": "nan"}, "parameter 'rate' is declared as float"),
        ({"early": "maybe"}, "parameter 'early' is declared as bool"),
        ({"early": "yes"}, "parameter 'early' is declared as bool"),
        ({"early": "on"}, "parameter 'early' is declared as bool"),
        ({"early": "1"}, "parameter 'early' is declared as bool"),
        ({"early": 0}, "parameter 'early' is declared as bool"),
        ({"value": 10**5000}, "parameter 'value' is declared as int (default 3); an int of over"),
        ({"rate": 10**400}, "parameter 'rate' is declared as float"),
        ({"rate": 10**5000}, "parameter 'rate' is declared as float"),
    ],
)
def test_a_parameter_not_of_its_declared_type_is_refused_before_anything_is_written(
    platform: Platform, given: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        platform.pipelines.run(loose_pipeline(), given, isolation="inline")
    with pytest.raises(ValidationError, match=re.escape(says)):
        platform.pipelines.submit(loose_pipeline(), given)
    assert platform.pipelines.runs() == []
    assert platform.backend.list_pipeline_runs() == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("entrypoint", "inputs", "says"),
    [
        ("no_such_step", {}, "no_such_step"),
        ("kind_of", {"value": "params.value", "unknown": "params.value"}, "'unknown'"),
    ],
)
def test_a_submitted_pipeline_whose_steps_do_not_fit_is_refused_before_the_backend(
    platform: Platform, entrypoint: str, inputs: dict[str, str], says: str
) -> None:
    from mintaka.pipelines.contract import PipelineSpecError

    spec = PipelineSpec(
        name="loose",
        parameters={"value": 3},
        steps=[StepSpec(name="kind", entrypoint=f"{STEPS}:{entrypoint}", inputs=inputs)],
    )
    with pytest.raises(PipelineSpecError, match=says):
        platform.pipelines.run(spec, isolation="inline")
    with pytest.raises(PipelineSpecError, match=says):
        platform.pipelines.submit(spec)
    assert platform.backend.list_pipeline_runs() == []  # type: ignore[attr-defined]


def test_the_register_step_takes_the_version_another_process_made_of_the_same_bytes_meanwhile(
    platform: Platform,
    make_artifact: MakeArtifact,
    home: Path,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = make_artifact(b"weights")
    real = platform.artifacts.ingest
    with Platform(home, clock=clock, ids=IdFactory(seed=9), actor="bob") as other:

        def ingest(*args: Any) -> Any:
            monkeypatch.setattr(platform.artifacts, "ingest", real)
            other.register_model("credit", model, tier="low")
            return real(*args)

        monkeypatch.setattr(platform.artifacts, "ingest", ingest)
        spec = registering(model, StepSpec(name="train", entrypoint=f"{STEPS}:trains"))
        run = platform.pipelines.run(spec, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    assert run.steps[-1].outputs["created"] is False
    assert [v.version for v in platform.list_versions("credit")] == [1]
    assert platform.get_model_version("credit", 1).owner == "bob"


def test_the_register_step_fails_naming_a_backend_version_its_refused_registration_left(
    platform: Platform,
    make_artifact: MakeArtifact,
    home: Path,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend outside the store made a version for the refused registration: the step does
    not take the other process's version as its own and end as if nothing were left behind."""
    model = make_artifact(b"weights")
    real = platform.artifacts.ingest
    monkeypatch.setattr(platform.backend, "resides_in", lambda _url: False)
    with Platform(home, clock=clock, ids=IdFactory(seed=9), actor="bob") as other:

        def ingest(*args: Any) -> Any:
            monkeypatch.setattr(platform.artifacts, "ingest", real)
            other.register_model("credit", model, tier="low")
            return real(*args)

        monkeypatch.setattr(platform.artifacts, "ingest", ingest)
        spec = registering(model, StepSpec(name="train", entrypoint=f"{STEPS}:trains"))
        with pytest.raises(Conflict, match="the backend's version 2, made for this registration"):
            platform.pipelines.run(spec, isolation="inline")
    assert [(d.kind, d.subject) for d in platform.sync()] == [("version.unrecorded", "credit:2")]


def registered_then_measured(model: Path) -> PipelineSpec:
    """Train, register, a sign-off gate that holds while the flag file exists, then a step that
    measures the model after it was registered."""
    return PipelineSpec(
        name="registered-then-measured",
        parameters={"model": str(model), "name": "credit", "flavor": "opaque", "n": 1},
        steps=[
            StepSpec(name="train", entrypoint=f"{STEPS}:trains"),
            StepSpec(
                name="register",
                entrypoint="mintaka.pipelines.builtins:register_model",
                depends_on=["train"],
                inputs={"model": "params.model", "name": "params.name", "flavor": "params.flavor"},
            ),
            StepSpec(
                name="sign-off",
                entrypoint=f"{STEPS}:signed_off",
                gate="evaluation",
                depends_on=["register"],
                inputs={"total": "params.n"},
            ),
            StepSpec(
                name="evaluate",
                entrypoint=f"{STEPS}:evaluates",
                depends_on=["sign-off"],
                inputs={"file": "params.model"},
            ),
        ],
    )


def test_a_resume_running_no_done_step_again_logs_its_metrics_in_a_new_run(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model was registered before the gate held, which ended the experiment run finished.
    The resume reuses every done step, and ``evaluate`` measures after the gate: in a new
    experiment run, which starts with what the reused steps measured; the version keeps the run
    it was registered from."""
    spec = registered_then_measured(make_artifact(b"weights"))
    flag = tmp_path / "outstanding"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(GateFailed) as held:
        platform.pipelines.run(spec, isolation="inline")
    first = platform.pipelines.get(held.value.run_id or "").experiment_run or ""
    assert platform.get_run(first).status is RunStatus.FINISHED
    flag.unlink()
    run = platform.pipelines.resume(held.value.run_id or "", isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.id != first
    assert experiment.status is RunStatus.FINISHED
    assert experiment.metrics == {"auc": 0.9, "loss": 0.2, "recall": 0.6}
    assert platform.get_run(first).metrics == {"auc": 0.9, "loss": 0.2}
    assert platform.get_model_version("credit", 1).run_id == first


def test_an_attempt_reusing_the_register_step_ends_its_experiment_run_failed_when_it_fails(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first resume reuses the register step and its gate holds again: the experiment run it
    trained in ends as failed (no version was registered from it), and the next resume trains in
    a new one."""
    spec = registered_then_measured(make_artifact(b"weights"))
    flag = tmp_path / "outstanding"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    with pytest.raises(GateFailed) as held:
        platform.pipelines.run(spec, isolation="inline")
    run_id = held.value.run_id or ""
    with pytest.raises(GateFailed):
        platform.pipelines.resume(run_id, isolation="inline")
    second = platform.get_run(platform.pipelines.get(run_id).experiment_run or "")
    assert second.status is RunStatus.FAILED
    flag.unlink()
    assert platform.pipelines.resume(run_id, isolation="inline").status is PipelineStatus.SUCCEEDED
    third = platform.get_run(platform.pipelines.get(run_id).experiment_run or "")
    assert third.id != second.id
    assert third.status is RunStatus.FINISHED
    assert third.metrics == {"auc": 0.9, "loss": 0.2, "recall": 0.6}


def test_a_resume_that_dies_once_it_drives_the_run_reads_back_failed_not_stopped(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run was stopped on request; the process resuming it dies right after the run names it
    as its driver. The earlier request was carried out, so the run reads back as interrupted
    (failed), not as stopped on that request."""
    import subprocess

    from mintaka.processes import ProcessId

    marker = tmp_path / "stop"

    def interrupt(event: StepEvent) -> None:
        if (event.step, event.status) == ("produce", "succeeded"):
            marker.write_text("{}")  # a stop asked for, carried out as Ctrl-C
            raise KeyboardInterrupt

    executor = local_executor.LocalExecutor(platform, isolation="inline", on_event=interrupt)
    with pytest.raises(KeyboardInterrupt):
        executor.run(two_steps(), stop_marker=marker)
    (run,) = platform.pipelines.runs()
    assert run.status is PipelineStatus.STOPPED
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    monkeypatch.setattr(local_executor, "this_process", lambda: ProcessId(pid=ended.pid))

    def dies(self: object, state: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(local_executor.LocalExecutor, "_supersede_experiment_run", dies)
    with pytest.raises(SystemExit):
        local_executor.LocalExecutor(platform, isolation="inline").resume(run.id)
    after = platform.pipelines.get(run.id).run
    assert after.status is PipelineStatus.FAILED
    assert (after.failure_reason or "").startswith("interrupted")


def test_what_the_steps_after_the_register_step_measure_is_the_pipeline_runs(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    """The experiment run a model version was registered from stays as it was registered and
    ends finished with the run; what the steps after the register step measure is in the
    pipeline run's step outputs."""
    run = platform.pipelines.run(
        registered_then_measured(make_artifact(b"weights")), isolation="inline"
    )
    assert run.status is PipelineStatus.SUCCEEDED
    experiment = platform.get_run(platform.pipelines.get(run.id).experiment_run or "")
    assert experiment.status is RunStatus.FINISHED
    assert experiment.metrics == {"auc": 0.9, "loss": 0.2}
    version = platform.get_model_version("credit", 1)
    assert version.run_id == experiment.id
    assert version.metrics == {"auc": 0.9, "loss": 0.2}
    evaluate = next(s for s in platform.pipelines.get(run.id).run.steps if s.name == "evaluate")
    assert evaluate.outputs["metrics"] == {"auc": 0.9, "recall": 0.6}


def test_a_metric_measured_after_the_register_step_leaves_the_versions_run_as_it_was(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    """A step after the register step measures ``auc`` again: the run the version was
    registered from keeps the ``auc`` the version was registered with."""
    spec = PipelineSpec(
        name="registered-then-remeasured",
        parameters={"model": str(make_artifact(b"weights")), "name": "credit", "flavor": "opaque"},
        steps=[
            StepSpec(name="train", entrypoint=f"{STEPS}:trains"),
            StepSpec(
                name="register",
                entrypoint="mintaka.pipelines.builtins:register_model",
                depends_on=["train"],
                inputs={"model": "params.model", "name": "params.name", "flavor": "params.flavor"},
            ),
            StepSpec(name="shadow-eval", entrypoint=f"{STEPS}:measures", depends_on=["register"]),
        ],
    )
    run = platform.pipelines.run(spec, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    version = platform.get_model_version("credit", 1)
    assert platform.get_run(version.run_id or "").metrics == {"auc": 0.9, "loss": 0.2}
    assert run.steps[2].outputs["metrics"] == {"auc": 0.8, "loss": 0.3}


def test_a_dataset_recorded_after_the_register_step_is_not_the_versions_training_data(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    """A step after the register step records a dataset (a scoring batch as a monitoring
    reference): the pipeline run records it, the run the version was trained in does not."""
    train = tmp_path / "train.csv"
    train.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    batch = tmp_path / "batch.csv"
    batch.write_text("x,y\n" + "".join(f"{i * 3},{i % 2}\n" for i in range(50)))
    register_dataset = "mintaka.pipelines.builtins:register_dataset"
    spec = PipelineSpec(
        name="registered-then-ingested",
        parameters={
            "train": str(train),
            "batch": str(batch),
            "model": str(make_artifact(b"weights")),
            "name": "credit",
            "flavor": "opaque",
        },
        steps=[
            StepSpec(
                name="ingest",
                entrypoint=register_dataset,
                inputs={"path": "params.train", "name": "params.name"},
            ),
            StepSpec(name="train", entrypoint=f"{STEPS}:trains", depends_on=["ingest"]),
            StepSpec(
                name="register",
                entrypoint="mintaka.pipelines.builtins:register_model",
                depends_on=["train"],
                inputs={"model": "params.model", "name": "params.name", "flavor": "params.flavor"},
            ),
            StepSpec(
                name="ingest-batch",
                entrypoint=register_dataset,
                depends_on=["register"],
                inputs={"path": "params.batch", "name": "params.name"},
            ),
        ],
    )
    run = platform.pipelines.run(spec, isolation="inline")
    assert run.status is PipelineStatus.SUCCEEDED
    trained_on, later = run.steps[0].outputs["dataset_id"], run.steps[3].outputs["dataset_id"]
    version = platform.get_model_version("credit", 1)
    assert platform.get_run(version.run_id or "").dataset_ids == (trained_on,)
    assert platform.pipelines.get(run.id).datasets == [trained_on, later]
    made_from_batch = platform.lineage_downstream(f"dataset:{later}").edges
    assert not [e for e in made_from_batch if e.kind is EdgeKind.TRAINED_ON]
    made_from_train = platform.lineage_downstream(f"dataset:{trained_on}").edges
    assert [e.dst for e in made_from_train if e.kind is EdgeKind.TRAINED_ON] == [
        f"run:{version.run_id}"
    ]


def test_a_run_a_version_was_registered_from_ends_finished_when_the_register_step_fails_after(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The register step registers the version, then fails to write its lineage: the run the
    version was registered from ends finished, as that version's training run."""
    spec = PipelineSpec(
        name="registered-then-failed",
        parameters={"model": str(make_artifact(b"weights")), "name": "credit", "flavor": "opaque"},
        steps=[
            StepSpec(name="train", entrypoint=f"{STEPS}:trains"),
            StepSpec(
                name="register",
                entrypoint="mintaka.pipelines.builtins:register_model",
                depends_on=["train"],
                inputs={"model": "params.model", "name": "params.name", "flavor": "params.flavor"},
            ),
        ],
    )
    add = platform.lineage.add

    def failing_add(conn: Any, nodes: Any, edges: Any) -> Any:
        if any(
            e.src.startswith("pipeline_run:") and e.dst.startswith("model_version:") for e in edges
        ):
            raise OSError("disk full")
        return add(conn, nodes, edges)

    monkeypatch.setattr(platform.lineage, "add", failing_add)
    with pytest.raises(PipelineFailed):
        platform.pipelines.run(spec, isolation="inline")
    version = platform.get_model_version("credit", 1)
    assert platform.get_run(version.run_id or "").status is RunStatus.FINISHED
