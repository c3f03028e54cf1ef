"""Handler-class loading: bad inputs #22-#25 of the reliability bar, and the good path.

The fixture packages in ``plugin_fixtures/`` are canaries: importing one of their modules writes
a marker file into the directory named by ``ONEX_PLUGIN_CANARY_DIR``. Every refusal that must
happen before import is checked twice: no marker appeared, and ``importlib.import_module`` was
never called. The good handler is the positive control that the canaries do fire.
"""

from __future__ import annotations

import importlib
import keyword
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from onex_contracts.plugins import (
    DENIED_MODULES,
    GADGET_MODULES,
    MAX_CLASS_PATH_LENGTH,
    ClassPath,
    PluginError,
    PluginErrorCode,
    PluginLoader,
    check_class_path,
    load_class,
    parse_class_path,
)
from onex_core.errors import ContractError, Location, UsageError
from onex_core.ports import EffectHandler

FIXTURES = Path(__file__).parent / "plugin_fixtures"
PKG = "onex_plugin_fixtures"
EVIL = "onex_plugin_fixturesevil"
H = f"{PKG}.handlers"
ALLOWED = (PKG,)
CANARY_ENV = "ONEX_PLUGIN_CANARY_DIR"
PORT_MEMBERS = ("handler_type", "initialize", "shutdown", "execute", "describe")

Code = PluginErrorCode


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Fixture packages on sys.path, canaries pointed at a fresh directory; afterwards every
    fixture module is forgotten so the next test imports (and marks) afresh."""
    _forget_fixture_modules()
    markers = tmp_path / "canaries"
    markers.mkdir()
    monkeypatch.setenv(CANARY_ENV, str(markers))
    monkeypatch.syspath_prepend(str(FIXTURES))
    yield markers
    _forget_fixture_modules()


def _forget_fixture_modules() -> None:
    for name in [n for n in sys.modules if n.partition(".")[0] in {PKG, EVIL}]:
        del sys.modules[name]


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every module name passed to importlib.import_module during the test."""
    calls: list[str] = []
    real = importlib.import_module

    def spy(name: str, package: str | None = None) -> Any:
        calls.append(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", spy)
    return calls


def _marked(markers: Path) -> set[str]:
    return {p.name.removesuffix(".imported") for p in markers.iterdir()}


def _refusal(class_path: object, **kwargs: Any) -> PluginError:
    with pytest.raises(PluginError) as caught:
        load_class(class_path, allowed_prefixes=kwargs.pop("allowed", ALLOWED), **kwargs)
    return caught.value


# --------------------------------------------------------------------------- before import

REFUSED_BEFORE_IMPORT: list[tuple[object, PluginErrorCode]] = [
    # 22: gadgets, in both spellings; the deny-list covers os's own backends too
    ("os.system", Code.DENIED_MODULE),
    ("os:system", Code.DENIED_MODULE),
    ("builtins.eval", Code.DENIED_MODULE),
    ("subprocess.Popen", Code.DENIED_MODULE),
    ("subprocess:Popen", Code.DENIED_MODULE),
    ("importlib.import_module", Code.DENIED_MODULE),
    ("importlib.machinery:SourceFileLoader", Code.DENIED_MODULE),
    ("posix.system", Code.DENIED_MODULE),
    ("pickle:Unpickler", Code.DENIED_MODULE),
    ("ctypes.CDLL", Code.DENIED_MODULE),
    ("os.path:join", Code.DENIED_MODULE),
    ("antigravity.x", Code.DENIED_MODULE),
    # 24: grammar
    (f"{H}..x", Code.BAD_CLASS_PATH),
    ("../evil", Code.BAD_CLASS_PATH),
    (f"{H}._private.X", Code.BAD_CLASS_PATH),
    (f"{H}._private:X", Code.BAD_CLASS_PATH),
    (f"{H}.__init__:X", Code.BAD_CLASS_PATH),
    (f"{H}.good:_Handler", Code.BAD_CLASS_PATH),
    (f"{H}.good:", Code.BAD_CLASS_PATH),
    (f":{H}", Code.BAD_CLASS_PATH),
    (f"{H}.good.", Code.BAD_CLASS_PATH),
    (f".{H}.good.Handler", Code.BAD_CLASS_PATH),
    (f"{H}.good:Handler.Inner", Code.BAD_CLASS_PATH),
    (f"{H}:good:Handler", Code.BAD_CLASS_PATH),
    (f"{H}/good:Handler", Code.BAD_CLASS_PATH),
    (f"{H}.good:Handler;rm -rf x", Code.BAD_CLASS_PATH),
    (f" {H}.good:Handler", Code.BAD_CLASS_PATH),
    (f"{H}.good:Handler\n", Code.BAD_CLASS_PATH),
    (f"{H}.g\u043eod:Handler", Code.BAD_CLASS_PATH),  # Cyrillic o
    (f"{H}.class:Handler", Code.BAD_CLASS_PATH),  # a keyword
    (f"{H}.{'m' * MAX_CLASS_PATH_LENGTH}:Handler", Code.BAD_CLASS_PATH),
    ("", Code.BAD_CLASS_PATH),
    (PKG, Code.BAD_CLASS_PATH),
    (None, Code.BAD_CLASS_PATH),
    (42, Code.BAD_CLASS_PATH),
    # 24: package boundary and allow-list
    (f"{EVIL}.X", Code.NAMESPACE_NOT_ALLOWED),
    (f"{EVIL}:X", Code.NAMESPACE_NOT_ALLOWED),
    (f"{EVIL}.handlers:Handler", Code.NAMESPACE_NOT_ALLOWED),
    ("elsewhere.handlers:Handler", Code.NAMESPACE_NOT_ALLOWED),
    # handlers live in packages, not top-level modules
    (f"{PKG}:Handler", Code.BAD_CLASS_PATH),
]


@pytest.mark.parametrize(("class_path", "code"), REFUSED_BEFORE_IMPORT)
def test_refused_before_anything_is_imported(
    canaries: Path, imports: list[str], class_path: object, code: PluginErrorCode
) -> None:
    err = _refusal(class_path, port=EffectHandler)
    assert err.code is code
    assert f"[{code}]" in str(err)
    assert imports == []
    assert _marked(canaries) == set()


@pytest.mark.parametrize(("class_path", "code"), REFUSED_BEFORE_IMPORT)
def test_check_class_path_agrees_with_load(
    canaries: Path, imports: list[str], class_path: object, code: PluginErrorCode
) -> None:
    with pytest.raises(PluginError) as caught:
        check_class_path(class_path, ALLOWED)
    assert caught.value.code is code
    assert imports == []


@pytest.mark.parametrize(
    "class_path",
    ["os.system", "builtins.eval", "subprocess.Popen", "importlib.import_module", "io:FileIO"],
)
def test_the_deny_list_wins_over_the_allow_list(
    canaries: Path, imports: list[str], class_path: str
) -> None:
    allowed = ("os", "builtins", "subprocess", "importlib", "io", PKG)
    assert _refusal(class_path, allowed=allowed).code is Code.DENIED_MODULE
    assert imports == []


def test_the_deny_list_names_the_gadgets_and_the_whole_standard_library() -> None:
    named = {"os", "sys", "subprocess", "builtins", "importlib", "ctypes", "pickle", "marshal"}
    named |= {"shutil", "socket", "runpy", "code", "pty", "posix", "nt", "multiprocessing"}
    assert named <= GADGET_MODULES <= DENIED_MODULES
    assert set(sys.stdlib_module_names) <= DENIED_MODULES
    assert PKG not in DENIED_MODULES


def test_checking_a_good_path_imports_nothing(canaries: Path, imports: list[str]) -> None:
    path = check_class_path(f"{H}.good:Handler", ALLOWED)
    assert path == ClassPath(f"{H}.good", "Handler")
    assert imports == []
    assert _marked(canaries) == set()


BAD_CONFIGURATION: list[object] = [
    [],
    (),
    [""],
    ["."],
    ["my app"],
    ["a..b"],
    ["a.b:C"],
    ["myapp.*"],
    [None],
    PKG,  # one string, not a list of them: would otherwise allow "o", "n", "e", ...
    PKG.encode(),
]


@pytest.mark.parametrize("allowed", BAD_CONFIGURATION)
def test_the_allow_list_is_required_configuration(
    canaries: Path, imports: list[str], allowed: Any
) -> None:
    with pytest.raises(UsageError):
        load_class(f"{H}.good:Handler", allowed_prefixes=allowed)
    with pytest.raises(UsageError):
        check_class_path(f"{H}.good:Handler", allowed)
    with pytest.raises(UsageError):
        PluginLoader(allowed)
    assert imports == []
    assert _marked(canaries) == set()


def test_empty_allow_list_says_configuration_is_required() -> None:
    with pytest.raises(UsageError, match="required configuration"):
        PluginLoader([])


@pytest.mark.parametrize("port", [int, object(), "EffectHandler"])
def test_a_port_that_is_not_a_protocol_is_refused_before_import(
    canaries: Path, imports: list[str], port: Any
) -> None:
    with pytest.raises(UsageError, match="Protocol"):
        load_class(f"{H}.good:Handler", allowed_prefixes=ALLOWED, port=port)
    assert imports == []


# --------------------------------------------------------------------------- after import

AFTER_IMPORT: list[tuple[str, PluginErrorCode, tuple[str, ...]]] = [
    # 23: re-exports, from outside and from inside the allowed package
    (f"{H}.auth.Popen", Code.NOT_DEFINED_HERE, ("'subprocess'",)),
    (f"{H}.aliased:Handler", Code.NOT_DEFINED_HERE, (f"'{H}.good'",)),
    # 25: not a class
    (f"{H}.shapes:function", Code.NOT_A_CLASS, ("a function",)),
    (f"{H}.shapes:instance", Code.NOT_A_CLASS, ("an instance of Handler",)),
    (f"{H}.shapes:abc", Code.NOT_A_CLASS, ("a module",)),
    # lookups
    (f"{H}.shapes:Missing", Code.CLASS_NOT_FOUND, ("'Missing'",)),
    (f"{H}.nowhere:Handler", Code.MODULE_NOT_FOUND, (f"'{H}.nowhere'",)),
    (f"{PKG}.nowhere.deeper:Handler", Code.MODULE_NOT_FOUND, (f"'{PKG}.nowhere'",)),
    # module top level fails
    (f"{H}.needs_missing:X", Code.IMPORT_FAILED, ("'onex_plugin_fixtures_absent_dependency'",)),
    (f"{H}.broken:X", Code.IMPORT_FAILED, ("RuntimeError", "<path>")),
    (f"{H}.exits:X", Code.IMPORT_FAILED, ("SystemExit",)),
]


@pytest.mark.parametrize(("class_path", "code", "mentions"), AFTER_IMPORT)
def test_refused_after_import(
    canaries: Path, class_path: str, code: PluginErrorCode, mentions: tuple[str, ...]
) -> None:
    err = _refusal(class_path, port=EffectHandler)
    assert err.code is code
    for text in mentions:
        assert text in str(err)
    # import failures chain the original exception; checks on the class have none to chain
    assert (err.__cause__ is not None) is (code in {Code.IMPORT_FAILED, Code.MODULE_NOT_FOUND})


def test_import_failures_carry_no_filesystem_paths(canaries: Path) -> None:
    err = _refusal(f"{H}.broken:X")
    assert isinstance(err.__cause__, RuntimeError)
    assert str(FIXTURES) in str(err.__cause__)  # the cause keeps the detail for tracebacks
    message = str(err)
    assert str(FIXTURES) not in message
    assert "broken.py" not in message
    assert ".config" not in message
    assert "\\onex" not in message
    assert "/" not in message
    assert message.count("<path>") == 3
    assert "\n" not in message


def test_import_failed_module_is_retried_not_cached(canaries: Path) -> None:
    first = _refusal(f"{H}.broken:X")
    second = _refusal(f"{H}.broken:X")
    assert first.code is second.code is Code.IMPORT_FAILED


MISSING_MEMBERS: list[tuple[str, tuple[str, ...]]] = [
    (f"{H}.shapes:Empty", PORT_MEMBERS),
    (f"{H}.shapes:NoExecuteNoDescribe", ("execute", "describe")),
    (f"{H}.shapes:SyncExecute", ("execute",)),  # sync where the port is async
    (f"{H}.shapes:AsyncDescribe", ("describe",)),  # async where the port is sync
    (f"{H}.shapes:ExecuteNotCallable", ("execute",)),
    (f"{H}.shapes:Abstract", ("execute",)),
]


@pytest.mark.parametrize(("class_path", "members"), MISSING_MEMBERS)
def test_classes_that_do_not_satisfy_the_port_are_refused_naming_the_members(
    canaries: Path, class_path: str, members: tuple[str, ...]
) -> None:
    err = _refusal(class_path, port=EffectHandler)
    assert err.code is Code.MISSING_MEMBERS
    for member in PORT_MEMBERS:
        named = any(member in problem for problem in err.problems)
        assert named is (member in members), (member, err.problems)
        assert (member in str(err)) is (member in members)


def test_abstract_classes_are_refused_even_without_a_port(canaries: Path) -> None:
    err = _refusal(f"{H}.shapes:Abstract")
    assert err.code is Code.MISSING_MEMBERS
    assert err.problems == ("execute is abstract (not implemented)",)


def test_without_a_port_only_the_class_checks_apply(canaries: Path) -> None:
    assert load_class(f"{H}.shapes:Empty", allowed_prefixes=ALLOWED).__name__ == "Empty"


# --------------------------------------------------------------------------- the good path

GOOD: list[tuple[str, tuple[str, ...]]] = [
    (f"{H}.good:Handler", (PKG,)),
    (f"{H}.good.Handler", (PKG,)),
    (f"{H}.good:Handler", (f"{PKG}.",)),
    (f"{H}.good:Handler", (H,)),
    (f"{H}.good:Handler", (f"{H}.good",)),
    (f"{H}.good:Handler", (f"{H}.good.Handler",)),  # one class
    (f"{H}.good:Handler", ("elsewhere", f"{H}.")),
    (f"{H}.shapes:Concrete", (PKG,)),
]


@pytest.mark.parametrize(("class_path", "allowed"), GOOD)
def test_a_good_handler_in_an_allowed_package_loads(
    canaries: Path, imports: list[str], class_path: str, allowed: tuple[str, ...]
) -> None:
    cls = load_class(class_path, allowed_prefixes=allowed, port=EffectHandler)
    module, _, name = class_path.replace(":", ".").rpartition(".")
    assert isinstance(cls, type)
    assert (cls.__module__, cls.__name__) == (module, name)
    assert imports == [module]
    assert module in _marked(canaries)  # the positive control: canaries do fire


def test_the_class_is_never_instantiated(canaries: Path) -> None:
    cls = load_class(f"{H}.good:Constructed", allowed_prefixes=ALLOWED, port=EffectHandler)
    assert _marked(canaries) == {f"{H}.good"}
    cls()
    assert _marked(canaries) == {f"{H}.good", f"{H}.good.Constructed"}


def test_a_prefix_naming_one_class_allows_only_that_class() -> None:
    allowed = [f"{H}.good.Handler"]
    assert check_class_path(f"{H}.good:Handler", allowed).name == "Handler"
    for other in (f"{H}.good:HandlerEvil", f"{H}.good:Constructed", f"{H}.goodx:Handler"):
        with pytest.raises(PluginError) as caught:
            check_class_path(other, allowed)
        assert caught.value.code is Code.NAMESPACE_NOT_ALLOWED


def test_the_import_audit_names_the_modules_a_plugin_pulled_in(canaries: Path) -> None:
    loader = PluginLoader([PKG])
    first = loader.load(f"{H}.pulls_in:Handler", port=EffectHandler)
    assert {f"{H}.pulls_in", f"{H}.helper"} <= set(first.new_modules)
    assert list(first.new_modules) == sorted(first.new_modules)
    again = loader.load(f"{H}.pulls_in:Handler", port=EffectHandler)
    assert again.cls is first.cls
    assert again.new_modules == ()
    assert str(again.path) == f"{H}.pulls_in:Handler"


def test_errors_carry_the_contract_location(canaries: Path) -> None:
    where = Location("nodes/x/handler_contract.yaml", 7, 16, "handler_class")
    for class_path in ("os.system", f"{H}.auth.Popen"):
        err = _refusal(class_path, location=where)
        assert isinstance(err, ContractError)
        assert err.location == where
        assert str(err).startswith("nodes/x/handler_contract.yaml:7:16: handler_class: ")


def test_messages_quote_untrusted_input_briefly() -> None:
    hostile = "x\x1b[2J\n" * 60
    with pytest.raises(PluginError) as caught:
        parse_class_path(hostile)
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\n" not in message
    assert len(message) < 200


def test_the_loader_is_a_frozen_value_with_normalised_prefixes() -> None:
    loader = PluginLoader([f"{PKG}.", PKG, "other.pkg"])
    assert loader.allowed_prefixes == (PKG, "other.pkg")
    assert loader == PluginLoader((PKG, "other.pkg."))
    with pytest.raises(AttributeError):
        loader.allowed_prefixes = ()  # type: ignore[misc]


# --------------------------------------------------------------------------- properties

_identifier = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,7}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)
_modules = st.lists(_identifier, min_size=2, max_size=4).map(".".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.text(alphabet="ab_.:/ 9\u0435", max_size=20)))
def test_checking_arbitrary_text_raises_only_plugin_errors_and_imports_nothing(
    text: str,
) -> None:
    with mock.patch.object(importlib, "import_module") as spy:
        try:
            path = check_class_path(text, ["a", "ab"])
        except PluginError:
            pass  # the only exception allowed
        else:
            assert path.dotted.split(".")[0] in {"a", "ab"}
    spy.assert_not_called()


@settings(max_examples=200, deadline=None)
@given(_modules, _identifier)
def test_both_spellings_mean_the_same_class(module: str, name: str) -> None:
    canonical = parse_class_path(f"{module}:{name}")
    assert canonical == parse_class_path(f"{module}.{name}")
    assert str(canonical) == f"{module}:{name}"
    assert canonical.dotted == f"{module}.{name}"


@settings(max_examples=200, deadline=None)
@given(_modules, st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True), _identifier)
def test_prefixes_match_only_at_package_boundaries(prefix: str, tail: str, name: str) -> None:
    assume(prefix.partition(".")[0] not in DENIED_MODULES)
    for spelling in (prefix, prefix + "."):
        inside = check_class_path(f"{prefix}.sub:{name}", [spelling])
        assert inside.module == f"{prefix}.sub"
        with pytest.raises(PluginError) as caught:
            check_class_path(f"{prefix}{tail}.sub:{name}", [spelling])
        assert caught.value.code is Code.NAMESPACE_NOT_ALLOWED


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(n for n in DENIED_MODULES if not n.startswith("_"))),
    _modules,
    _identifier,
)
def test_denied_modules_are_denied_whatever_is_allowed(denied: str, rest: str, name: str) -> None:
    with pytest.raises(PluginError) as caught:
        check_class_path(f"{denied}.{rest}:{name}", [denied, rest])
    assert caught.value.code is Code.DENIED_MODULE
