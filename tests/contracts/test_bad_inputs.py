"""The bad-input corpus: every contract row of the reliability bar's table, rejected with a
location, quickly, and with nothing executed."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from onex_contracts import ContractInvalid, _yaml, load, parse
from onex_contracts._yaml import MAX_NODES
from tests.contracts.samples import EFFECT, HANDLER, ORCHESTRATOR, REDUCER, edit


@dataclass(frozen=True)
class Case:
    row: str
    text: str | bytes
    code: str
    line: int
    column: int
    words: str = ""  # a fragment the message must contain


def _laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        prev = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _quadratic() -> str:
    return 'a: &a "' + "x" * 100_000 + '"\nb: [' + ", ".join(["*a"] * 10_000) + "]\n"


def _handler_with(line4: str, line9: str) -> str:
    return (
        "handler_id: effect.speaker\n"
        "name: speaker\n"
        "contract_version: {major: 1, minor: 0, patch: 0}\n"
        f"{line4}\n"
        "description: Talks to the lobby speaker.\n"
        "descriptor:\n"
        "  node_archetype: effect\n"
        "intent_types: [doors.announce]\n"
        f"{line9}\n"
    )


def _topics(topic: str) -> str:
    return edit(
        ORCHESTRATOR,
        "    - onex.evt.doors.door-pulled.v1\n  publish_topics:",
        f"    - onex.evt.doors.door-pulled.v1\n    - {topic}\n  publish_topics:",
    )


_TOPIC_LINE = 18  # the line _topics() inserts the topic on
_SM = REDUCER.index("state_machine:")

CASES = [
    # 1, 2: alias bombs
    Case("1 billion laughs (anchor)", _laughs(), "yaml-anchor", 1, 4, "anchors"),
    Case("1 billion laughs (alias)", _laughs(), "yaml-alias", 2, 8, "aliases (*a)"),
    Case("2 quadratic blowup", _quadratic(), "yaml-anchor", 1, 4),
    # 3, 4, 5: tags of every kind
    Case(
        "3 python/object/apply",
        'x: !!python/object/apply:os.system ["touch pwned-canary"]\n',
        "yaml-tag",
        1,
        4,
        "!!python/object/apply:os.system",
    ),
    Case("4 python/name", "handler_class: !!python/name:builtins.eval ''\n", "yaml-tag", 1, 16),
    Case(
        "4 python/object/new",
        "x:\n  y: !!python/object/new:subprocess.Popen [[ls]]\n",
        "yaml-tag",
        2,
        6,
    ),
    Case("5 include", "a: 1\nx: !include ../../etc/passwd\n", "yaml-tag", 2, 4, "!include"),
    Case("5 env", "x: !env VAULT_TOKEN\n", "yaml-tag", 1, 4, "!env"),
    Case("5 even !!str", "x: !!str 5\n", "yaml-tag", 1, 4),
    Case("5 tag on a key", "!!python/name:os.system x: 1\n", "yaml-tag", 1, 1),
    # 6: depth
    Case("6 deep sequences", "x: " + "[" * 20_000 + "]" * 20_000 + "\n", "too-deep", 1, 67),
    Case(
        "6 deep mappings",
        "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n",
        "too-deep",
        65,
        129,
        "deeper than 64",
    ),
    # 7: size, checked before parsing
    Case("7 large file", b"a: 1\n" + b"#" * (2 << 20), "too-large", 1, 1, "1 MiB"),
    Case("7 one large scalar", 'x: "' + "y" * (2 << 20) + '"\n', "too-large", 1, 1),
    Case(
        "7 too many values",
        "x: [" + "1," * 60_000 + "1]\n",
        "too-large",
        1,
        5 + 2 * (MAX_NODES - 3),  # the root, the key and the list come first
        "more than 20,000 values",
    ),
    # 8: duplicate keys
    Case(
        "8 duplicate handler_class",
        _handler_with("handler_class: a.b:C", "handler_class: d.e:F"),
        "duplicate-key",
        9,
        1,
        "lines 4 and 9",
    ),
    Case(
        "8 duplicate state key",
        edit(
            REDUCER, "    - state_name: closed\n", "    - state_name: closed\n      state_name: x\n"
        ),
        "duplicate-key",
        11,
        7,
        "(lines 10 and 11)",
    ),
    # 9: unknown fields, with a suggestion
    Case(
        "9 handler_clas",
        edit(HANDLER, "handler_class:", "handler_clas:"),
        "unknown-field",
        12,
        1,
        "did you mean 'handler_class'",
    ),
    Case(
        "9 retry_polcy",
        edit(EFFECT, "  retry_policy:", "  retry_polcy:"),
        "unknown-field",
        13,
        3,
        "did you mean 'retry_policy'",
    ),
    # 10: wrong types, no coercion
    Case(
        "10 quoted number",
        edit(EFFECT, "  timeout_ms: 1500", '  timeout_ms: "30"'),
        "type",
        16,
        15,
        "write it without quotes",
    ),
    Case(
        "10 negative",
        edit(EFFECT, "max_retries: 2", "max_retries: -1"),
        "range",
        13,
        31,
        "greater than or equal to 0",
    ),
    Case("10 float for int", edit(EFFECT, "max_retries: 2", "max_retries: 1e9"), "type", 13, 31),
    Case(
        "10 string for list",
        edit(
            ORCHESTRATOR,
            "  publish_topics:\n    - onex.evt.doors.door-opened.v1",
            '  publish_topics: "a,b"',
        ),
        "type",
        18,
        19,
        "expected a list",
    ),
    # 11: YAML 1.1 traps
    Case(
        "11 version 1.10",
        edit(REDUCER, 'node_version: "1.0.0"', "node_version: 1.10"),
        "ambiguous-number",
        4,
        15,
        "1.1",
    ),
    Case(
        "11 enabled: on",
        edit(REDUCER, "  enabled: true", "  enabled: on"),
        "type",
        32,
        12,
        "expected true or false",
    ),
    Case(
        "11 octal",
        edit(REDUCER, "      timeout_ms: 5000", "      timeout_ms: 0777"),
        "ambiguous-number",
        12,
        19,
        "leading zero",
    ),
    Case(
        "11 sexagesimal",
        edit(REDUCER, "      timeout_ms: 5000", "      timeout_ms: 12:30"),
        "type",
        12,
        19,
        "expected an integer",
    ),
    # 12: documents
    Case("12 two documents", "a: 1\n---\nb: 2\n", "document", 2, 1, "exactly one"),
    Case("12 empty", "", "document", 1, 1, "exactly one mapping document"),
    Case("12 comment only", "# nothing\n", "document", 1, 1),
    Case("12 list root", "- a\n- b\n", "document", 1, 1, "a sequence"),
    Case("12 scalar root", "hello\n", "document", 1, 1, "a scalar"),
    # 13, 14: encoding
    Case("13 UTF-8 BOM", b"\xef\xbb\xbfa: 1\n", "encoding", 1, 1, "byte-order mark"),
    Case("13 UTF-16", "a: 1\n".encode("utf-16"), "encoding", 1, 1),
    Case("13 invalid UTF-8", b"a: 1\nb: \xc3\x28\n", "encoding", 2, 4, "byte 8"),
    Case("13 NUL", b"a: 1\nb: x\x00y\n", "encoding", 2, 5, "U+0000"),
    Case("13 C0 control", "a: 1\nb: x\x07y\n", "encoding", 2, 5, "U+0007"),
    Case("13 escaped NUL", 'a: "x\\0y"\n', "encoding", 1, 4, "U+0000"),
    # 15, 16: numbers
    Case("15 .nan", "a: .nan\n", "non-finite", 1, 4),
    Case("15 .inf", "a: [1, -.inf]\n", "non-finite", 1, 8),
    Case("15 overflow to inf", "a: 1e999\n", "non-finite", 1, 4),
    Case("16 5000 digits", "a: " + "7" * 5000 + "\n", "number-range", 1, 4, "64 bits"),
    # 17-21: the state machine
    Case(
        "17 unknown target state",
        edit(REDUCER, "      to_state: closed\n", "      to_state: clsed\n"),
        "unknown-state",
        25,
        17,
        "unknown state 'clsed' (did you mean 'closed'?)",
    ),
    Case(
        "18 unreachable state",
        edit(
            REDUCER,
            "    - state_name: locked\n",
            "    - state_name: orphan\n    - state_name: locked\n",
        ),
        "unreachable-state",
        13,
        7,
        "'orphan' is unreachable",
    ),
    Case(
        "19 no initial state",
        edit(REDUCER, "  initial_state: closed\n", ""),
        "missing",
        6,
        1,
        "'initial_state'",
    ),
    Case(
        "19 two initial states",
        edit(REDUCER, "  initial_state: closed", "  initial_state: [closed, open]"),
        "type",
        8,
        18,
        "expected a string",
    ),
    Case(
        "19 initial state not declared",
        edit(REDUCER, "  initial_state: closed", "  initial_state: ajar"),
        "unknown-state",
        8,
        18,
        "unknown state 'ajar'",
    ),
    Case(
        "20 an eventless transition",
        edit(REDUCER, "      trigger: pull\n", ""),
        "missing",
        24,
        7,
        "'trigger'",
    ),
    Case(
        "21 same state, trigger and priority, two targets",
        edit(
            REDUCER,
            "      trigger: lock\n",
            "      trigger: lock\n    - from_state: closed\n      to_state: open\n"
            "      trigger: lock\n",
        ),
        "nondeterministic",
        30,
        7,
        "ambiguous",
    ),
    Case(
        "21 terminal state with an exit",
        edit(
            REDUCER,
            "      trigger: lock\n",
            "      trigger: lock\n    - from_state: locked\n      to_state: open\n"
            "      trigger: force\n",
        ),
        "terminal-exit",
        30,
        19,
        "terminal",
    ),
    # 26: topic names
    *(
        Case(f"26 topic {name!r}", _topics(text), "topic", _TOPIC_LINE, 7)
        for name, text in [
            ("space", '"onex.evt.a b.c.v1"'),
            ("sql", '"orders;DROP"'),
            ("dots", "../x"),
            ("cyrillic", "onex.evt.doors.ord\u0435rs.v1"),
            ("long", "onex.evt.doors." + "a" * 235 + ".v1"),
            ("internal", "__consumer_offsets"),
            ("dot", '"."'),
            ("dotdot", '".."'),
            ("upper", "onex.evt.Doors.x.v1"),
        ]
    ),
    # 27: SQL identifiers have no place in a contract at all
    Case(
        "27 projection table",
        REDUCER + 'projection:\n  table: "users; DROP TABLE x"\n',
        "unknown-field",
        37,
        1,
        "unknown field 'projection'",
    ),
    # 28: secrets
    Case("28 password", REDUCER + "metadata:\n  db:\n    password: hunter2\n", "secret", 39, 15),
    Case(
        "28 dsn",
        REDUCER + "metadata:\n  db: {url: 'postgres://app:s3cret@db:5432/x'}\n",
        "secret",
        38,
        13,
    ),
    Case(
        "28 vault token",
        edit(REDUCER, "description: A door", "description: hvs.CAESIJ0123456789abcdefghijk door"),
        "secret",
        5,
        14,
    ),
    Case(
        "28 PEM block",
        REDUCER + 'metadata:\n  cert: "-----BEGIN PRIVATE KEY-----\\nMIIB"\n',
        "secret",
        38,
        9,
    ),
    Case("28 vault_token key", _handler_with("vault_token: abc", ""), "secret", 4, 14),
]


LOADERS = {"python": yaml.SafeLoader, "libyaml": getattr(yaml, "CSafeLoader", None)}


@pytest.fixture(params=sorted(LOADERS))
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the pure-Python parser and with libyaml's (when it is installed)."""
    cls = LOADERS[request.param]
    if cls is None:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(_yaml, "_LOADER", cls)
    return str(request.param)


@pytest.mark.parametrize("case", CASES, ids=[c.row for c in CASES])
def test_bad_input_is_rejected_with_its_location(case: Case, loader: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ContractInvalid) as caught:
        parse(case.text, source="bad/contract.yaml")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    issues = caught.value.errors
    matching = [i for i in issues if i.code == case.code]
    assert matching, [str(i) for i in issues]
    assert (case.line, case.column) in [(i.line, i.column) for i in matching], [
        str(i) for i in matching
    ]
    issue = next(i for i in matching if (i.line, i.column) == (case.line, case.column))
    assert issue.source == "bad/contract.yaml"
    assert case.words in issue.message
    assert str(issue).startswith(f"bad/contract.yaml:{case.line}:{case.column}: ")


SECRETS = ["hunter2", "s3cret", "hvs.CAESIJ0123456789abcdefghijk", "MIIB", "abc"]


@pytest.mark.parametrize("case", [c for c in CASES if c.code == "secret"], ids=lambda c: c.row)
def test_secret_values_are_never_echoed(case: Case) -> None:
    """Row 28: the message names the field, never the value."""
    with pytest.raises(ContractInvalid) as caught:
        parse(case.text)
    text = str(caught.value)
    assert "must not contain secrets" in text
    for secret in SECRETS:
        assert secret not in text


def test_a_secret_in_a_wrongly_typed_field_is_not_echoed() -> None:
    token = "hvs.CAESIJ0123456789abcdefghijk"
    with pytest.raises(ContractInvalid) as caught:
        parse(edit(EFFECT, "  timeout_ms: 1500", f"  timeout_ms: {token}"))
    codes = {i.code for i in caught.value.errors}
    assert codes == {"secret", "type"}
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    ("which", "code", "column"), [("python", "encoding", 4), ("libyaml", "yaml-syntax", 7)]
)
def test_a_lone_surrogate_escape_is_refused(
    which: str, code: str, column: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 14: libyaml refuses the escape itself; with the Python parser our check does."""
    cls = LOADERS[which]
    if cls is None:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(_yaml, "_LOADER", cls)
    with pytest.raises(ContractInvalid) as caught:
        parse('a: "\\ud800"\n')
    assert [(i.code, i.line, i.column) for i in caught.value.errors] == [(code, 1, column)]


def test_a_flood_of_problems_is_cut_short() -> None:
    text = REDUCER + "".join(f"unknown_{i}: 1\n" for i in range(5_000))
    started = time.perf_counter()
    with pytest.raises(ContractInvalid) as caught:
        parse(text)
    assert time.perf_counter() - started < 1.0
    issues = caught.value.errors
    assert len(issues) == 101
    assert [i.code for i in issues[:-1]] == ["unknown-field"] * 100
    assert (issues[-1].code, issues[-1].line) == ("truncated", 137)


@pytest.mark.parametrize(
    "value",
    [
        "a" * 900_000,  # a long run that a careless secret pattern would scan quadratically
        "a:" * 300_000,
        "://" + "a" * 300_000 + ":" + "b" * 300_000,
    ],
    ids=["letters", "colons", "userinfo"],
)
def test_long_values_are_scanned_in_linear_time(value: str) -> None:
    started = time.perf_counter()
    contract = parse(REDUCER + f"metadata:\n  x: '{value}'\n")
    assert time.perf_counter() - started < 1.0
    assert contract.metadata["x"] == value


def test_a_huge_number_is_not_echoed() -> None:
    with pytest.raises(ContractInvalid) as caught:
        parse("a: " + "7" * 5000 + "\n")
    assert "7777" not in str(caught.value)


def test_yaml_1_1_traps_that_are_legal_strings_stay_as_written() -> None:
    contract = parse(
        REDUCER + "metadata:\n  country: NO\n  ttl: 12:30\n  enabled: on\n  when: 2001-12-14\n"
        "  version: 1.0.10\n  hex: 0x1F\n"
    )
    assert contract.metadata == {
        "country": "NO",
        "ttl": "12:30",
        "enabled": "on",
        "when": "2001-12-14",
        "version": "1.0.10",
        "hex": 31,
    }


def test_a_file_larger_than_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    with path.open("wb") as handle:
        handle.write(b"name: x\n")
        handle.seek(200 * 1024 * 1024)  # a sparse 200 MB file
        handle.write(b"\n")
    started = time.perf_counter()
    with pytest.raises(ContractInvalid) as caught:
        load(path)
    assert time.perf_counter() - started < 1.0
    assert [(i.code, i.line, i.column) for i in caught.value.errors] == [("too-large", 1, 1)]


# --------------------------------------------------------------------------- nothing runs

CANARY = "onex_canary_module_7f3a"


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module on sys.path whose import writes a marker file; returns the marker's path."""
    marker = tmp_path / "imported.marker"
    package = tmp_path / "site"
    package.mkdir()
    (package / f"{CANARY}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "class Thing:\n    pass\n"
        "def run(*args):\n    return args\n"
    )
    monkeypatch.syspath_prepend(str(package))
    sys.modules.pop(CANARY, None)
    return marker


def _payloads(tmp_path: Path) -> list[str]:
    pwned = tmp_path / "pwned"
    return [
        f'x: !!python/object/apply:os.system ["touch {pwned}"]\n',
        f"x: !!python/object/apply:{CANARY}.run [1]\n",
        f"x: !!python/name:{CANARY}.Thing ''\n",
        f"x: !!python/module:{CANARY} ''\n",
        f"x: !!python/object/new:{CANARY}.Thing []\n",
        f"x: !!python/object:{CANARY}.Thing {{a: 1}}\n",
        f"name: !!python/object/apply:subprocess.check_call [[touch, {pwned}]]\n",
    ]


def test_no_tag_imports_or_runs_anything(tmp_path: Path, canary: Path) -> None:
    for payload in _payloads(tmp_path):
        with pytest.raises(ContractInvalid) as caught:
            parse(payload)
        assert {i.code for i in caught.value.errors} == {"yaml-tag"}
    assert not canary.exists()
    assert not (tmp_path / "pwned").exists()
    assert CANARY not in sys.modules


def test_a_handler_class_is_text_and_is_never_imported(canary: Path) -> None:
    contract = parse(edit(HANDLER, "doorapp.handlers.speaker:SpeakerHandler", f"{CANARY}.x:Thing"))
    assert contract.handler_class == f"{CANARY}.x:Thing"  # type: ignore[union-attr]
    assert not canary.exists()
    assert CANARY not in sys.modules
