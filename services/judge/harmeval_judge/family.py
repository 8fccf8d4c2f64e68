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
null kept as None ("not given"); ``tuple[str, ...]`` from a list of strings;
:data:`StructuredOutputMode` from one of the modes' names, or true (``json_schema``) and false
(``none``), as definitions written before the modes wrote it. A config field's
``metadata={"expected": "..."}`` replaces the generic text of its wrong-type error.

Every module of :mod:`harmeval_judge.families` is imported the first time the families are
looked up (:func:`families`), so a new family is one new module there, plus its row in the
README's judge-families table (a test checks the table against this registry).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NewType, TypeVar

from harmeval.registry import ConfigError, Configured, Types, checked, discover
from harmeval_judge.judges import Judge, LlmSettings
from harmeval_judge.llm_client import STRUCTURED_OUTPUTS

__all__ = [
    "NO_STRUCTURED_OUTPUT",
    "RESERVED_FIELDS",
    "BuildContext",
    "DefinitionError",
    "JudgeFamily",
    "LlmFields",
    "StructuredOutputMode",
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

    # A backend the operator declared (harmeval_judge.backends): its URL and key never travel
    # in a definition.
    backend: str = "default"
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


def _str_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _number(tp: type[int] | type[float]) -> Callable[[Any], Any]:
    """A number, or its text ("128" from an environment-made file); never a bool, a list or a
    float cut to an integer."""

    def convert(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"expected a number, got {type(value).__name__}")
        number = tp(value)
        if tp is int and isinstance(value, float) and number != value:
            raise TypeError(f"expected an integer, got {value}")
        # Every number of a definition (a threshold, a token limit) is finite and not
        # negative: NaN or -5 would be taken as sent and quietly judge nothing.
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"expected a finite number of at least 0, got {value!r}")
        return number

    return convert


# An LLM judge's structured output: one of llm_client.STRUCTURED_OUTPUTS.
StructuredOutputMode = NewType("StructuredOutputMode", str)
NO_STRUCTURED_OUTPUT = StructuredOutputMode("none")
_MODES = f"true, false or one of {list(STRUCTURED_OUTPUTS)}"


def _structured_output(value: Any) -> StructuredOutputMode:
    if isinstance(value, bool):
        return StructuredOutputMode("json_schema" if value else "none")
    if not isinstance(value, str):
        raise TypeError(f"expected {_MODES}")
    if value not in STRUCTURED_OUTPUTS:
        # The text "false" is not the boolean: refused like any other unknown mode.
        raise ValueError(f"expected {_MODES}, got {value!r}")
    return StructuredOutputMode(value)


# Each field type's conversion, and the message after "judge 'x'.<field>: " for a wrong type.
# Strict: `structured_output: "false"` or `examples: [a]` would otherwise pass as something else.
_TYPES: Types = {
    str: (checked(str), "expected a string"),
    int: (_number(int), "expected an integer"),
    float: (_number(float), "expected a number"),
    bool: (checked(bool), "expected true or false"),
    tuple[str, ...]: (_str_tuple, "expected a list of strings"),
    StructuredOutputMode: (_structured_output, f"expected {_MODES}"),
}


class JudgeFamily(Configured[C, Builder[C]]):
    """One registered family: its name in definitions, its config and its builder."""

    kind = "judge family"
    types = _TYPES
    reserved = RESERVED_FIELDS

    def parse(self, definition: Mapping[Any, Any], where: str) -> C:
        """The family's config from a definition; DefinitionError names the judge and field."""
        try:
            return self.read(definition, f"family {self.name!r}")
        except ConfigError as exc:
            raise DefinitionError(f"{where}.{exc.field}: {exc.message}") from None

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
    return JudgeFamily.decorator(_FAMILIES, name, config)


def families() -> Mapping[str, JudgeFamily[Any]]:
    """Every registered family by name (importing :mod:`harmeval_judge.families` first)."""
    discover("harmeval_judge.families")
    return MappingProxyType(_FAMILIES)
