"""Name -> component registries, so a YAML string maps to a builder.

A builder's keyword arguments are its options; `build` checks names and types of the options a
recipe gives against the builder's signature, so a typo fails before training with the list of
valid options instead of a TypeError deep inside a constructor.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from gankit.errors import ConfigError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return decorate

    def names(self) -> list[str]:
        return sorted(self._builders)

    def in_order(self) -> list[str]:
        """The names in the order they were registered."""
        return list(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def get(self, name: str, where: str = "name") -> Callable[..., Any]:
        if name not in self._builders:
            raise ConfigError(
                f"{where}: unknown {self.kind} {name!r}; "
                f"valid choices: {', '.join(self.names()) or '(none yet)'}"
            )
        return self._builders[name]

    def options(self, name: str, framework_args: tuple[str, ...] = ()) -> dict[str, Any]:
        """User-settable options of a builder with their defaults (framework args excluded)."""
        sig = inspect.signature(self.get(name))
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
        sig = inspect.signature(builder)
        hints = typing.get_type_hints(builder)
        valid = {
            p.name: p
            for p in sig.parameters.values()
            if p.name not in framework_args and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        resolved: dict[str, Any] = {}
        for key, value in options.items():
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
