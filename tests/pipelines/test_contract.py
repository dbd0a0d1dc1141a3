"""A pipeline whose steps do not fit together fails before anything runs."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from mintaka import Platform, ValidationError
from mintaka.domain.pipelines import PipelineSpec, StepSpec
from mintaka.pipelines.contract import PipelineSpecError, path_field, refuse_controller_step

STEPS = "pipeline_steps"


def spec(*steps: StepSpec, **parameters: str | int | float | bool) -> PipelineSpec:
    return PipelineSpec(name="p", parameters=parameters or {"n": 3}, steps=list(steps))


def produce(**inputs: str) -> StepSpec:
    return StepSpec(
        name="produce", entrypoint=f"{STEPS}:produce", inputs=inputs or {"n": "params.n"}
    )


def consume(**inputs: str) -> StepSpec:
    wired = inputs or {"file": "produce.file", "total": "produce.total"}
    return StepSpec(name="consume", entrypoint=f"{STEPS}:consume", inputs=wired)


def assert_nothing_ran(platform: Platform) -> None:
    assert platform.pipelines.runs() == []
    assert not any(e.action.startswith("pipeline.") for e in platform.audit.events())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: spec(produce(n="params.missing")), "reads parameter 'missing'"),
        (lambda: spec(consume(), produce(), consume()), "duplicate step names"),
        (lambda: spec(produce(n="nowhere.x")), "unknown steps ['nowhere']"),
        (lambda: spec(produce(n="n")), "use params.NAME or STEP.FIELD"),
        (
            lambda: spec(
                StepSpec(name="a", entrypoint=f"{STEPS}:consume", inputs={"file": "b.file"}),
                StepSpec(name="b", entrypoint=f"{STEPS}:produce", inputs={"n": "a.doubled"}),
            ),
            "form a cycle",
        ),
    ],
)
def test_the_spec_refuses_bad_wiring_on_construction(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(pydantic.ValidationError) as raised:
        build()
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (spec(produce(), consume(total="produce.total")), "input 'file' (Path) is not wired"),
        (spec(produce(n="params.n", extra="params.n")), "wires 'extra', which ProduceInputs lacks"),
        (spec(produce(), n="seven"), "input 'n' expects int, parameter 'n' is 'seven'"),
        (
            spec(
                StepSpec(name="text", entrypoint=f"{STEPS}:text"),
                produce(n="text.text"),
            ),
            "input 'n' expects int, text.text is str",
        ),
        (
            spec(produce(), consume(file="produce.nothing", total="produce.total")),
            "reads produce.nothing, which ProduceOutputs does not produce",
        ),
        (spec(StepSpec(name="u", entrypoint=f"{STEPS}:untyped")), "must be annotated"),
        (spec(StepSpec(name="m", entrypoint="no_such_module_here:f")), "cannot import"),
        (
            spec(
                StepSpec(
                    name="g",
                    entrypoint=f"{STEPS}:produce",
                    inputs={"n": "params.n"},
                    gate="evaluation",
                )
            ),
            "is a evaluation gate but returns ProduceOutputs, not a GateOutcome",
        ),
    ],
)
def test_a_contract_mismatch_fails_before_the_run_starts(
    platform: Platform, pipeline: PipelineSpec, message: str
) -> None:
    with pytest.raises(PipelineSpecError) as raised:
        platform.pipelines.run(pipeline, isolation="inline")
    assert message in str(raised.value)
    assert_nothing_ran(platform)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def produce(:\n", "SyntaxError"),
        ("raise RuntimeError('config missing')\n", "RuntimeError: config missing"),
    ],
    ids=["syntax-error", "raises-at-top-level"],
)
def test_a_step_module_that_fails_at_import_is_a_spec_error(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, message: str
) -> None:
    (tmp_path / "failing_at_import_steps.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    step = StepSpec(name="p", entrypoint="failing_at_import_steps:produce")
    with pytest.raises(PipelineSpecError, match="'failing_at_import_steps:produce': cannot import"):
        platform.pipelines.run(spec(step), isolation="inline")
    with pytest.raises(PipelineSpecError, match=message):
        platform.pipelines.bind("m", spec(step))
    assert_nothing_ran(platform)


@pytest.mark.parametrize(
    "entrypoint",
    [
        f"{STEPS}:announce",
        "mintaka.pipelines.gates:validate_data",
        "mintaka.pipelines.builtins:register_dataset",
    ],
    ids=["user-step", "builtin-gate", "builtin"],
)
def test_every_controller_step_is_refused_in_a_cloud_pipeline(entrypoint: str) -> None:
    step = StepSpec(name="ctl", entrypoint=entrypoint)
    with pytest.raises(ValidationError, match=r"\[cloud\] step 'ctl' runs .*control plane"):
        refuse_controller_step(step, "cloud", "Cloud")


@pytest.mark.parametrize("entrypoint", [f"{STEPS}:produce", "module_only_the_cloud_image_has:fit"])
def test_computing_steps_and_natively_compiled_ones_are_not_refused(entrypoint: str) -> None:
    refuse_controller_step(StepSpec(name="s", entrypoint=entrypoint), "cloud", "Cloud")
    native = StepSpec(name="ctl", entrypoint=f"{STEPS}:announce")
    refuse_controller_step(native, "cloud", "Cloud", frozenset({native.entrypoint}))


def test_unknown_parameters_are_refused(platform: Platform) -> None:
    with pytest.raises(ValidationError, match=r"declares no parameters \['m'\]"):
        platform.pipelines.run(spec(produce()), {"m": 1}, isolation="inline")
    assert_nothing_ran(platform)


@pytest.mark.parametrize(
    ("annotation", "value", "digested"),
    [
        (Path | None, "a", "<a>"),
        (list[Path] | None, ["a", "b"], ["<a>", "<b>"]),
        (tuple[Path, ...], ["a"], ["<a>"]),
        (dict[str, list[Path]], {"k": ["a"]}, {"k": ["<a>"]}),
        (list[Path], None, None),
    ],
)
def test_each_path_in_a_field_is_mapped_where_it_sits(
    annotation: object, value: object, digested: object
) -> None:
    shape = path_field(annotation)
    assert shape is not None
    assert shape.map(value, lambda path: f"<{path}>") == digested


@pytest.mark.parametrize("annotation", [int, list[int], dict[str, str] | None])
def test_fields_without_paths_have_no_path_shape(annotation: object) -> None:
    assert path_field(annotation) is None


def test_a_computing_step_holding_paths_in_a_set_is_refused(platform: Platform) -> None:
    step = StepSpec(name="count", entrypoint=f"{STEPS}:unordered")
    with pytest.raises(PipelineSpecError, match=r"input 'files': a set\[Path\] holds paths"):
        platform.pipelines.run(spec(step), isolation="inline")
    assert_nothing_ran(platform)


def test_every_problem_is_reported_at_once(platform: Platform) -> None:
    bad = spec(produce(), consume(total="produce.total"), n="seven")
    with pytest.raises(PipelineSpecError) as raised:
        platform.pipelines.run(bad, isolation="inline")
    assert "expects int" in str(raised.value)
    assert "is not wired" in str(raised.value)


def test_a_spec_file_with_bad_wiring_is_a_mintaka_validation_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mintaka.pipelines.service import load_spec

    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\n[[steps]]\nname = "a"\nentrypoint = "m:f"\ninputs = {x = "params.nope"}\n'
    )
    with pytest.raises(ValidationError, match="reads parameter 'nope'"):
        load_spec(path)


def test_a_spec_file_that_cannot_be_read_is_a_mintaka_validation_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mintaka.pipelines.service import load_spec

    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ValidationError, match="is not UTF-8 text"):
        load_spec(latin1)
    with pytest.raises(ValidationError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(ValidationError, match="is not a file"):
        load_spec(tmp_path)
