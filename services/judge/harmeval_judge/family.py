"""Judge families register themselves: ``@judge_family(name, config=...)`` on a builder.

A family is what a judge definition's ``family:`` names. Its module in
:mod:`harmeval_judge.families` declares the definition fields the family allows as a frozen
dataclass, the family's *config*, and registers a builder that turns a parsed config into a
judge::

    @dataclass(frozen=True, kw_only=True)
    class ReferenceMetricConfig:
        metric: str | None = None  # None: the judge's name
        threshold: float = 0.5

    @judge_family("reference-metric", config=ReferenceMetricConfig)
    def build(name: str, config: ReferenceMetricConfig, ctx: BuildContext) -> Judge: ...

:class:`~harmeval_judge.definitions.JudgeRegistry` looks a definition's family up here, parses
the definition into the family's config and calls the builder. Parsing refuses a field the
config does not declare (a DefinitionError naming the judge and the field, and listing the
fields allowed) and converts each value to its declared type: ``str``, ``int``, ``float`` and
``bool`` as ``str(v)``, ``int(v)``, ``float(v)``, ``bool(v)``; ``X | None`` the same, with
null kept as None ("not given"); ``tuple[str, ...]`` from a list of strings. A config field's
``metadata={"expected": "..."}`` replaces the generic text of its wrong-type error.

Every module of :mod:`harmeval_judge.families` is imported the first time the families are
looked up (:func:`families`), so a new family is one new module there, plus its row in the
README's judge-families table (a test checks the table against this registry).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from harmeval_judge.judges import Judge, LlmSettings

__all__ = [
    "RESERVED_FIELDS",
    "BuildContext",
    "DefinitionError",
    "JudgeFamily",
    "LlmFields",
    "families",
    "judge_family",
]

C = TypeVar("C")

# Fields of every definition, read by the registry itself; a config may not declare them.
RESERVED_FIELDS = ("name", "family")
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


class DefinitionError(ValueError):
    """A judge definition is wrong; the message names the judge and the field."""


@dataclass(frozen=True, kw_only=True)
class LlmFields:
    """The endpoint fields of every LLM-backed family; None means the service's setting
    (``HARMEVAL_JUDGE_LLM_*``). The registry turns them into :class:`LlmSettings`."""

    base_url: str | None = None
    # The name of the environment variable holding the key: the key never travels.
    api_key_env: str | None = None
    model: str | None = None
    transport: str | None = None  # openai-sdk | aiohttp
    max_tokens: int | None = None


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    """What a builder gets from the registry besides its config."""

    # "judge 'name'": the start of every DefinitionError message about this definition.
    where: str
    # The judges defined so far (a panel's members must be among them).
    judges: Mapping[str, Judge]
    # The registry's LLM settings (endpoint, key, model, prices) for a definition's fields.
    llm: Callable[[LlmFields], LlmSettings]


Builder = Callable[[str, C, BuildContext], Judge]


@dataclass(frozen=True, kw_only=True)
class _FieldSpec:
    name: str
    convert: Callable[[Any], Any]
    # The message after "judge 'x'.<field>: " when convert raises TypeError.
    expected: str
    required: bool


_SCALARS: dict[Any, str] = {
    str: "expected a string",
    int: "expected an integer",
    float: "expected a number",
    bool: "expected true or false",
}


def _str_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else convert(v)


def _spec(family: str, f: dataclasses.Field[Any], tp: Any) -> _FieldSpec:
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    convert: Callable[[Any], Any]
    if tp in _SCALARS:
        convert, expected = tp, _SCALARS[tp]
    elif (
        origin in (types.UnionType, typing.Union)
        and len(args) == 2
        and args[1] is type(None)
        and args[0] in _SCALARS
    ):
        convert, expected = _optional(args[0]), _SCALARS[args[0]]
    elif origin is tuple and args == (str, Ellipsis):
        convert, expected = _str_tuple, "expected a list of strings"
    else:
        raise TypeError(f"judge family {family!r}: config field {f.name!r} has type {tp!r}")
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return _FieldSpec(
        name=f.name,
        convert=convert,
        expected=str(f.metadata.get("expected", expected)),
        required=required,
    )


def _field_specs(family: str, config: type[Any]) -> tuple[_FieldSpec, ...]:
    params = getattr(config, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(config) or params is None or not params.frozen:
        raise TypeError(f"judge family {family!r}: config must be a frozen dataclass")
    hints = typing.get_type_hints(config)
    specs = tuple(_spec(family, f, hints[f.name]) for f in dataclasses.fields(config))
    reserved = [s.name for s in specs if s.name in RESERVED_FIELDS]
    if reserved:
        raise TypeError(f"judge family {family!r}: config may not declare {reserved}")
    return specs


@dataclass(frozen=True, kw_only=True)
class JudgeFamily(Generic[C]):
    """One registered family: its name in definitions, its config and its builder."""

    name: str
    config: type[C]
    build: Builder[C]
    module: str  # the module that registered it
    fields: tuple[_FieldSpec, ...]

    @property
    def allowed(self) -> tuple[str, ...]:
        """The definition fields this family allows, in declaration order."""
        return (*RESERVED_FIELDS, *(f.name for f in self.fields))

    def parse(self, definition: Mapping[Any, Any], where: str) -> C:
        """The family's config from a definition; DefinitionError names the judge and field."""
        known = set(self.allowed)
        unknown = sorted((k for k in definition if k not in known), key=str)
        if unknown:
            raise DefinitionError(
                f"{where}.{unknown[0]}: not a field of family {self.name!r}; expected one of "
                f"{list(self.allowed)}"
            )
        values: dict[str, Any] = {}
        for spec in self.fields:
            if spec.name not in definition:
                if spec.required:
                    raise DefinitionError(f"{where}.{spec.name}: required; {spec.expected}")
                continue
            try:
                values[spec.name] = spec.convert(definition[spec.name])
            except TypeError:
                raise DefinitionError(f"{where}.{spec.name}: {spec.expected}") from None
            except (ValueError, OverflowError) as exc:
                raise DefinitionError(f"{where}.{spec.name}: {exc}") from None
        config: Any = self.config
        return typing.cast(C, config(**values))

    def create(self, name: str, definition: Mapping[Any, Any], ctx: BuildContext) -> Judge:
        """The judge a definition of this family describes."""
        return self.build(name, self.parse(definition, ctx.where), ctx)


_FAMILIES: dict[str, JudgeFamily[Any]] = {}


def judge_family(name: str, *, config: type[C]) -> Callable[[Builder[C]], Builder[C]]:
    """Register the decorated builder as family `name` with the definition fields `config`
    declares. A name registered twice is a ValueError (a module imported twice, or two
    families claiming one name), not a silent replacement."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"judge family name {name!r}: lower-case words joined by '-'")
    fields = _field_specs(name, config)

    def register(build: Builder[C]) -> Builder[C]:
        if name in _FAMILIES:
            raise ValueError(
                f"judge family {name!r} is already registered by {_FAMILIES[name].module}"
            )
        _FAMILIES[name] = JudgeFamily(
            name=name, config=config, build=build, module=build.__module__, fields=fields
        )
        return build

    return register


def families() -> Mapping[str, JudgeFamily[Any]]:
    """Every registered family by name (importing :mod:`harmeval_judge.families` first)."""
    importlib.import_module("harmeval_judge.families")
    return MappingProxyType(_FAMILIES)
