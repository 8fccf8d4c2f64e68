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
``str``, ``int``, ``float``, ``bool``, ``dict[str, Any]``, any of them ``| None`` (null kept as
None, "not given"), or a ``Literal`` of strings (one of them). A field without a default is
required.

Every module of the package is imported the first time the backends are looked up
(:func:`backends`), so a backend module must import its heavy dependencies (torch, HTTP
clients) where it uses them, not at the top. A new backend is one new module there, plus its
row in the README's models-file table; nothing else lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from harmeval.registry import ConfigField, Configured, Types, checked, discover
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
# str and dict values are taken as they are, numbers converted as the models file always did
# (int("2048"), float("0.9")); the text is what a wrong type's message says was expected.
_TYPES: Types = {
    str: (checked(str), "a string"),
    int: (int, "an integer"),
    float: (float, "a number"),
    bool: (checked(bool), "true or false"),
    dict: (checked(dict), "a mapping"),
}


class Backend(Configured[C, Factory[C]]):
    """One registered backend: its name in models files, its config and its factory."""

    kind = "backend"
    types = _TYPES
    reserved = RESERVED_FIELDS

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields an entry of this backend may have besides name and backend."""
        return tuple(f.name for f in self.fields)


_BACKENDS: dict[str, Backend[Any]] = {}


def register_backend(name: str, *, config: type[C]) -> Callable[[Factory[C]], Factory[C]]:
    """Register the decorated factory as backend `name`, taking the entry fields `config`
    declares. A name registered twice is a ValueError (two backends claiming one name), not
    a silent replacement."""
    if not name or name != name.strip():
        raise ValueError(f"backend name {name!r}: a non-empty name without spaces around it")
    return Backend.decorator(_BACKENDS, name, config)


def unregister_backend(name: str) -> None:
    """Forget backend `name` (tests that register one of their own clean up with this)."""
    _BACKENDS.pop(name, None)


def backend_modules() -> tuple[str, ...]:
    """Every module of the backends package, imported (once) so that each has registered."""
    return discover(PACKAGE)


def backends() -> Mapping[str, Backend[Any]]:
    """Every registered backend by name (importing the backends package's modules first)."""
    discover(PACKAGE)
    return MappingProxyType(_BACKENDS)
