from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onex_core.errors import ContentError
from onex_core.intents import (
    Intent,
    Target,
    intent_id_for,
    is_valid_intent_type,
    make_target,
    parse_target,
)

CAUSE = UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2")


def make(**changes: Any) -> Intent:
    fields: dict[str, Any] = {
        "intent_type": "consul.register",
        "target": "consul://service/onex-effect-42",
        "payload": {"service_name": "onex-effect"},
        "intent_id": intent_id_for(CAUSE, "consul.register", 0),
        "correlation_id": UUID(int=1),
    }
    fields.update(changes)
    return Intent(**fields)


# --------------------------------------------------------------------------- intents


def test_a_valid_intent_keeps_its_fields_and_is_frozen() -> None:
    intent = make()
    assert intent.intent_type == "consul.register"
    assert intent == make()
    with pytest.raises(AttributeError):
        intent.target = "consul://service/other"  # type: ignore[misc]
    assert intent != tuple(intent)  # strict equality: never equal to a plain tuple
    changed = intent.replace(target="consul://service/other")
    assert changed.target == "consul://service/other"
    assert changed.intent_id == intent.intent_id
    with pytest.raises(TypeError, match="no field"):
        intent.replace(targte="x://y/z")


def test_intents_pickle_and_copy_as_themselves() -> None:
    import copy
    import pickle

    intent = make()
    assert pickle.loads(pickle.dumps(intent)) == intent
    assert copy.deepcopy(intent) == intent
    assert type(copy.copy(intent)) is type(intent)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"intent_type": "register"}, "dotted name"),
        ({"intent_type": ""}, "dotted name"),
        ({"target": "consul:/service/x"}, "protocol://resource/id"),
        ({"target": ""}, "protocol://resource/id"),
    ],
)
def test_invalid_intents_raise_content_error(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ContentError, match=match):
        make(**changes)


def test_intent_id_for_is_uuid5_of_the_cause() -> None:
    assert intent_id_for(CAUSE, "consul.register", 0) == uuid.uuid5(CAUSE, "consul.register:0")
    assert intent_id_for(CAUSE, "consul.register", 0).version == 5


@settings(max_examples=200)
@given(st.uuids(), st.uuids(), st.sampled_from(["consul.register", "postgres.upsert"]))
def test_intent_ids_are_deterministic_and_distinct(a: UUID, b: UUID, kind: str) -> None:
    assert intent_id_for(a, kind, 0) == intent_id_for(a, kind, 0)
    ids = {intent_id_for(a, kind, i) for i in range(5)}
    ids |= {intent_id_for(a, kind + "x", 0)}
    assert len(ids) == 6
    if a != b:
        assert intent_id_for(a, kind, 0) != intent_id_for(b, kind, 0)


# --------------------------------------------------------------------------- targets


def test_make_target_builds_and_parse_target_splits() -> None:
    assert make_target("consul", "service", "onex-effect-42") == "consul://service/onex-effect-42"
    assert parse_target("consul://service/onex-effect-42") == Target(
        "consul", "service", "onex-effect-42"
    )


def test_identifier_may_contain_slashes() -> None:
    target = parse_target("filesystem://state/runs/42.json")
    assert target == Target("filesystem", "state", "runs/42.json")
    assert str(target) == "filesystem://state/runs/42.json"
    assert make_target("filesystem", "state", "runs/42.json") == "filesystem://state/runs/42.json"


@pytest.mark.parametrize("protocol", ["consul", "postgres", "git+ssh", "s3.v2", "x-y", "a1"])
def test_valid_protocols(protocol: str) -> None:
    assert parse_target(f"{protocol}://r/i").protocol == protocol


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("consul:/service/x", "must look like"),
        ("consul//service/x", "must look like"),
        ("consul://service", "must look like"),
        ("consul://service/", "must look like"),
        ("consul:///x", "must look like"),
        ("", "must look like"),
        ("://service/x", "protocol '' is malformed"),
        ("Consul://service/x", "protocol 'Consul' is malformed"),
        ("1abc://service/x", "protocol '1abc' is malformed"),
        ("con sul://service/x", "protocol 'con sul' is malformed"),
    ],
)
def test_bad_targets_raise_content_error(text: str, fragment: str) -> None:
    with pytest.raises(ContentError) as caught:
        parse_target(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        (("", "service", "x"), "protocol"),
        (("consul", "", "x"), "must look like"),
        (("consul", "service", ""), "must look like"),
        (("consul", "a/b", "x"), "must not contain '/'"),
        (("Consul", "service", "x"), "protocol"),
    ],
)
def test_make_target_rejects_bad_parts(parts: tuple[str, str, str], match: str) -> None:
    with pytest.raises(ContentError, match=match):
        make_target(*parts)


@settings(max_examples=200)
@given(
    st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1),
    st.text(st.characters(codec="utf-8"), min_size=1),
)
def test_targets_round_trip(protocol: str, resource: str, identifier: str) -> None:
    text = make_target(protocol, resource, identifier)
    assert parse_target(text) == Target(protocol, resource, identifier)


# --------------------------------------------------------------------------- intent types


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("consul.register", True),
        ("postgres.upsert_registration", True),
        ("a.b.c", True),
        ("infra.node-register", True),
        ("x1.y2", True),
        ("consul", False),
        ("", False),
        ("Consul.register", False),
        (".register", False),
        ("consul.", False),
        ("consul..register", False),
        ("1consul.register", False),
        ("consul.1register", False),
        ("consul.register ", False),
        ("consul.register\n", False),
        ("consul.re gister", False),
        ("consul/register", False),
    ],
)
def test_is_valid_intent_type(text: str, valid: bool) -> None:
    assert is_valid_intent_type(text) is valid


def test_non_string_intent_type_is_not_valid() -> None:
    assert is_valid_intent_type(None) is False  # type: ignore[arg-type]
