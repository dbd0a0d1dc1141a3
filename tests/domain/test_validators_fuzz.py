"""Fuzzing the validators and parsers that guard every write and every cloud call.

Each validator is checked against an independent statement of its rule (written without its
regular expression), must refuse with a documented error and nothing else, and must give back
what it accepted. Accepted names must also satisfy the clouds' own rules that the intersection
in ``mintaka.domain.names`` is meant to cover. Hypothesis runs derandomised, so CI is repeatable.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
from artifact_kit import MakeArtifact
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mintaka.config import MintakaConfig, load_config, write_config
from mintaka.domain.lineage import NodeKind
from mintaka.domain.names import (
    RESERVED_ALIASES,
    parse_model_ref,
    validate_alias,
    validate_dataset_name,
    validate_endpoint_name,
    validate_model_name,
    validate_tag,
    validate_version,
)
from mintaka.domain.serving import TrafficMap, TrafficPlan
from mintaka.errors import ConfigurationError, InvalidName, MintakaError, ValidationError
from mintaka.lineage.graph import split_node_id
from mintaka.platform import Platform, _parse
from mintaka.store.schema import metadata

FUZZ = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("mintaka-fuzz", FUZZ)

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # plus: at most 63 chars
VERTEX_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")
LOWER = string.ascii_lowercase
ALNUM = LOWER + string.digits

# -- independent statements of the rules ------------------------------------------------------


def _dashed(value: object, shortest: int, longest: int) -> bool:
    """Lower-case letters, digits and single dashes; a letter first, no dash last."""
    return (
        isinstance(value, str)
        and shortest <= len(value) <= longest
        and value[0] in LOWER
        and value[-1] in ALNUM
        and all(c in ALNUM or c == "-" for c in value)
        and "--" not in value
    )


def model_name_ok(value: object) -> bool:
    return _dashed(value, 1, 63)


def endpoint_name_ok(value: object) -> bool:
    return _dashed(value, 3, 32)


def alias_ok(value: object) -> bool:
    return _dashed(value, 2, 63) and value not in {"latest", "default"}


def tag_ok(key: object, value: object) -> bool:
    key_ok = (
        isinstance(key, str)
        and 1 <= len(key) <= 128
        and (key[0] in string.ascii_letters or key[0] == "_")
        and all(c in string.ascii_letters + string.digits + "_.:/-" for c in key)
    )
    return key_ok and isinstance(value, str) and len(value) <= 256 and value.isprintable()


# Characters that would let a printed name forge a line or read in another order than stored:
# control characters, line and paragraph separators, bidirectional overrides and isolates.
FORGING = {"\u2028", "\u2029", *map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])}


def dataset_name_ok(value: object) -> bool:
    return (
        isinstance(value, str)
        and bool(value.strip())
        and value == value.strip()
        and len(value) <= 256
        and not any(
            ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 or c in FORGING
            for c in value
        )
    )


# -- strategies -------------------------------------------------------------------------------


def dashed_shapes(pieces: int) -> st.SearchStrategy[str]:
    """A letter, then up to ``pieces`` letters or digits each after an optional dash.

    The count is drawn first so that long names are as likely as short ones.
    """
    piece = st.tuples(st.booleans(), st.sampled_from(ALNUM))
    rest = st.integers(0, pieces).flatmap(lambda n: st.lists(piece, min_size=n, max_size=n))
    return st.builds(
        lambda first, rest: first + "".join(("-" if d else "") + c for d, c in rest),
        st.sampled_from(LOWER),
        rest,
    )


def dashed_names(shortest: int, longest: int) -> st.SearchStrategy[str]:
    """Valid names built part by part, long ones (dash after dash) included."""
    return dashed_shapes(longest - 1).filter(lambda s: shortest <= len(s) <= longest)


# Mostly the characters the rules are about, with some of everything else.
# Look-alikes of the allowed characters are written as escapes: dotless i, Arabic-Indic three,
# full-width a.
name_chars = st.sampled_from(
    [*"abcxyz019-", "A", "Z", "_", ".", " ", "\n", "\u00e9", "\u0131", "\u0663", "\uff41"]
)
near_names = st.text(name_chars, max_size=140)
# Well-formed shapes of any length: the length limits are where rules are easiest to get wrong.
any_text = st.one_of(near_names, dashed_shapes(70), st.text(max_size=80))
not_text = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=8), st.tuples()
)
anything = st.one_of(any_text, not_text)


valid_model_names = dashed_names(1, 63)
valid_endpoint_names = dashed_names(3, 32)
valid_aliases = dashed_names(2, 63).filter(lambda s: s not in RESERVED_ALIASES)


def _refuses_only_with(error: type[BaseException], call: Callable[[], Any]) -> tuple[bool, Any]:
    """(accepted, result) for ``call``; any exception other than ``error`` fails the test, and a
    Mintaka error's message is one line, without pydantic's input dump or documentation URL."""
    try:
        return True, call()
    except error as exc:
        if isinstance(exc, MintakaError):
            _check_one_line(str(exc))
        return False, None


def _check_one_line(message: str) -> None:
    assert "\n" not in message
    assert "errors.pydantic.dev" not in message
    assert "input_value=" not in message


# -- names ------------------------------------------------------------------------------------


@FUZZ
@given(anything)
@example("a" + "-b" * 40)  # 81 characters, every dash single
@example("a" * 64)
@example("abc\n")
def test_model_name_validator_matches_its_rule_and_every_cloud(value: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: validate_model_name(value))
    assert accepted == model_name_ok(value), value
    if accepted:
        assert result == value
        assert isinstance(value, str)
        assert SAGEMAKER_NAME.fullmatch(value)
        assert len(value) <= 63  # SageMaker's length limit, beside its pattern
        assert value[0].isalpha()  # Vertex AI resource ids start with a letter


@FUZZ
@given(valid_model_names)
def test_every_well_formed_model_name_is_accepted_unchanged(name: str) -> None:
    assert validate_model_name(name) == name


@FUZZ
@given(anything)
@example("a" + "-b" * 20)  # 41 characters
@example("a" * 33)
@example("ab")
def test_endpoint_name_validator_matches_its_rule_and_azure(value: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: validate_endpoint_name(value))
    assert accepted == endpoint_name_ok(value), value
    if accepted:
        assert isinstance(value, str)
        assert result == value
        assert 3 <= len(value) <= 32  # Azure ML endpoints and deployments
        assert value[0].isalpha()
        assert SAGEMAKER_NAME.fullmatch(value)


@FUZZ
@given(valid_endpoint_names)
def test_every_well_formed_endpoint_name_is_accepted_unchanged(name: str) -> None:
    assert validate_endpoint_name(name) == name


@FUZZ
@given(st.one_of(anything, st.sampled_from(sorted(RESERVED_ALIASES))))
@example("a" + "-b" * 40)
@example("latest")
@example("default")
def test_alias_validator_matches_its_rule_and_vertex(value: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: validate_alias(value))
    assert accepted == alias_ok(value), value
    if accepted:
        assert isinstance(value, str)
        assert result == value
        assert VERTEX_ALIAS.fullmatch(value)
        assert len(value) <= 63


@FUZZ
@given(valid_aliases)
def test_every_well_formed_alias_is_accepted_unchanged(alias: str) -> None:
    assert validate_alias(alias) == alias


tag_keys = st.one_of(
    st.text(st.sampled_from([*"aZ_9.:/-", " ", "=", "é"]), max_size=140),
    st.text(max_size=20),
    not_text,
)
tag_values = st.one_of(st.text(max_size=300), st.text("ab\t\n\x00 ", max_size=5), not_text)


@FUZZ
@given(tag_keys, tag_values)
@example("k" * 128, "v" * 256)
@example("k" * 129, "v")
@example("k", "v" * 257)
def test_tag_validator_matches_its_rule(key: object, value: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: validate_tag(key, value))
    assert accepted == tag_ok(key, value), (key, value)
    if accepted:
        assert result == (key, value)


dataset_names = st.one_of(
    st.text(st.sampled_from([*"ab -_.", *sorted(FORGING), "\u200b", "\u200d", "\t", "\x85"])),
    st.text(max_size=300),
    not_text,
)


@FUZZ
@given(dataset_names)
@example("a\u202eb")
@example("a\u2028b")
@example("a\u2066b")
@example("a\u200db")  # a zero-width joiner spells names in many scripts
@example("bad\udcffname")  # a byte that is not UTF-8, as Python decodes argv and file names
@example(" train")
@example("train\u3000")
@example("d" * 257)
def test_dataset_name_validator_matches_its_rule(value: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: validate_dataset_name(value))
    assert accepted == dataset_name_ok(value), value
    if accepted:
        assert result == value


@pytest.mark.parametrize("padded", [" train", "train ", "train\u2003", "\u00a0train"])
def test_a_dataset_name_with_surrounding_blanks_is_refused_not_read_as_another(
    platform: Platform, tmp_path: Path, padded: str
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    first = platform.register_dataset("train", data)
    with pytest.raises(InvalidName, match="surrounding blanks"):
        platform.register_dataset(padded, data)
    assert platform.list_datasets() == [first]


@pytest.mark.parametrize(
    "name", ["train\u202ecsv.exe", "train\nnote", "train\u2029x", "a\u2067b", "bad\udcffname"]
)
def test_a_dataset_name_that_could_forge_a_printed_line_is_refused_before_anything_is_stored(
    platform: Platform, tmp_path: Path, name: str
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    with pytest.raises(InvalidName, match="dataset name"):
        platform.register_dataset(name, data)
    assert platform.list_datasets() == []


versions = st.one_of(
    st.integers(),
    st.integers(min_value=1, max_value=10**6).map(str),
    st.text(st.sampled_from("0123456789"), max_size=25),
    st.text("0123456789\u0663\u00b2", min_size=1, max_size=4),
    not_text,
    st.text(max_size=5),
)


@FUZZ
@given(versions)
@example("9" * 5000)  # longer than Python converts to int by default
@example(2**64)  # larger than any SQL INTEGER column
@example(True)
@example("0")
@example(" 1")
def test_version_validator_returns_a_storable_positive_int_or_refuses(value: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: validate_version(value))
    if accepted:
        assert type(result) is int
        assert 1 <= result < 2**31  # fits the store's INTEGER column on every database
        assert not isinstance(value, bool)
        assert result == (int(value) if isinstance(value, str) else value)
        assert isinstance(value, int) or (value.isascii() and value.isdigit())  # type: ignore[union-attr]


@FUZZ
@given(st.integers(min_value=1, max_value=2**31 - 1))
def test_every_positive_version_round_trips_as_int_and_as_text(version: int) -> None:
    assert validate_version(version) == version
    assert validate_version(str(version)) == version


# -- references -------------------------------------------------------------------------------

refs = st.one_of(
    anything,
    st.builds(lambda a, b: f"{a}:{b}", near_names, versions.map(str)),
    st.builds(lambda a, b: f"{a}@{b}", near_names, near_names),
)


@FUZZ
@given(refs)
@example("m:1@x")
@example("m@x:1")
@example("m:")
@example("m@")
def test_model_reference_parser_refuses_only_with_invalid_name(ref: object) -> None:
    accepted, result = _refuses_only_with(InvalidName, lambda: parse_model_ref(ref))  # type: ignore[arg-type]
    if accepted:
        name, version, alias = result
        assert model_name_ok(name)
        assert version is None or alias is None
        assert alias is None or alias_ok(alias)
        rebuilt = name if version is None and alias is None else None
        rebuilt = rebuilt or (f"{name}:{version}" if version is not None else f"{name}@{alias}")
        assert parse_model_ref(rebuilt) == result


@FUZZ
@given(
    valid_model_names,
    st.one_of(st.none(), st.integers(min_value=1, max_value=2**31 - 1)),
    st.one_of(st.none(), valid_aliases),
)
def test_model_references_round_trip(name: str, version: int | None, alias: str | None) -> None:
    assume(version is None or alias is None)
    ref = name + (f":{version}" if version is not None else "") + (f"@{alias}" if alias else "")
    assert parse_model_ref(ref) == (name, version, alias)


node_ids = st.one_of(
    anything,
    st.builds(
        lambda kind, key: f"{kind}:{key}",
        st.one_of(st.sampled_from([k.value for k in NodeKind]), st.text(max_size=8)),
        st.text(max_size=20),
    ),
)


@FUZZ
@given(node_ids)
@example("model_version:")
@example(":key")
@example("MODEL_VERSION:x")
@example("dataset:a:b")
def test_lineage_node_ids_split_or_raise_validation_error(node_id: object) -> None:
    accepted, result = _refuses_only_with(ValidationError, lambda: split_node_id(node_id))  # type: ignore[arg-type]
    if accepted:
        kind, key = result
        assert isinstance(kind, NodeKind)
        assert key
        assert f"{kind.value}:{key}" == node_id


@FUZZ
@given(st.sampled_from(list(NodeKind)), st.text(min_size=1, max_size=40))
def test_lineage_node_ids_round_trip(kind: NodeKind, key: str) -> None:
    assert split_node_id(f"{kind.value}:{key}") == (kind, key)


# -- traffic ----------------------------------------------------------------------------------

weights_values = st.one_of(
    st.integers(min_value=-5, max_value=105),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text("0123456789.-", max_size=4),
    st.none(),
)
route_names = st.one_of(valid_endpoint_names, st.text(max_size=6))
traffic_data = st.fixed_dictionaries(
    {"weights": st.dictionaries(route_names, weights_values, max_size=4)},
    optional={
        "shadow": st.one_of(st.none(), route_names),
        "shadow_percent": st.one_of(weights_values, st.integers()),
        "surge": st.integers(),  # unknown fields are refused, not ignored
    },
)


@st.composite
def valid_traffic(draw: st.DrawFn) -> dict[str, Any]:
    """A traffic split that must be accepted: integer shares of 100 and an optional shadow."""
    names = draw(st.lists(valid_endpoint_names, min_size=1, max_size=4, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(names) - 1, max_size=4)))
    cuts = cuts[: len(names) - 1]
    bounds = [0, *cuts, 100]
    weights = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}
    data: dict[str, Any] = {"weights": weights}
    idle = [name for name, weight in weights.items() if weight == 0]
    if draw(st.booleans()):
        data["shadow"] = draw(st.one_of(valid_endpoint_names, *map(st.just, idle)))
        data["shadow_percent"] = draw(st.integers(1, 100))
    return data


def _check_traffic_invariants(traffic: TrafficMap) -> None:
    assert all(type(w) is int and 0 <= w <= 100 for w in traffic.weights.values())
    assert not traffic.weights or sum(traffic.weights.values()) == 100
    assert (traffic.shadow is None) == (traffic.shadow_percent == 0)
    assert traffic.shadow is None or not traffic.weights.get(traffic.shadow)


@FUZZ
@given(st.one_of(traffic_data, valid_traffic()))
def test_traffic_maps_refuse_only_with_documented_errors(data: dict[str, Any]) -> None:
    direct_ok, direct = _refuses_only_with(pydantic.ValidationError, lambda: TrafficMap(**data))
    parsed_ok, parsed = _refuses_only_with(ValidationError, lambda: _parse(TrafficMap, **data))
    assert direct_ok == parsed_ok
    if parsed_ok:
        assert parsed == direct
        _check_traffic_invariants(parsed)
        assert TrafficMap(**parsed.model_dump()) == parsed
        assert TrafficMap.model_validate_json(parsed.model_dump_json()) == parsed


@FUZZ
@given(valid_traffic())
def test_valid_traffic_maps_are_accepted_and_round_trip(data: dict[str, Any]) -> None:
    traffic = _parse(TrafficMap, **data)
    assert traffic.weights == data["weights"]
    assert TrafficMap.model_validate_json(traffic.model_dump_json()) == traffic


plan_data = st.fixed_dictionaries(
    {
        "endpoint": st.one_of(valid_endpoint_names, any_text),
        "strategy": st.one_of(st.sampled_from(["direct", "canary", "linear", "shadow"]), any_text),
        "steps": st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"weights": st.one_of(valid_traffic().map(lambda t: t["weights"]))},
                    optional={"bake_seconds": st.one_of(st.floats(), st.integers())},
                ),
                traffic_data.map(lambda t: {"weights": t["weights"]}),
            ),
            max_size=3,
        ),
    },
    optional={
        "shadow_percent": weights_values,
        "sla": st.fixed_dictionaries(
            {},
            optional={
                "p99_latency_ms": st.one_of(st.none(), st.floats()),
                "max_error_rate": st.one_of(st.none(), st.floats()),
            },
        ),
        "rollback_to": st.one_of(st.none(), traffic_data, valid_traffic()),
    },
)


@FUZZ
@given(plan_data)
def test_traffic_plans_refuse_only_with_documented_errors(data: dict[str, Any]) -> None:
    direct_ok, direct = _refuses_only_with(pydantic.ValidationError, lambda: TrafficPlan(**data))
    parsed_ok, parsed = _refuses_only_with(ValidationError, lambda: _parse(TrafficPlan, **data))
    assert direct_ok == parsed_ok
    if parsed_ok:
        assert parsed == direct
        assert endpoint_name_ok(parsed.endpoint)
        for step in parsed.steps:
            _check_traffic_invariants(TrafficMap(weights=step.weights))
        assert TrafficPlan.model_validate_json(parsed.model_dump_json()) == parsed


# -- configuration ----------------------------------------------------------------------------

toml_keys = st.one_of(
    st.sampled_from(["backend", "store_url", "backend_settings", "home", "extra"]),
    st.text(st.sampled_from("ab_-"), min_size=1, max_size=4),
)
toml_scalars = st.one_of(
    st.sampled_from(['"local"', '"sqlite:///x.db"', "'lit'", '"""multi\nline"""']),
    st.sampled_from(["1", "-0", "3.5", "inf", "nan", "true", "1979-05-27", "07:32:00"]),
    st.sampled_from(["1979-05-27T07:32:00Z", "[]", "[1, 2]", "{}", '{ path = "p" }']),
    st.text(st.sampled_from('"\\ab\n'), max_size=5).map(lambda s: f'"{s}"'),
)
toml_lines = st.one_of(
    st.builds(lambda k, v: f"{k} = {v}", toml_keys, toml_scalars),
    st.builds(lambda k: f"[{k}]", toml_keys),
    st.sampled_from(["[backend_settings]", "# comment", "", "[[backend_settings]]"]),
    st.text(max_size=12),
)
toml_documents = st.one_of(st.lists(toml_lines, max_size=6).map("\n".join), st.text(max_size=60))


@FUZZ
@given(toml_documents)
@example('home = "/elsewhere"')
@example("x = " + "[" * 5000 + "]" * 5000)
@example('backend = "local"\n[backend_settings]\npath = "C:\\models"')
def test_any_config_file_loads_or_raises_configuration_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    home = tmp_path_factory.mktemp("home")
    (home / "config.toml").write_text(text, encoding="utf-8")
    accepted, config = _refuses_only_with(ConfigurationError, lambda: load_config(home))
    if accepted:
        assert isinstance(config, MintakaConfig)
        assert config.home == home.absolute()


def test_a_config_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b'backend = "loc\xffal"\n')
    with pytest.raises(ConfigurationError):
        load_config(tmp_path)


setting_values = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)


@FUZZ
@given(
    backend=st.text(string.ascii_lowercase + "_", min_size=1, max_size=10),
    store_url=st.one_of(st.none(), st.text(string.printable, min_size=1, max_size=30)),
    backend_settings=st.dictionaries(
        st.text(string.ascii_lowercase + "_", min_size=1, max_size=8), setting_values, max_size=3
    ),
)
@example(backend="local", store_url=None, backend_settings={"path": "C:\\models\\new"})
@example(backend="local", store_url='sqlite:///"quoted".db', backend_settings={})
def test_a_written_config_loads_back_unchanged(
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    store_url: str | None,
    backend_settings: dict[str, Any],
) -> None:
    home = tmp_path_factory.mktemp("home").absolute()
    config = MintakaConfig(
        home=home, backend=backend, store_url=store_url, backend_settings=backend_settings
    )
    write_config(config)
    assert load_config(home) == config


# -- refusal before any write -----------------------------------------------------------------


def _snapshot(platform: Platform) -> tuple[dict[str, list[Any]], list[str]]:
    with platform.store.read() as conn:
        tables = {
            table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for table in metadata.sorted_tables
        }
    root = platform.artifacts.root
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return tables, files


def test_a_bad_model_name_is_refused_before_any_write(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.register_model("existing", make_artifact(b"first"))
    artifact = make_artifact(b"never stored")
    calls: list[str] = []
    for method in ("create_version", "create_version_in", "ensure_model"):
        original = getattr(platform.backend, method)

        def spy(*args: Any, _original: Any = original, _name: str = method, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(platform.backend, method, spy)
    before = _snapshot(platform)

    @FUZZ
    @given(st.one_of(near_names, st.text(max_size=20)).filter(lambda s: not model_name_ok(s)))
    @example("Existing")
    @example("a" + "-b" * 40)
    @example("../etc")
    def refused(name: str) -> None:
        with pytest.raises(InvalidName):
            platform.register_model(name, artifact)
        assert calls == []
        assert _snapshot(platform) == before

    refused()
