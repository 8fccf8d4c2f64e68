"""Name → entry registries filled by the modules of a package, and typed configs for entries.

A registry is a ``dict`` of entries by name (judge families, generator backends, statistics),
filled by decorators in a package's modules (:func:`register`, :func:`discover`). A
:class:`Configured` entry takes a config: a frozen dataclass of the fields it allows, read from
a definition with each value converted to its field's type, or a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

# A field's value from a definition's: TypeError for the wrong type, ValueError if it does not
# parse (int("2k")). Types: a service's field types (int, tuple[str, ...], or a generic's origin
# such as dict), each one's converter and what a wrong type's message says the field takes.
Converter = Callable[[Any], Any]
Types = Mapping[Any, tuple[Converter, str]]
B = TypeVar("B", bound=Callable[..., Any])
C = TypeVar("C")


def register(entries: dict[str, Any], kind: str, name: str, entry: Any) -> None:
    """``entries[name] = entry``, refusing a name taken already (two modules claiming it): a
    ValueError naming the module that registered it first."""
    if name in entries:
        raise ValueError(f"{kind} {name!r} is already registered by {entries[name].module}")
    entries[name] = entry


@functools.cache
def discover(package: str) -> tuple[str, ...]:
    """The names of `package`'s modules, each imported (once) so that it has registered. Two
    threads may both run it at first: the second waits on each module the first imports."""
    path = importlib.import_module(package).__path__
    names = tuple(sorted(m.name for m in pkgutil.iter_modules(path)))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


# What a ConfigError found: a key that is no field, a required field missing, a value of the
# wrong type, one that does not parse, or one not among the field's choices.
Mistake = Literal["unknown", "missing", "type", "value", "choice"]


class ConfigError(ValueError):
    """A definition's value for a config is wrong: `field` names it, `message` says why and
    `kind` what the mistake is; for an unknown key (`field`, the first), `unknown` lists all."""

    def __init__(
        self, field: str, message: str, *, kind: Mistake, unknown: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.kind, self.unknown = field, message, kind, unknown


@dataclass(frozen=True, kw_only=True)
class ConfigField:
    """One field of a config, and how a definition's value becomes its value."""

    name: str
    required: bool  # it has no default
    convert: Converter
    expected: str  # from the Types, or the field's metadata={"expected": ...}
    choices: tuple[str, ...] | None = None  # a Literal field's values


@dataclass(frozen=True, kw_only=True)
class Configured(Generic[C, B]):
    """A registered entry with a config: its name, config, builder and the config's fields."""

    kind: ClassVar[str]  # "backend": how errors name an entry
    types: ClassVar[Types]
    reserved: ClassVar[tuple[str, ...]]  # fields of every definition, read by the service

    name: str
    config: type[C]
    build: B
    module: str  # the module that registered it
    fields: tuple[ConfigField, ...]

    @classmethod
    def decorator(cls, entries: dict[str, Any], name: str, config: type[C]) -> Callable[[B], B]:
        """A decorator registering its builder in `entries` as `name` with `config`."""
        fields = config_fields(config, cls.types, f"{cls.kind} {name!r}", cls.reserved)

        def add(build: B) -> B:
            new = cls(name=name, config=config, build=build, module=build.__module__, fields=fields)
            register(entries, cls.kind, name, new)
            return build

        return add

    @property
    def allowed(self) -> tuple[str, ...]:
        """The fields a definition may have (the reserved ones first), in declaration order."""
        return (*self.reserved, *(f.name for f in self.fields))

    def read(self, values: Mapping[Any, Any], owner: str) -> C:
        """The config from a definition's `values`; a ConfigError for unknown keys, a required
        field missing, a value of the wrong type, one that does not parse, or one not among the
        field's choices (the fields with choices read first, then the others in order)."""
        unknown = tuple(sorted((k for k in values if k not in self.allowed), key=str))
        if unknown:
            message = f"not a field of {owner}; expected one of {list(self.allowed)}"
            raise ConfigError(str(unknown[0]), message, kind="unknown", unknown=unknown)
        parsed: dict[str, Any] = {}
        for f in sorted(self.fields, key=lambda f: f.choices is None):
            if f.name not in values:
                if f.required:
                    raise ConfigError(f.name, f"required; {f.expected}", kind="missing")
                continue
            try:
                value = parsed[f.name] = f.convert(values[f.name])
            except TypeError:
                raise ConfigError(f.name, f.expected, kind="type") from None
            except (ValueError, OverflowError) as exc:
                raise ConfigError(f.name, str(exc), kind="value") from None
            if f.choices is not None and value is not None and value not in f.choices:
                message = f"expected one of {list(f.choices)}, got {value!r}"
                raise ConfigError(f.name, message, kind="choice")
        return self.config(**parsed)


def checked(tp: type[Any]) -> Converter:
    """A converter taking values of `tp` as they are; anything else is a TypeError."""

    def convert(value: Any) -> Any:
        if not isinstance(value, tp):
            raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
        return value

    return convert


def config_fields(
    config: type[Any], types: Types, owner: str, reserved: tuple[str, ...]
) -> tuple[ConfigField, ...]:
    """The fields of `config`, each of one of `types`, ``| None`` (None kept) or not, or a
    ``Literal`` of strings (a ``str`` with choices). A TypeError starting with `owner` for any
    other type, a config that is not a frozen dataclass, or one declaring a `reserved` field."""
    params = getattr(config, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(config) or params is None or not params.frozen:
        raise TypeError(f"{owner}: config must be a frozen dataclass")
    hints = typing.get_type_hints(config)
    fields = tuple(_field(owner, f, hints[f.name], types) for f in dataclasses.fields(config))
    declared = [f.name for f in fields if f.name in reserved]
    if declared:
        raise TypeError(f"{owner}: config may not declare {declared}")
    return fields


def _field(owner: str, f: dataclasses.Field[Any], tp: Any, types: Types) -> ConfigField:
    args = get_args(tp)
    optional = get_origin(tp) in (UnionType, typing.Union) and args[1:] == (NoneType,)
    inner, choices = args[0] if optional else tp, None
    if get_origin(inner) is Literal and all(isinstance(a, str) for a in get_args(inner)):
        inner, choices = str, get_args(inner)
    known = types.get(inner) or types.get(get_origin(inner))
    if known is None:
        raise TypeError(f"{owner}: config field {f.name!r} has type {tp!r}")
    convert, expected = known
    return ConfigField(
        name=f.name,
        required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        convert=(lambda v: None if v is None else convert(v)) if optional else convert,
        expected=str(f.metadata.get("expected", expected)),
        choices=choices,
    )
