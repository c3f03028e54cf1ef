"""Loading the handler classes that contracts name, without trusting the contract.

A contract that names a handler class is code: importing a module runs its top-level
statements. So a class path is checked in two stages, and the first stage never imports.

Before import — :func:`check_class_path`, safe to run on any contract:

1. **Grammar.** Two spellings are accepted and mean the same thing::

       package.module:Class     canonical; the colon says where the module ends
       package.module.Class     upstream's dotted form; the last segment is the class

   Every segment is an ASCII identifier (``[A-Za-z_][A-Za-z0-9_]*``), not a Python keyword and
   not private (no leading ``_``, so no ``_internal`` modules and no dunders). The class part is
   one name: nested classes cannot be named. The whole path is at most
   :data:`MAX_CLASS_PATH_LENGTH` characters.
2. **Deny-list.** The top-level module must not be in :data:`DENIED_MODULES`, which is every
   standard-library module name plus the well-known gadgets (``os``, ``subprocess``,
   ``builtins``, ``importlib``, ``pickle`` …). No handler lives in the standard library, and the
   standard library is where every "run this" and "open that" lives; some of it even acts on
   import (``antigravity`` opens a browser). The deny-list wins over the allow-list.
3. **Allow-list.** The allow-list is required configuration: there is no "allow everything"
   default, and an empty list is a :class:`~onex_core.errors.UsageError`. A prefix matches at
   package boundaries only: ``myapp`` and ``myapp.`` both allow ``myapp.handlers.auth:Auth``
   and neither allows ``myappevil.handlers:Auth``. A prefix may name a single class
   (``myapp.handlers.auth.Auth``). Prefixes are compared with the dotted spelling.
4. **Packages only.** The module part has at least one dot: a handler lives in a package, not
   in a top-level module that could shadow (or be shadowed by) another distribution.

After import — :func:`load_class` and :meth:`PluginLoader.load`:

5. ``importlib.import_module``. Import failures, and anything module top-level code raises
   (``SystemExit`` included), become a :class:`PluginError` raised ``from`` the original; the
   message carries no filesystem paths and is cut to one short line.
6. The name is looked up in the module's namespace (``vars(module)``), so a module-level
   ``__getattr__`` never runs. It must be a class, and it must be defined in that very module
   (``cls.__module__``), which refuses re-exports such as ``from subprocess import Popen``.
7. The class must be concrete (no unimplemented abstract methods) and, when a port is given,
   satisfy it (:func:`onex_core.ports.port_problems`: every member present, ``async`` exactly
   where the port's is, the port's parameters). Nothing here ever instantiates.

Failures raise :class:`PluginError`, a :class:`~onex_core.errors.ContractError` with a stable
:class:`PluginErrorCode`, and change no state of ours (a failed import may leave modules the
plugin imported before failing in ``sys.modules``, as any failed import does).

What this is not: a sandbox. Once step 5 runs, the module's code runs with the process's
rights, so the allow-list is the barrier — list only packages you deploy and review. A
``sys.addaudithook`` hook cannot be removed and sees the whole process, and a refusing
``MetaPathFinder`` on ``sys.meta_path`` would be consulted only for modules not yet imported (the
dangerous ones always are), would break honest handlers (``asyncio`` imports ``socket`` and
``subprocess``) and would affect other threads importing at the same time. Instead
:attr:`Plugin.new_modules` reports which modules the plugin's import pulled in, for a log line.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType

from onex_core.errors import ContractError, Location, UsageError
from onex_core.ports import port_problems

__all__ = [
    "DENIED_MODULES",
    "GADGET_MODULES",
    "MAX_CLASS_PATH_LENGTH",
    "ClassPath",
    "Plugin",
    "PluginError",
    "PluginErrorCode",
    "PluginLoader",
    "check_class_path",
    "load_class",
    "parse_class_path",
]

MAX_CLASS_PATH_LENGTH = 256
"""The longest class path accepted, in characters."""

GADGET_MODULES: frozenset[str] = frozenset(
    {
        # run code, or reach into the interpreter
        "builtins",
        "code",
        "codeop",
        "ctypes",
        "importlib",
        "runpy",
        "sys",
        # deserialisers that run code
        "marshal",
        "pickle",
        "shelve",
        # processes, threads and signals (the runtime owns concurrency, not a handler class)
        "concurrent",
        "multiprocessing",
        "nt",
        "os",
        "posix",
        "pty",
        "signal",
        "subprocess",
        "threading",
        # files and sockets
        "io",
        "pathlib",
        "shutil",
        "socket",
        "tempfile",
        # act on import
        "antigravity",
        "this",
        "webbrowser",
    }
)
"""The modules attackers reach for first, named so the list reads on its own. All of them are
standard-library modules, so they are also covered by :data:`DENIED_MODULES`; naming them keeps
them denied on a Python whose ``sys.stdlib_module_names`` might one day drop one."""

DENIED_MODULES: frozenset[str] = frozenset(sys.stdlib_module_names) | GADGET_MODULES
"""Top-level modules no class path may name, whatever the allow-list says."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?\Z")

# A filesystem path inside exception text: a drive, UNC, home, relative or root start, then
# everything up to whitespace or a quote. The look-behind keeps "and/or" and "a.b/c" intact;
# closing punctuation at the end of a match stays in the text.
_PATH_IN_TEXT = re.compile(r"""(?<![\w.])(?:[A-Za-z]:[\\/]|\\\\|~[\\/]|\.{1,2}[\\/]|/)[^\s'"`]+""")
_TRAILING_PUNCTUATION = ")]},.;:"
_MAX_REASON_LENGTH = 200
_MAX_SHOWN_INPUT = 80


class PluginErrorCode(StrEnum):
    """Why a class path was refused. The values are stable; match on them, not on messages."""

    BAD_CLASS_PATH = "bad-class-path"
    """The text is not a class path (grammar, private segment, keyword, length, no package)."""
    DENIED_MODULE = "denied-module"
    """The top-level module is on the deny-list."""
    NAMESPACE_NOT_ALLOWED = "namespace-not-allowed"
    """No allowed prefix covers the path."""
    MODULE_NOT_FOUND = "module-not-found"
    """The module, or one of its parent packages, does not exist."""
    IMPORT_FAILED = "import-failed"
    """Importing the module raised (its own code, or a missing dependency of it)."""
    CLASS_NOT_FOUND = "class-not-found"
    """The module has no such name."""
    NOT_A_CLASS = "not-a-class"
    """The name is bound to a function, an instance, a module — anything but a class."""
    NOT_DEFINED_HERE = "not-defined-here"
    """The class is defined in another module and only re-exported by this one."""
    MISSING_MEMBERS = "missing-members"
    """The class is abstract or does not satisfy the port (missing or mis-typed members)."""


class PluginError(ContractError):
    """A contract names a handler class that may not, or cannot, be loaded.

    Attributes:
        code: why, as a stable :class:`PluginErrorCode`.
        problems: for ``missing-members``, one entry per unmet requirement
            (``"missing execute"``, ``"describe must be sync"``); empty otherwise.
    """

    def __init__(
        self,
        code: PluginErrorCode,
        message: str,
        *,
        location: Location | None = None,
        problems: Iterable[str] = (),
    ) -> None:
        self.code = code
        self.problems = tuple(problems)
        super().__init__(f"{message} [{code}]", location)


@dataclass(frozen=True, slots=True)
class ClassPath:
    """A syntactically valid class path: the module to import and the class to take from it.

    ``str()`` gives the canonical ``module:Class`` spelling; :attr:`dotted` the dotted one.
    """

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"

    @property
    def dotted(self) -> str:
        """``module.Class`` — the spelling allow-list prefixes are matched against."""
        return f"{self.module}.{self.name}"

    @property
    def top_level(self) -> str:
        """The first segment of the module, the one the deny-list is checked against."""
        return self.module.partition(".")[0]


@dataclass(frozen=True, slots=True)
class Plugin:
    """A loaded handler class.

    Attributes:
        path: where it came from.
        cls: the class itself; never instantiated here.
        new_modules: modules first imported while loading it, sorted. What counts as new depends
            on what the process had imported before, so use it for logs, not for decisions.
    """

    path: ClassPath
    cls: type
    new_modules: tuple[str, ...] = ()


# --------------------------------------------------------------------------- grammar


def parse_class_path(class_path: object, *, location: Location | None = None) -> ClassPath:
    """Check the grammar of a class path (step 1 of the module docstring) and split it.

    Nothing is imported, and no allow- or deny-list is consulted.

    Args:
        class_path: ``package.module:Class`` or ``package.module.Class``.
        location: where the path was written, attached to any error.

    Returns:
        The module and class names.

    Raises:
        PluginError: ``bad-class-path``, naming the offending segment.
    """

    def bad(reason: str) -> PluginError:
        return PluginError(
            PluginErrorCode.BAD_CLASS_PATH,
            f"handler class {_show(class_path)} is not a class path: {reason}",
            location=location,
        )

    if not isinstance(class_path, str):
        raise bad(f"expected a string, got {type(class_path).__name__}")
    if not class_path:
        raise bad("it is empty")
    if len(class_path) > MAX_CLASS_PATH_LENGTH:
        raise bad(f"longer than {MAX_CLASS_PATH_LENGTH} characters ({len(class_path)})")
    if class_path.count(":") > 1:
        raise bad("more than one ':'")
    if ":" in class_path:
        module, _, name = class_path.partition(":")
        if "." in name:
            raise bad(
                "the part after ':' must be one class name (nested classes are not supported)"
            )
    else:
        module, _, name = class_path.rpartition(".")
        if not module:
            raise bad("expected 'package.module:Class'")
    for segment in (*module.split("."), name):
        if not segment:
            raise bad("an empty segment (a leading, trailing or doubled '.', or nothing by ':')")
        if not _IDENTIFIER.match(segment):
            raise bad(
                f"segment {_show(segment)} is not an identifier (ASCII letters, digits and '_')"
            )
        if keyword.iskeyword(segment):
            raise bad(f"segment {segment!r} is a Python keyword")
        if segment.startswith("_"):
            raise bad(f"segment {segment!r} is private (starts with '_')")
    return ClassPath(module, name)


def _show(value: object) -> str:
    """A short, quoted, control-character-free rendering of untrusted input for a message."""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    shown = repr(value[:_MAX_SHOWN_INPUT])
    if len(value) > _MAX_SHOWN_INPUT or len(shown) > _MAX_SHOWN_INPUT:
        return shown[:_MAX_SHOWN_INPUT] + "…"
    return shown


# --------------------------------------------------------------------------- configuration


def _normalise_prefixes(allowed_prefixes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(allowed_prefixes, str | bytes):
        raise UsageError(
            "allowed_prefixes must be a sequence of prefixes, not one string "
            f"(write [{allowed_prefixes!r}])"
        )
    prefixes: list[str] = []
    for prefix in allowed_prefixes:
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise UsageError(
                f"allowed prefix {_show(prefix)} is not a dotted module prefix "
                "such as 'myapp.handlers' or 'myapp.handlers.'"
            )
        bare = prefix.removesuffix(".")
        if bare not in prefixes:
            prefixes.append(bare)
    if not prefixes:
        raise UsageError(
            "allowed_prefixes is required configuration: list the packages handler classes "
            "may be loaded from (for example ['myapp.handlers']); nothing is allowed by default"
        )
    return tuple(prefixes)


def _allows(prefixes: tuple[str, ...], dotted: str) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in prefixes)


# --------------------------------------------------------------------------- the loader


@dataclass(frozen=True, slots=True, init=False)
class PluginLoader:
    """Checks and loads class paths against one allow-list.

    Args:
        allowed_prefixes: the packages handler classes may come from; required and non-empty.
            ``"myapp"`` and ``"myapp."`` mean the same. Stored without the trailing dot.

    Raises:
        UsageError: the allow-list is empty, is a bare string, or holds something that is not
            a dotted module prefix.
    """

    allowed_prefixes: tuple[str, ...]

    def __init__(self, allowed_prefixes: Sequence[str]) -> None:
        object.__setattr__(self, "allowed_prefixes", _normalise_prefixes(allowed_prefixes))

    def check(self, class_path: object, *, location: Location | None = None) -> ClassPath:
        """Run every check that does not import (steps 1 to 4 of the module docstring).

        Args:
            class_path: the text from the contract.
            location: where it was written, attached to any error.

        Returns:
            The parsed path.

        Raises:
            PluginError: ``bad-class-path``, ``denied-module`` or ``namespace-not-allowed``.
        """
        path = parse_class_path(class_path, location=location)
        if path.top_level in DENIED_MODULES:
            raise PluginError(
                PluginErrorCode.DENIED_MODULE,
                f"handler class {path} is refused: module {path.top_level!r} is on the "
                "deny-list (no handler comes from the standard library)",
                location=location,
            )
        if not _allows(self.allowed_prefixes, path.dotted):
            raise PluginError(
                PluginErrorCode.NAMESPACE_NOT_ALLOWED,
                f"handler class {path} is not under an allowed prefix "
                f"({', '.join(self.allowed_prefixes)})",
                location=location,
            )
        if "." not in path.module:
            raise PluginError(
                PluginErrorCode.BAD_CLASS_PATH,
                f"handler class {path} must live in a package ('package.module:Class'), "
                "not in a top-level module",
                location=location,
            )
        return path

    def load(
        self, class_path: object, *, port: type | None = None, location: Location | None = None
    ) -> Plugin:
        """Check, import and vet a handler class; never instantiate it.

        Args:
            class_path: the text from the contract.
            port: a Protocol the class must satisfy (for example the effect handler port).
            location: where the path was written, attached to any error.

        Returns:
            The class, with the modules its import pulled in.

        Raises:
            PluginError: any :class:`PluginErrorCode`. When the refusal happens before import
                (grammar, deny-list, allow-list) nothing was imported or executed.
            UsageError: ``port`` is not a Protocol class (checked before anything is imported).
        """
        if port is not None and not (
            isinstance(port, type) and getattr(port, "_is_protocol", False)
        ):
            shown = port.__qualname__ if isinstance(port, type) else type(port).__name__
            raise UsageError(f"port must be a Protocol class, got {shown}")
        path = self.check(class_path, location=location)
        module, new_modules = _import(path, location)
        cls = _class_in(module, path, location)
        problems = _abstract_problems(cls)
        if port is not None:
            problems += port_problems(cls, port)
        if problems:
            against = (
                f" does not satisfy {port.__qualname__}" if port is not None else " is abstract"
            )
            raise PluginError(
                PluginErrorCode.MISSING_MEMBERS,
                f"handler class {path}{against}: {'; '.join(problems)}",
                location=location,
                problems=problems,
            )
        return Plugin(path, cls, new_modules)


def check_class_path(
    class_path: object, allowed_prefixes: Sequence[str], *, location: Location | None = None
) -> ClassPath:
    """Run every check on a class path that does not import anything.

    Contract validation calls this: it is safe on untrusted contracts.

    Returns:
        The parsed path.

    Raises:
        PluginError: ``bad-class-path``, ``denied-module`` or ``namespace-not-allowed``.
        UsageError: ``allowed_prefixes`` is empty or malformed.
    """
    return PluginLoader(allowed_prefixes).check(class_path, location=location)


def load_class(
    class_path: object,
    *,
    allowed_prefixes: Sequence[str],
    port: type | None = None,
    location: Location | None = None,
) -> type:
    """Check, import and vet the class a contract names; see :meth:`PluginLoader.load`.

    Returns:
        The class, not an instance.

    Raises:
        PluginError: the path is refused, with a :class:`PluginErrorCode`.
        UsageError: ``allowed_prefixes`` is empty or malformed, or ``port`` is not a Protocol
            class.
    """
    return PluginLoader(allowed_prefixes).load(class_path, port=port, location=location).cls


# --------------------------------------------------------------------------- after the checks


def _import(path: ClassPath, location: Location | None) -> tuple[ModuleType, tuple[str, ...]]:
    before = set(sys.modules)
    try:
        module = importlib.import_module(path.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (path.module == missing or path.module.startswith(missing + ".")):
            raise PluginError(
                PluginErrorCode.MODULE_NOT_FOUND,
                f"handler class {path}: module {missing!r} not found",
                location=location,
            ) from exc
        raise PluginError(
            PluginErrorCode.IMPORT_FAILED,
            f"handler class {path}: importing {path.module!r} failed: "
            f"it needs module {_show(missing) if missing else '?'}, which is not installed",
            location=location,
        ) from exc
    except (Exception, SystemExit) as exc:
        raise PluginError(
            PluginErrorCode.IMPORT_FAILED,
            f"handler class {path}: importing {path.module!r} failed: {_reason(exc)}",
            location=location,
        ) from exc
    return module, tuple(sorted(set(sys.modules) - before))


def _reason(exc: BaseException) -> str:
    """The exception as one short line with filesystem paths replaced by ``<path>``."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the real failure
        text = ""
    text = " ".join(_PATH_IN_TEXT.sub(_hide_path, text).split())
    if len(text) > _MAX_REASON_LENGTH:
        text = text[:_MAX_REASON_LENGTH] + "… [truncated]"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _hide_path(match: re.Match[str]) -> str:
    path = match.group()
    kept = path.rstrip(_TRAILING_PUNCTUATION)
    return "<path>" + path[len(kept) :]


def _class_in(module: ModuleType, path: ClassPath, location: Location | None) -> type:
    namespace = vars(module)
    if path.name not in namespace:
        raise PluginError(
            PluginErrorCode.CLASS_NOT_FOUND,
            f"handler class {path}: module {path.module!r} defines no {path.name!r}",
            location=location,
        )
    obj = namespace[path.name]
    if not isinstance(obj, type):
        raise PluginError(
            PluginErrorCode.NOT_A_CLASS,
            f"handler class {path} is {_kind_of(obj)}, not a class",
            location=location,
        )
    defined_in = getattr(obj, "__module__", None)
    if defined_in != path.module:
        raise PluginError(
            PluginErrorCode.NOT_DEFINED_HERE,
            f"handler class {path} is defined in module {_show(defined_in)}, not in "
            f"{path.module!r}; name the module that defines it",
            location=location,
        )
    return obj


def _kind_of(obj: object) -> str:
    if inspect.ismodule(obj):
        return "a module"
    if inspect.isroutine(obj):
        return "a function"
    return f"an instance of {type(obj).__qualname__}"


def _abstract_problems(cls: type) -> tuple[str, ...]:
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    return tuple(f"{name} is abstract (not implemented)" for name in abstract)
