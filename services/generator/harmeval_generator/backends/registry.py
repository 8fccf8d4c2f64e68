"""Backends register themselves: ``@register_backend(name, config=...)`` on a factory.

A backend is what a models-file entry's ``backend:`` names. Its module in
:mod:`harmeval_generator.backends` declares the fields an entry of that backend may have as a
frozen dataclass, the backend's *config* (a default for every optional field), and registers a
factory that turns a config into an engine::

    @dataclass(frozen=True, kw_only=True)
    class TgiConfig:
        base_url: str
        timeout_s: float = 120.0
        context_length: int | None = None  # None: what the server says

    @register_backend("tgi", config=TgiConfig)
    def build(name: str, config: TgiConfig, settings: GeneratorSettings) -> Engine:
        return TgiEngine(name, config.base_url, timeout_s=config.timeout_s, ...)

A config field's type says how :mod:`harmeval_generator.engines` reads the entry's value:
``str``, ``int``, ``float``, ``dict[str, Any]``, any of them ``| None`` (null kept as None, "not
given"), or a ``Literal`` of strings (one of them). A field without a default is required.

Every module of the package is imported the first time the backends are looked up
(:func:`backends`), so a backend module must import its heavy dependencies (torch, HTTP
clients) where it uses them, not at the top. A new backend is one new module there, plus its
row in the README's models-file table; nothing else lists them.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from harmeval_generator.backends.base import Engine
from harmeval_generator.settings import GeneratorSettings

__all__ = [
    "RESERVED_FIELDS",
    "Backend",
    "ConfigField",
    "Factory",
    "backends",
    "register_backend",
    "unregister_backend",
]

C = TypeVar("C")
Factory = Callable[[str, C, GeneratorSettings], Engine]

# Fields of every models-file entry, read by the generator itself; a config may not declare them.
RESERVED_FIELDS = ("name", "backend")
PACKAGE = "harmeval_generator.backends"


@dataclass(frozen=True, kw_only=True)
class ConfigField:
    """One field a backend's config declares, and how an entry's value becomes its value."""

    name: str
    required: bool
    # The value as the config's type; TypeError when it has the wrong type, ValueError when
    # it does not parse (int("2k")).
    convert: Callable[[Any], Any]
    # What the field takes, for a TypeError's message: "an integer".
    expected: str
    # The allowed values of a Literal field; None for any value of the type.
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Backend(Generic[C]):
    """One registered backend: its name in models files, its config and its factory."""

    name: str
    config: type[C]
    build: Factory[C]
    module: str  # the module that registered it
    fields: tuple[ConfigField, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields an entry of this backend may have besides name and backend."""
        return tuple(f.name for f in self.fields)


def _of_type(tp: type[Any]) -> Callable[[Any], Any]:
    """str and dict values are taken as they are, numbers converted as the models file always
    did (int("2048"), float("0.9")); anything else is a TypeError."""
    if tp in (int, float):
        return tp

    def checked(value: Any) -> Any:
        if not isinstance(value, tp):
            raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
        return value

    return checked


_EXPECTED = {str: "a string", int: "an integer", float: "a number", dict: "a mapping"}


def _config_field(backend: str, f: dataclasses.Field[Any], tp: Any) -> ConfigField:
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    args = typing.get_args(tp)
    optional = typing.get_origin(tp) in (types.UnionType, typing.Union) and (
        len(args) == 2 and args[1] is type(None)
    )
    inner = args[0] if optional else tp
    base = typing.get_origin(inner) or inner
    choices: tuple[str, ...] | None = None
    if base is typing.Literal and all(isinstance(a, str) for a in typing.get_args(inner)):
        choices = typing.get_args(inner)
        base = str
    if base not in _EXPECTED:
        raise TypeError(f"backend {backend!r}: config field {f.name!r} has type {tp!r}")
    convert = _of_type(base)
    if optional:
        convert = _none_or(convert)
    return ConfigField(
        name=f.name,
        required=required,
        convert=convert,
        expected=_EXPECTED[base],
        choices=choices,
    )


def _none_or(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _config_fields(backend: str, config: type[Any]) -> tuple[ConfigField, ...]:
    params = getattr(config, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(config) or params is None or not params.frozen:
        raise TypeError(f"backend {backend!r}: config must be a frozen dataclass")
    hints = typing.get_type_hints(config)
    fields = tuple(_config_field(backend, f, hints[f.name]) for f in dataclasses.fields(config))
    reserved = [f.name for f in fields if f.name in RESERVED_FIELDS]
    if reserved:
        raise TypeError(f"backend {backend!r}: config may not declare {reserved}")
    return fields


_BACKENDS: dict[str, Backend[Any]] = {}


def register_backend(name: str, *, config: type[C]) -> Callable[[Factory[C]], Factory[C]]:
    """Register the decorated factory as backend `name`, taking the entry fields `config`
    declares. A name registered twice is a ValueError (two backends claiming one name), not
    a silent replacement."""
    if not name or name != name.strip():
        raise ValueError(f"backend name {name!r}: a non-empty name without spaces around it")
    fields = _config_fields(name, config)

    def register(build: Factory[C]) -> Factory[C]:
        if name in _BACKENDS:
            raise ValueError(f"backend {name!r} is already registered by {_BACKENDS[name].module}")
        _BACKENDS[name] = Backend(
            name=name, config=config, build=build, module=build.__module__, fields=fields
        )
        return build

    return register


def unregister_backend(name: str) -> None:
    """Forget backend `name` (tests that register one of their own clean up with this)."""
    _BACKENDS.pop(name, None)


_discovered: list[str] = []


def backend_modules() -> tuple[str, ...]:
    """Every module of the backends package, imported (once) so that each has registered."""
    if not _discovered:
        package = importlib.import_module(PACKAGE)
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
        for module in names:
            importlib.import_module(f"{PACKAGE}.{module}")
        _discovered.extend(names)
    return tuple(_discovered)


def backends() -> Mapping[str, Backend[Any]]:
    """Every registered backend by name (importing the backends package's modules first)."""
    backend_modules()
    return MappingProxyType(_BACKENDS)
