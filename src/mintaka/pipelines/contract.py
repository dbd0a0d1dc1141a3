"""Step contracts: what a step callable takes and returns, checked before a run starts.

A step is ``def step(inputs: SomeInputs[, ctx: StepContext]) -> SomeOutputs`` where both models
are pydantic. :func:`check_spec` imports every entrypoint and verifies the wiring of the whole
pipeline: every required input field is wired, every wired field exists, a parameter's value
validates as the field's type, and an upstream output's type fits the input it feeds. A mismatch is
a :class:`PipelineSpecError` before any step runs.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from mintaka.domain.pipelines import GateOutcome, PipelineSpec, StepSpec
from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.platform import Platform


class PipelineSpecError(ValidationError):
    """A pipeline whose steps do not fit together: found before the run starts."""


CONTROLLER_ATTRIBUTE = "__mintaka_controller_step__"

F = typing.TypeVar("F", bound=Callable[..., Any])


def controller_step(fn: F) -> F:
    """Mark a step that runs in the controller process with the platform at hand (registering a
    dataset or a model, deploying): it is never cached, and it must be idempotent."""
    setattr(fn, CONTROLLER_ATTRIBUTE, True)
    return fn


def refuse_controller_step(
    step: StepSpec, backend: str, job: str, native: frozenset[str] = frozenset()
) -> None:
    """Refuse a controller step (Mintaka's or a user's own ``@controller_step``) in a pipeline
    compiled for a cloud ``backend``: it acts on Mintaka's control plane from the process running
    the pipeline, which a cloud ``job`` is not. Entry points in ``native`` are exempt: the backend
    compiles them to a native equivalent."""
    if step.entrypoint in native or not _is_controller(step.entrypoint):
        return
    raise ValidationError(
        f"[{backend}] step {step.name!r} runs {step.entrypoint}, which acts on Mintaka's "
        f"control plane and cannot run as a {job} job; run this pipeline with the local "
        f"executor, or leave that step out of the {job} pipeline"
    )


def _is_controller(entrypoint: str) -> bool:
    """Whether ``entrypoint`` names a ``@controller_step``. A module that does not import here is
    computing code for the cloud's own environment, so it is not taken for one."""
    module, _, function = entrypoint.partition(":")
    try:
        target = getattr(importlib.import_module(module), function, None)
    except Exception:  # a dependency only the cloud's image has, or code failing at import
        return False
    return bool(getattr(target, CONTROLLER_ATTRIBUTE, False))


@dataclass
class StepContext:
    """What a step gets besides its inputs."""

    pipeline: str
    run_id: str
    step: str
    workdir: Path
    platform: Platform | None = None
    experiment_run: Callable[[], str] | None = None
    wait: Callable[[float], None] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def require_platform(self) -> Platform:
        if self.platform is None:
            raise ValidationError(f"step {self.step!r} needs the platform: mark it controller_step")
        return self.platform


@dataclass(frozen=True)
class StepContract:
    entrypoint: str
    fn: Callable[..., BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    controller: bool
    takes_context: bool
    code_digest: str

    @property
    def is_gate(self) -> bool:
        return issubclass(self.output_model, GateOutcome)

    def schema(self) -> dict[str, Any]:
        """The shape of the step's input and output models (see :func:`model_schema`)."""
        return {
            "inputs": model_schema(self.input_model),
            "outputs": model_schema(self.output_model),
        }

    def path_fields(self, model: type[BaseModel]) -> dict[str, PathField]:
        """The fields of ``model`` that hold paths, and where the paths sit in their values."""
        found = {}
        for name, info in model.model_fields.items():
            shape = path_field(info.annotation)
            if shape is not None:
                found[name] = shape
        return found


@dataclass(frozen=True)
class PathField:
    """Where the paths sit in a field's JSON value: the value itself (``Path``), each item of a
    list (``list[Path]``, ``tuple[Path, ...]``) or each value of a mapping (``dict[str, Path]``),
    nested as the annotation nests them. Each path is digested for the cache as a single
    ``Path`` field is."""

    kind: Literal["path", "items", "values"]
    inner: PathField | None = None

    def map(self, value: Any, fn: Callable[[str], Any]) -> Any:
        """``value`` (JSON, as ``model_dump(mode="json")`` gives it) with ``fn`` of each path."""
        if value is None:
            return None
        if self.kind == "path" or self.inner is None:
            return fn(value)
        if self.kind == "items":
            return [self.inner.map(item, fn) for item in value]
        return {key: self.inner.map(item, fn) for key, item in value.items()}


_SEQUENCES = (list, tuple, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Each field of ``model`` with its type, default (or default factory), alias and
    constraints, and the same of every model its fields' types name, by qualified name: what a
    step's cache key takes of its models, wherever they are defined, so a field added (with a
    default or not), retyped or given another default is a miss. Written as text without memory
    addresses, so the same models give the same schema in every process."""
    found: dict[str, Any] = {}
    pending = [model]
    while pending:
        current = pending.pop()
        name = f"{current.__module__}.{current.__qualname__}"
        if name in found:
            continue
        fields: dict[str, dict[str, str | None]] = {}
        for field_name, info in current.model_fields.items():
            if info.default_factory is not None:
                default = "factory " + _factory_digest(info.default_factory)
            elif info.is_required():
                default = None
            else:
                default = _canonical(info.default)
            fields[field_name] = {
                "type": _plain(info.annotation),
                "default": default,
                "alias": info.alias,
                "constraints": _canonical(info.metadata) if info.metadata else None,
            }
            pending.extend(_models_named_by(info.annotation))
        found[name] = fields
    return found


def _plain(value: Any) -> str:
    return _ADDRESS.sub("", repr(value))


def _canonical(value: Any) -> str:
    """``value`` as canonical JSON text: the same value gives the same text in every process,
    whatever its hash seed (a set's items are sorted, a mapping's keys too)."""
    return json.dumps(_data(value), sort_keys=True, separators=(",", ":"))


def _data(value: Any) -> Any:
    """``value`` as JSON data that does not depend on iteration order where the value has none;
    an object JSON cannot hold is named by its type, and by its ``repr`` without addresses."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (set, frozenset)):
        items = [_data(item) for item in value]
        return {"set": sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(value, Mapping):
        pairs = [[_data(k), _data(v)] for k, v in value.items()]
        return {"mapping": sorted(pairs, key=lambda pair: json.dumps(pair, sort_keys=True))}
    if isinstance(value, (list, tuple)):
        return [_data(item) for item in value]
    if isinstance(value, BaseModel):
        return {_type_name(type(value)): _data(value.model_dump())}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = {f.name: _data(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_type_name(type(value)): found}
    if isinstance(value, type) or callable(value):
        return {"callable": _type_name(value)}
    try:
        plain = to_jsonable_python(value)
    except (PydanticSerializationError, TypeError, ValueError):
        return {_type_name(type(value)): _plain(value)}
    if isinstance(plain, (set, frozenset, Mapping, list, tuple)):
        return {_type_name(type(value)): _data(plain)}
    return {_type_name(type(value)): plain}


def _type_name(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{getattr(obj, '__module__', '')}.{qualname}"


def _factory_digest(factory: Any) -> str:
    """A default factory, by what it does: a function by its name and its code (the bytecode,
    constants and names it uses, nested code included), a ``functools.partial`` by its function
    and arguments, anything else (a class such as ``list``) by its name. A factory whose body
    changes gives another digest, and the same factory the same one in every process."""
    return "sha256:" + hashlib.sha256(_canonical(_factory_data(factory)).encode()).hexdigest()


def _factory_data(factory: Any) -> Any:
    if isinstance(factory, functools.partial):
        return {
            "partial": _factory_data(factory.func),
            "args": _data(factory.args),
            "keywords": _data(factory.keywords),
        }
    code = getattr(factory, "__code__", None)
    data: dict[str, Any] = {"name": _type_name(factory)}
    if isinstance(code, types.CodeType):
        data["code"] = _code_data(code)
        data["defaults"] = _data(getattr(factory, "__defaults__", None))
    return data


def _code_data(code: types.CodeType) -> Any:
    consts = [
        _code_data(const) if isinstance(const, types.CodeType) else _data(const)
        for const in code.co_consts
    ]
    return {"bytecode": code.co_code.hex(), "consts": consts, "names": list(code.co_names)}


def _models_named_by(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_named_by(arg)]


def path_field(annotation: Any) -> PathField | None:
    """Where ``annotation`` holds paths (``None``: it holds none); a ``PipelineSpecError`` for a
    type that holds paths in a way the executor cannot digest (a set, a fixed-size tuple)."""
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return PathField("path")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return path_field(args[0])
    if _is_union(annotation):
        if any(isinstance(a, type) and issubclass(a, PurePath) for a in args):
            return PathField("path")  # Path | None, or a text that names a path (Path | str)
        shapes = {path_field(a) for a in args if a is not type(None)}
        if shapes == {None}:
            return None
        if len(shapes) == 1:
            return shapes.pop()
    elif origin in _SEQUENCES and (origin is not tuple or (len(args) == 2 and args[1] is ...)):
        inner = path_field(args[0]) if args else None
        return None if inner is None else PathField("items", inner)
    elif origin in _MAPPINGS and len(args) == 2:
        inner = path_field(args[1])
        return None if inner is None else PathField("values", inner)
    elif not _mentions_path(annotation):
        return None
    written = str(annotation).replace("typing.", "").replace("pathlib.", "")
    raise PipelineSpecError(
        f"a {written} holds paths the executor cannot digest: use Path, list[Path], "
        "tuple[Path, ...] or dict[str, Path] (or nest those)"
    )


def _mentions_path(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return True
    return any(_mentions_path(a) for a in typing.get_args(annotation))


def _model_of(annotation: Any, what: str, entrypoint: str) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    raise PipelineSpecError(f"step {entrypoint!r}: its {what} must be a pydantic model")


_CACHE: dict[str, StepContract] = {}


def load_step(entrypoint: str) -> StepContract:
    """Import ``module:function`` and read its typed contract."""
    module_name, _, function = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a missing module, or its code fails at import (syntax, top level)
        detail = f"{type(exc).__name__}: {exc}"
        raise PipelineSpecError(f"step entrypoint {entrypoint!r}: cannot import: {detail}") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise PipelineSpecError(f"step entrypoint {entrypoint!r}: no callable {function!r}")
    digest = _code_digest(fn, getattr(module, "__file__", None), entrypoint)
    cached = _CACHE.get(entrypoint)
    if cached is not None and cached.code_digest == digest and cached.fn is fn:
        return cached
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an annotation that does not resolve
        raise PipelineSpecError(f"step {entrypoint!r}: unresolvable annotations: {exc}") from exc
    parameters = list(inspect.signature(fn).parameters)
    if not parameters or parameters[0] not in hints or "return" not in hints:
        raise PipelineSpecError(
            f"step {entrypoint!r} must be annotated: def step(inputs: Model[, ctx]) -> Model"
        )
    contract = StepContract(
        entrypoint=entrypoint,
        fn=fn,
        input_model=_model_of(hints[parameters[0]], "input", entrypoint),
        output_model=_model_of(hints["return"], "return type", entrypoint),
        controller=bool(getattr(fn, CONTROLLER_ATTRIBUTE, False)),
        takes_context=len(parameters) > 1,
        code_digest=digest,
    )
    _CACHE[entrypoint] = contract
    return contract


def _code_digest(fn: Callable[..., Any], module_file: str | None, entrypoint: str) -> str:
    """The digest of a step's code: the source of the function itself (through any
    ``functools.wraps`` decorators) and of every module a decorator around it lives in, so a
    change to either is a cache miss. A step with no source file is digested by its name."""
    files = _source_files(fn) or ([Path(module_file)] if module_file else [])
    codes = [f.read_bytes() for f in files if f.is_file()]
    if not codes:
        return "sha256:" + hashlib.sha256(entrypoint.encode()).hexdigest()
    if len(codes) == 1:
        return "sha256:" + hashlib.sha256(codes[0]).hexdigest()
    parts = "\n".join(hashlib.sha256(code).hexdigest() for code in codes)
    return "sha256:" + hashlib.sha256(parts.encode()).hexdigest()


def _source_files(fn: Callable[..., Any]) -> list[Path]:
    """The source files of ``fn`` unwrapped first, then of each wrapper around it (outermost
    first), each once; a layer with no Python source (a builtin, a callable object) adds none."""
    chain: list[Any] = [fn]
    while hasattr(chain[-1], "__wrapped__") and len(chain) <= sys.getrecursionlimit():
        inner = chain[-1].__wrapped__
        if any(inner is seen for seen in chain):
            break
        chain.append(inner)
    files: list[Path] = []
    for layer in [chain[-1], *chain[:-1]]:
        try:
            source = inspect.getsourcefile(layer)
        except TypeError:
            continue
        if source and Path(source) not in files:
            files.append(Path(source))
    return files


def _fits(source: Any, target: Any) -> bool:
    """Whether a value typed ``source`` is acceptable where ``target`` is expected."""
    if target is Any or source == target:
        return True
    target_args = set(typing.get_args(target)) if _is_union(target) else {target}
    source_args = set(typing.get_args(source)) if _is_union(source) else {source}
    if Any in target_args:
        return True
    return all(any(_fits_one(s, t) for t in target_args) for s in source_args)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _fits_one(source: Any, target: Any) -> bool:
    if source == target:
        return True
    if source is int and target is float:
        return True
    if isinstance(source, type) and isinstance(target, type):
        return issubclass(source, target)
    source_origin, target_origin = typing.get_origin(source), typing.get_origin(target)
    if source_origin is not None and source_origin == target_origin:
        return all(
            _fits(s, t)
            for s, t in zip(typing.get_args(source), typing.get_args(target), strict=False)
        )
    return False


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def merged_parameters(spec: PipelineSpec, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec's parameters overridden by ``parameters``, which must all be declared, each
    coerced to the type the spec declares it with (see :func:`typed_parameter`); a default of
    the spec's own is checked the same way (a float default that is not finite is refused)."""
    unknown = sorted(set(parameters or {}) - set(spec.parameters))
    if unknown:
        raise ValidationError(f"pipeline {spec.name!r} declares no parameters {unknown}")
    merged = {**spec.parameters, **dict(parameters or {})}
    return {name: typed_parameter(spec, name, value) for name, value in merged.items()}


def typed_parameter(spec: PipelineSpec, name: str, value: Any) -> str | int | float | bool:
    """``value`` for parameter ``name`` as the type of the spec's default for it (``seed = 7``
    declares an int): ``"7"`` is the int 7, ``"true"`` the bool ``True`` (a bool takes
    ``true`` or ``false`` in any case, and no other text or number), ``1`` the float 1.0 of
    a float parameter, and ``2024`` the text ``"2024"`` of a text parameter (as a submit always
    made of it, so a binding stored with a number still runs). Every executor then hands a step
    the same value, whether it was given as text (a submitted run's parameters are text) or
    typed. A value that is not of that type is a ``ValidationError`` naming the parameter and the
    type."""
    declared = type(spec.parameters[name])
    typed = _typed_as(declared, value)
    if typed is None:
        raise ValidationError(
            f"pipeline {spec.name!r}: parameter {name!r} is declared as {declared.__name__} "
            f"(default {spec.parameters[name]!r}); {_shown(value)} is not one"
        )
    refuse_text_not_unicode(f"parameter {name!r} of pipeline {spec.name!r}", typed)
    return typed


def refuse_text_not_unicode(what: str, value: Any) -> None:
    """Refuse ``value`` (``what`` names it) when it holds text that is not Unicode (a lone
    surrogate, as ``os.listdir`` reads a file name that is not UTF-8): a run's record is UTF-8
    JSON and could not hold it."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} holds text that is not Unicode ({exc.object[exc.start : exc.end]!r}, as "
            "os.listdir reads a file name that is not UTF-8), which has no UTF-8 JSON to record: "
            "give it as text that is"
        ) from exc


def unmeasured_metrics(result: BaseModel) -> list[str]:
    """The names of the metrics among a step's outputs that are not finite numbers, read from
    the outputs themselves (their JSON has made a NaN under an untyped field ``null``): None (a
    NaN an older Mintaka cached as ``null``), text, a list or a bool is no measurement either."""
    from mintaka.platform import nonfinite_metrics

    metrics = result.model_dump().get("metrics")
    if not isinstance(metrics, dict):
        return []
    numbers = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return sorted({*nonfinite_metrics(numbers), *(k for k in metrics if k not in numbers)})


def refuse_unmeasured_metrics(step: str, result: BaseModel) -> None:
    """Refuse the outputs of ``step`` when a metric among them is no measurement (see
    :func:`unmeasured_metrics`): the step fails naming it, on every executor and step runner."""
    unmeasured = unmeasured_metrics(result)
    if unmeasured:
        raise ValidationError(
            f"step {step!r} reported metrics that are not finite numbers (NaN, "
            f"infinity, beyond a float's range, or none at all): {unmeasured}"
        )


def _typed_as(declared: type, value: Any) -> str | int | float | bool | None:
    """``value`` as a parameter of type ``declared`` (see :func:`typed_parameter`), or None if
    it is not one: an int too long to be written as text (Python's limit on the digits of an
    int's text) is none either, since every backend and the audit are given its text."""
    if isinstance(value, bool) and declared is not bool:  # True is no number and no text
        return None
    if declared is bool and not isinstance(value, bool) and not _is_bool_text(value):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # no number, nor its text
        return None
    try:
        if declared is str and isinstance(value, int | float):
            value = str(value)
        typed: str | int | float | bool = _PARAMETER_TYPES[declared].validate_python(value)
        parameter_text(typed)
    except ValueError:  # pydantic's refusal, or an int over the digits its text may have
        return None
    if isinstance(typed, float) and not math.isfinite(typed):
        return None
    return typed


def _is_bool_text(value: Any) -> bool:
    """Whether ``value`` is a bool's text: ``true`` or ``false`` in any case, nothing else."""
    return isinstance(value, str) and value.lower() in ("true", "false")


def _shown(value: Any) -> str:
    """``value`` as an error message shows it (an int too long for its text, by its size)."""
    try:
        return repr(value)
    except ValueError:
        return f"an int of over {sys.get_int_max_str_digits()} digits"


_LEGACY_BOOLS = {
    **dict.fromkeys(("true", "1", "yes", "y", "on", "t"), True),
    **dict.fromkeys(("false", "0", "no", "n", "off", "f"), False),
}


def stored_parameters(spec: PipelineSpec, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` as a binding stored them, a bool parameter's value in a spelling an older
    binding may hold read as the bool it meant: bindings stored before values were coerced hold
    a value as given, and bind then took any bool pydantic's lax mode reads (``1``, ``"yes"``,
    ``"on"``, ...). Anything else is left as stored, for :func:`typed_parameter` to check; input
    given now stays strict (``true`` or ``false`` only)."""
    return {name: _stored_value(spec, name, value) for name, value in parameters.items()}


def _stored_value(spec: PipelineSpec, name: str, value: Any) -> Any:
    if name not in spec.parameters or type(spec.parameters[name]) is not bool:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        return _LEGACY_BOOLS.get(value.lower(), value)
    return value


def parameter_text(value: str | int | float | bool) -> str:
    """A parameter's value as the text a backend is given (a job or pipeline parameter): text
    as it is, anything else as JSON (``7``, ``0.5``, ``true``), which reads back as the same
    value of the declared type."""
    return value if isinstance(value, str) else json.dumps(value)


_PARAMETER_TYPES: dict[type, TypeAdapter[Any]] = {
    kind: TypeAdapter(kind) for kind in (str, int, float, bool)
}


def check_spec(spec: PipelineSpec, parameters: Mapping[str, Any]) -> dict[str, StepContract]:
    """Every step's contract, once the whole pipeline's wiring is checked."""
    contracts: dict[str, StepContract] = {}
    problems: list[str] = []
    for step in spec.order():
        contract = load_step(step.entrypoint)
        contracts[step.name] = contract
        problems += _check_step(step, contract, contracts, parameters)
        if not contract.controller:  # a computing step's paths are digested for its cache
            problems += _path_problems(step, contract)
        if step.gate is not None and not contract.is_gate:
            problems.append(
                f"step {step.name!r} is a {step.gate.value} gate but returns "
                f"{contract.output_model.__name__}, not a GateOutcome"
            )
    if problems:
        raise PipelineSpecError(f"pipeline {spec.name!r}: " + "; ".join(problems))
    return contracts


def _check_step(
    step: StepSpec,
    contract: StepContract,
    contracts: Mapping[str, StepContract],
    parameters: Mapping[str, Any],
) -> list[str]:
    problems = []
    fields = contract.input_model.model_fields
    wired = step.references()
    for name in sorted(set(wired) - set(fields)):
        problems.append(
            f"step {step.name!r} wires {name!r}, which {contract.input_model.__name__} lacks"
        )
    for name, info in fields.items():
        if name not in wired:
            if info.is_required():
                problems.append(
                    f"step {step.name!r}: input {name!r} ({_name(info.annotation)}) is not wired"
                )
            continue
        source, value = wired[name]
        if source == "params":
            try:
                TypeAdapter(info.annotation or Any).validate_python(parameters[value])
            except PydanticValidationError:
                problems.append(
                    f"step {step.name!r}: input {name!r} expects {_name(info.annotation)}, "
                    f"parameter {value!r} is {parameters[value]!r}"
                )
            continue
        upstream = contracts[source]
        produced = upstream.output_model.model_fields.get(value)
        if produced is None:
            problems.append(
                f"step {step.name!r}: input {name!r} reads {source}.{value}, which "
                f"{upstream.output_model.__name__} does not produce"
            )
        elif not _fits(produced.annotation, info.annotation):
            problems.append(
                f"step {step.name!r}: input {name!r} expects {_name(info.annotation)}, "
                f"{source}.{value} is {_name(produced.annotation)}"
            )
    return problems


def _path_problems(step: StepSpec, contract: StepContract) -> list[str]:
    problems = []
    for what, model in (("input", contract.input_model), ("output", contract.output_model)):
        for name, info in model.model_fields.items():
            try:
                path_field(info.annotation)
            except PipelineSpecError as exc:
                problems.append(f"step {step.name!r}: {what} {name!r}: {exc}")
    return problems
