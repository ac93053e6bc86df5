"""A task's settings as frozen dataclasses: to JSON and back, with validated overrides.

A task keeps its simulation settings (hashed into a dataset's manifest) and its reading
settings as frozen dataclasses, possibly nested (``msft``, ``imaging``, ...). This module turns
them into JSON-able dicts (:func:`settings_dict`) and applies overrides given by name, as a
command line or a manifest gives them (:func:`merge_settings`, :func:`apply_overrides`):

* a key is a field (``{"radius_nm": [40, 100]}``), a nested dataclass given as a dict merged
  into it (``{"msft": {"n_xy": 32}}``), or the *flat* name of a field of exactly one nested
  dataclass (``{"n_xy": 32}`` sets ``msft.n_xy``); when a nested dict and flat keys for it are
  both given, the dict is applied first, then the flat keys;
* each value is checked and coerced against the field's annotation (``bool``, ``int``,
  ``float``, ``str``, ``complex`` as a number or ``[re, im]``, ``Literal[...]``,
  ``tuple[T, ...]`` and ``tuple[T1, T2]`` from a list, ``X | None``, nested dataclasses,
  ``dict``); an annotation it cannot interpret (or cannot resolve) accepts any value;
* the dataclass's own ``__post_init__`` checks still run (through ``dataclasses.replace``).

Every refusal is a :class:`SettingsError` naming the owner (the task) and the dotted field,
e.g. ``mytask setting imaging.pixel_um: expected a number, got 'big'``. The module uses
the standard library only and nothing else of retroscope.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import types
import typing
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, Union, get_args, get_origin


class SettingsError(ValueError):
    """An unknown, ambiguous or ill-typed setting; the message names its owner and path."""


# -- to JSON ----------------------------------------------------------------------------------
def settings_dict(obj: Any) -> dict:
    """The JSON-able dict of a (possibly nested) settings dataclass: nested dataclasses become
    dicts (through their own ``to_dict`` when they have one), tuples lists, complex numbers
    ``[real, imag]``; everything else is kept as it is."""
    return _jsonable(obj)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if callable(getattr(value, "to_dict", None)):
            return value.to_dict()
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, complex):
        return [value.real, value.imag]
    return value


# -- overrides --------------------------------------------------------------------------------
def apply_overrides(settings: Any, view: Any, overrides: Mapping,
                    owner: str) -> tuple[Any, Any]:
    """(settings, view) with ``overrides`` applied: a key that ``view`` knows (a field of it,
    or the flat name of a nested one) goes to ``view``, every other key to ``settings``.
    Either may be None (it then knows no key); unchanged ones are returned as they are."""
    view_keys = _keys(view) if view is not None else set()
    settings_keys = _keys(settings) if settings is not None else set()
    to_view = {k: v for k, v in overrides.items() if k in view_keys}
    rest = {k: v for k, v in overrides.items() if k not in view_keys}
    for key in rest:
        if key not in settings_keys:
            known = (_names(settings) if settings is not None else []) + (
                _names(view) if view is not None else [])
            raise _unknown(owner, key, known)
    if to_view:
        view = merge_settings(view, to_view, owner)
    if rest:
        settings = merge_settings(settings, rest, owner)
    return settings, view


def merge_settings(obj: Any, overrides: Mapping, owner: str, path: str = "") -> Any:
    """``dataclasses.replace(obj, ...)`` with ``overrides`` checked and coerced (see the module
    docstring); ``path`` is the dotted place of ``obj`` in its owner's settings."""
    fields, hints, flat = _init_fields(type(obj)), _hints(type(obj)), _flat_index(obj)
    direct: dict[str, Any] = {}
    nested: dict[str, dict] = {}  # nested field -> its overrides: the dict given for it ...
    flats: list[tuple[list[str], Any]] = []  # ... then its flat keys, applied after the dict
    for key, value in overrides.items():
        if key in fields:
            if _is_instance(getattr(obj, key)) and isinstance(value, Mapping):
                nested[key] = _plain(value)
            else:
                direct[key] = value
        elif len(flat.get(key, ())) == 1:
            flats.append((list(flat[key][0]), value))
        elif key in flat:
            paths = " and ".join(_join(path, ".".join(p)) for p in flat[key])
            raise SettingsError(f"{owner}: ambiguous setting {_join(path, key)!r}: it names "
                                f"{paths}; give it as a nested dict")
        else:
            raise _unknown(owner, _join(path, key), [_join(path, n) for n in _names(obj)])
    for (head, *rest), value in flats:
        _deep_set(nested.setdefault(head, {}), rest, value, owner, _join(path, head))
    changes = {}
    for name, value in direct.items():
        where = _join(path, name)
        try:
            changes[name] = _coerce(value, hints.get(name, Any), getattr(obj, name),
                                    (owner, where))
        except _Refused as exc:
            raise SettingsError(f"{owner} setting {where}{exc.sub}: expected {exc.expected}, "
                                f"got {exc.value!r}") from None
    for name, value in nested.items():
        base = changes.pop(name, getattr(obj, name))
        changes[name] = merge_settings(base, value, owner, _join(path, name))
    try:
        return dataclasses.replace(obj, **changes)
    except SettingsError:
        raise
    except (ValueError, TypeError) as exc:  # the dataclass's own checks (__post_init__)
        names = ", ".join(_join(path, n) for n in changes) or path
        raise SettingsError(f"{owner} setting {names}: {exc}") from exc


class _Refused(Exception):
    """A value that does not fit an annotation: what was expected, and where inside it."""

    def __init__(self, expected: str, value: Any, sub: str = "") -> None:
        super().__init__(expected)
        self.expected, self.value, self.sub = expected, value, sub


def _coerce(value: Any, hint: Any, current: Any = None, ctx: tuple[str, str] = ("", "")) -> Any:
    """``value`` checked against the annotation ``hint`` and converted (list -> tuple,
    int -> float, [re, im] -> complex, dict -> nested dataclass merged into ``current``);
    ``ctx`` = (owner, dotted path) for the messages of a nested dataclass."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, hint, args, current, ctx)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Refused(_describe(hint), value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif hint is complex:
        if isinstance(value, numbers.Complex) and not isinstance(value, bool):
            return complex(value)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
            return complex(float(value[0]), float(value[1]))
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif hint is tuple or origin is tuple:
        if isinstance(value, (list, tuple)):
            return _coerce_tuple(value, hint, args)
    elif hint is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            base = current if isinstance(current, hint) else hint()
            return merge_settings(base, value, *ctx)
    else:
        return value  # an annotation this module does not interpret: anything goes
    raise _Refused(_describe(hint), value)


def _coerce_union(value: Any, hint: Any, args: tuple, current: Any,
                  ctx: tuple[str, str]) -> Any:
    if value is None and type(None) in args:
        return None
    members = [a for a in args if a is not type(None)]
    for member in members:
        try:
            return _coerce(value, member, current, ctx)
        except _Refused as exc:
            if len(members) == 1 and exc.sub:
                raise  # the problem lies inside the value: report it there
    raise _Refused(_describe(hint), value)


def _coerce_tuple(value: list | tuple, hint: Any, args: tuple) -> tuple:
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        types_ = (args[0],) * len(value)
    elif len(value) != len(args):
        raise _Refused(_describe(hint), value)
    else:
        types_ = args
    out = []
    for i, (v, t) in enumerate(zip(value, types_)):
        try:
            out.append(_coerce(v, t))
        except _Refused as exc:
            raise _Refused(exc.expected, exc.value, f"[{i}]{exc.sub}") from None
    return tuple(out)


def _describe(hint: Any) -> str:
    """What an annotation asks for, in words (for messages)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if hint is tuple or origin is tuple:
        fixed = args and not (len(args) == 2 and args[1] is Ellipsis)
        return f"a list of {len(args)} values" if fixed else "a list"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"a dict of {hint.__name__} settings"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             complex: "a complex number or [re, im]", type(None): "None", dict: "a dict"}
    return words.get(hint, words.get(origin, str(hint)))


# -- names ------------------------------------------------------------------------------------
def _is_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


@lru_cache(maxsize=None)
def _init_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a dataclass; where they cannot be resolved, the
    unresolved ones (strings) are replaced by Any (no check)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - e.g. a name imported only for type checkers
        return {f.name: Any if isinstance(f.type, str) else f.type
                for f in dataclasses.fields(cls)}


def _flat_index(obj: Any) -> dict[str, list[tuple[str, ...]]]:
    """Each name reachable inside the nested dataclasses of ``obj`` (at any depth) that is not
    a field of ``obj`` itself -> the paths (tuples of names) it names."""
    index: dict[str, list[tuple[str, ...]]] = {}
    own = set(_init_fields(type(obj)))

    def walk(value: Any, prefix: tuple[str, ...]) -> None:
        for name in _init_fields(type(value)):
            if name not in own:
                index.setdefault(name, []).append(prefix + (name,))
            child = getattr(value, name)
            if _is_instance(child):
                walk(child, prefix + (name,))

    for name in _init_fields(type(obj)):
        if _is_instance(getattr(obj, name)):
            walk(getattr(obj, name), (name,))
    return index


def _keys(obj: Any) -> set[str]:
    """The keys ``merge_settings(obj, ...)`` knows: its fields and the flat names of nested
    ones (ambiguous ones included: ``merge_settings`` says why it refuses them)."""
    return set(_init_fields(type(obj))) | set(_flat_index(obj))


def _names(obj: Any) -> list[str]:
    """Every setting of ``obj`` by its dotted name (for messages)."""
    names = []
    for name in _init_fields(type(obj)):
        names.append(name)
        child = getattr(obj, name)
        if _is_instance(child):
            names.extend(f"{name}.{n}" for n in _names(child))
    return names


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _plain(mapping: Mapping) -> dict:
    """A copy of a nested override mapping as plain dicts (so flat keys can be set into it)."""
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


def _deep_set(target: dict, rest: list[str], value: Any, owner: str, where: str) -> None:
    """Set ``value`` at the path ``rest`` inside the nested override dict ``target``, over
    what the dict given for it holds."""
    for name in rest[:-1]:
        where = _join(where, name)
        inner = target.setdefault(name, {})
        if not isinstance(inner, dict):
            raise SettingsError(f"{owner} setting {where}: given both whole and by its fields")
        target = inner
    target[rest[-1]] = value


def _unknown(owner: str, key: str, known: list[str]) -> SettingsError:
    leaves = {n.rsplit(".", 1)[-1]: n for n in reversed(known)}  # flat name -> dotted name
    close = difflib.get_close_matches(key, known, n=1) or [
        leaves[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], leaves, n=1)]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(known) or "none"
    return SettingsError(f"{owner}: unknown setting {key!r}{hint}; known: {names}")
