"""Values from user files checked against the types their dataclass fields declare.

YAML and JSON hand over whatever the user wrote: the string "yes please" where a boolean belongs,
a word where a number does. `check_types` refuses such a value with one line naming the field,
what it must be and what it got, before any code uses it (a non-empty string is truthy, so an
unchecked `trust_remote_code: "no"` would turn remote code on).

Types understood: bool, int, float (an int is accepted), str, Path (a string), None, unions,
`Any`, `Literal`, dict[K, V], list[X], tuple[X, ...] and tuple[X, Y] (a YAML list is accepted
for a tuple).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from emf_bench.errors import EmfBenchError


def matches(value: Any, kind: Any) -> bool:
    """Whether `value` (as parsed from YAML or JSON) is of type `kind`."""
    if kind is Any or kind is object:
        return True
    if kind is None or kind is type(None):
        return value is None
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is Path:
        return isinstance(value, (str, Path))
    if kind is dict or origin is dict:
        return isinstance(value, dict) and (not args or all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()))
    if kind in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(map(matches, value, args))
        return all(matches(v, args[0]) for v in value)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # a type this checker does not know: left to the field's own validation


def describe(kind: Any) -> str:
    """A type in words, for error messages ("a boolean (true or false)")."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        words = [describe(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    simple = {bool: "a boolean (true or false)", int: "an integer", float: "a number",
              str: "a string", Path: "a path", dict: "a mapping", list: "a list",
              tuple: "a list"}
    if kind in simple:
        return simple[kind]
    if origin is dict:
        return f"a mapping of {describe(args[1])} values" if args else "a mapping"
    if origin in (list, tuple):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    return getattr(kind, "__name__", str(kind))


def _plural(words: str) -> str:
    for article in ("an ", "a "):
        if words.startswith(article):
            noun = words[len(article):]
            return noun.replace("boolean", "booleans").replace("integer", "integers").replace(
                "number", "numbers").replace("string", "strings").replace("path", "paths")
    return words


def check_value(value: Any, kind: Any, name: str, where: str) -> None:
    """One value against one type; one line naming the field if it does not match."""
    if not matches(value, kind):
        raise EmfBenchError(f"{where}: {name} must be {describe(kind)}, got {value!r}")


def check_types(cls: type, data: dict[str, Any], where: str) -> None:
    """Each value of `data` against the type its field in dataclass `cls` declares."""
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if name in hints:
            check_value(value, hints[name], name, where)
