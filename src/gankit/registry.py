"""Name -> component registries, so a YAML string maps to a builder.

A builder's keyword arguments are its options; `build` checks names and types of the options a
recipe gives against the builder's signature, so a typo fails before training with the list of
valid options instead of a TypeError deep inside a constructor.

Two ways in for the user's own code, both reopened by every later command from config.yaml:
a name of the form `package.module:callable` is imported and used as the builder, and installed
packages can register builders under the entry-point group `gankit.<kind>s` (e.g.
`gankit.generators`), loaded the first time a name is not found.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import inspect
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from gankit.errors import ConfigError

IMPORT_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def is_import_path(name: Any) -> bool:
    """True for names of the form `package.module:callable`."""
    return isinstance(name, str) and IMPORT_PATH.fullmatch(name) is not None


def import_callable(path: str, where: str, kind: str = "component") -> Callable[..., Any]:
    """Import `package.module:attr.attr` and return it; every failure is one ConfigError line.

    The current folder is searched too (as `python -m` would), so a module beside the recipe
    works from the `gankit` command without installing it."""
    module_name, _, attr = path.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, SyntaxError or whatever the module raises
        raise ConfigError(
            f"{where}: cannot import module {module_name!r} for {kind} {path!r}: "
            f"{type(exc).__name__}: {exc} (it must be installed, on PYTHONPATH or in the "
            "current folder)"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{where}: module {module_name!r} has no attribute {attr!r} (for {kind} {path!r})"
            ) from None
    if not callable(obj):
        raise ConfigError(
            f"{where}: {path!r} is not callable (type {type(obj).__name__}); name a function "
            f"or class that builds the {kind}"
        )
    return obj


# Objects passed to gankit.train(generator=G, ...) stand in a recipe as this name, with their
# class's import path recorded under `object` (for the message when a command cannot rebuild).
OBJECT = "python-object"
_PROVIDED: ContextVar[dict[str, Any] | None] = ContextVar("gankit_provided_objects", default=None)


@contextmanager
def provided(objects: dict[str, Any]) -> Iterator[None]:
    """Within this block, `python-object` components of a kind ("generator", "dataset", ...)
    build from these objects."""
    token = _PROVIDED.set(
        {**(_PROVIDED.get() or {}), **{k: v for k, v in objects.items() if v is not None}}
    )
    try:
        yield
    finally:
        _PROVIDED.reset(token)


def object_path(obj: Any) -> str:
    """`module:QualifiedName` of an object's class (what config.yaml records for it)."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


API_NAMES = {"dataset": "data"}  # registry kind -> keyword of gankit.train / open_run


def object_builder(kind: str) -> Callable[..., Any]:
    keyword = API_NAMES.get(kind, kind)

    def python_object(object: str | None = None, **framework: Any) -> Any:
        """The object passed as gankit.train(..., <kind>=obj): a copy of it where it has state
        of its own (a module, a data source), so each build starts from the object given."""
        obj = (_PROVIDED.get() or {}).get(kind)
        if obj is None:
            raise ConfigError(
                f"{keyword}: this run's {kind} was a Python object ({object}) passed to "
                f"gankit.train, which a command cannot rebuild. From Python, pass it again: "
                f"gankit.open_run(path, {keyword}=...) or gankit.resume(path, {keyword}=...); "
                f"or train with {keyword}.name: 'package.module:callable' so every command "
                "can rebuild it"
            )
        return copy.deepcopy(obj) if hasattr(obj, "state_dict") else obj

    return python_object


def signature_hints(builder: Callable[..., Any]) -> dict[str, Any]:
    """Type hints of a builder's parameters (a class: of its __init__); none when the user's
    annotations cannot be evaluated, so options are then taken as written."""
    target = builder.__init__ if isinstance(builder, type) else builder
    try:
        return typing.get_type_hints(target)
    except Exception:  # a forward reference that does not resolve, in the user's code
        return {}


def signature(builder: Callable[..., Any], name: str) -> inspect.Signature:
    try:
        return inspect.signature(builder)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name!r}: cannot read the signature of {builder!r}; wrap it in a Python function "
            "whose keyword arguments are its options"
        ) from None


def accepted(builder: Callable[..., Any], framework: dict[str, Any]) -> dict[str, Any]:
    """The framework arguments (e.g. out_shape, seed) that `builder` takes: all when it takes
    **kwargs, else those it names, so a user's builder need not declare ones it ignores."""
    params = signature(builder, getattr(builder, "__name__", str(builder))).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(framework)
    return {k: v for k, v in framework.items() if k in params}


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}
        self.entry_point_group = entry_point_group or f"gankit.{kind.replace(' ', '_')}s"
        self._entry_points_loaded = False

    def _load_entry_points(self) -> None:
        """Register what installed packages offer under this registry's entry-point group."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            if ep.name in self._builders:
                continue  # gankit's own names win; a package cannot replace them
            try:
                builder = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{self.kind} {ep.name!r} from entry point {ep.value!r} (group "
                    f"{self.entry_point_group}) does not load: {type(exc).__name__}: {exc}"
                ) from None
            self._builders[ep.name] = builder

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return decorate

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._builders)

    def in_order(self) -> list[str]:
        """The names in the order they were registered."""
        return list(self._builders)

    def __contains__(self, name: str) -> bool:
        if name not in self._builders:
            self._load_entry_points()
        return name in self._builders

    def get(self, name: str, where: str = "name") -> Callable[..., Any]:
        if name == OBJECT:
            return object_builder(self.kind)
        if is_import_path(name) and name not in self._builders:
            return import_callable(name, where, self.kind)
        if name not in self:
            raise ConfigError(
                f"{where}: unknown {self.kind} {name!r}; "
                f"valid choices: {', '.join(self.names()) or '(none yet)'}, or your own as "
                "'package.module:callable'"
            )
        return self._builders[name]

    def options(self, name: str, framework_args: tuple[str, ...] = ()) -> dict[str, Any]:
        """User-settable options of a builder with their defaults (framework args excluded)."""
        sig = signature(self.get(name), name)
        out = {}
        for p in sig.parameters.values():
            if p.name in framework_args or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
        return out

    def check_options(
        self, name: str, options: dict[str, Any], where: str, framework_args: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Validate `options` for builder `name`; return them merged over the defaults."""
        builder = self.get(name, where=f"{where}.name")
        sig = signature(builder, name)
        hints = signature_hints(builder)
        valid = {
            p.name: p
            for p in sig.parameters.values()
            if p.name not in framework_args and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        open_ended = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        resolved: dict[str, Any] = {}
        for key, value in options.items():
            if key not in valid and open_ended:  # a user's builder that takes **kwargs
                resolved[key] = value
                continue
            if key not in valid:
                raise ConfigError(
                    f"{where}.{key}: unknown option for {self.kind} {name!r}; "
                    f"valid options: {', '.join(sorted(valid)) or '(none)'}. "
                    f"(Switching {where}.name with --set keeps the old options: replace the "
                    f"whole section instead, e.g. --set '{where}={{name: {name}}}')"
                )
            resolved[key] = coerce(value, hints.get(key, Any), f"{where}.{key}")
        for key, p in valid.items():
            if key in resolved:
                continue
            if p.default is inspect.Parameter.empty:
                raise ConfigError(f"{where}.{key}: required option for {self.kind} {name!r}")
            resolved[key] = p.default
        return resolved


def type_name(tp: Any) -> str:
    if tp is Any:
        return "any"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


# exponent notation without a dot ("1e-4", "3E5"): a number in YAML 1.2, a string to PyYAML
YAML11_MISSED_FLOAT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`; widen int -> float and list -> tuple where asked."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(
            f"{where}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}"
        )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_types = args
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item_types = (args[0],) * len(value)
        elif origin is tuple and args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        if not item_types:
            item_types = (Any,) * len(value)
        elif origin is list:
            item_types = (args[0],) * len(value)
        items = [coerce(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str) and YAML11_MISSED_FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{where}: {value} is too large for a number") from None
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {type_name(tp)}, got {value!r}")
    return value
