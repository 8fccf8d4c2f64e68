"""The kernel's registries: names registered once, packages discovered once, typed configs."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, TypeVar

import pytest

from harmeval.registry import (
    ConfigError,
    Configured,
    Types,
    checked,
    config_fields,
    discover,
    register,
)

C = TypeVar("C")


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("not a list of strings")
    return tuple(value)


TYPES: Types = {
    str: (checked(str), "a string"),
    int: (int, "an integer"),
    dict: (checked(dict), "a mapping"),
    tuple[str, ...]: (_names, "a list of names"),
}


class Widget(Configured[C, Callable[[str, C], str]]):
    kind = "widget"
    types = TYPES
    reserved = ("name", "kind")


@dataclass(frozen=True, kw_only=True)
class WidgetConfig:
    colour: Literal["red", "green"]
    size: int | None = 3
    label: str = field(default="", metadata={"expected": "a label, in quotes"})
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] | None = None


def build(name: str, config: WidgetConfig) -> str:
    return f"{name}: {config.colour}"


# --- registering ----------------------------------------------------------------------------


def test_a_name_is_registered_once_and_the_error_names_the_module_that_has_it() -> None:
    entries: dict[str, Any] = {}
    register(entries, "thing", "a", SimpleNamespace(module="pkg.first"))
    with pytest.raises(ValueError, match=r"^thing 'a' is already registered by pkg\.first$"):
        register(entries, "thing", "a", SimpleNamespace(module="pkg.second"))
    assert entries["a"].module == "pkg.first"


def test_a_configured_entry_registers_its_builder_with_its_module() -> None:
    entries: dict[str, Any] = {}
    assert Widget.decorator(entries, "w", WidgetConfig)(build) is build
    widget = entries["w"]
    assert isinstance(widget, Widget) and widget.build is build and widget.module == __name__
    assert widget.allowed == ("name", "kind", "colour", "size", "label", "tags", "extra")
    assert [f.name for f in widget.fields if f.required] == ["colour"]
    assert widget.fields[0].choices == ("red", "green")
    message = rf"^widget 'w' is already registered by {re.escape(__name__)}$"
    with pytest.raises(ValueError, match=message):
        Widget.decorator(entries, "w", WidgetConfig)(lambda name, config: "other")
    assert entries["w"] is widget


# --- discovering ----------------------------------------------------------------------------


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package of two modules and a subpackage, each noting in the package that it ran."""
    name = f"registry_test_{uuid.uuid4().hex}"
    root = tmp_path / name
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("LOADED: list[str] = []\n")
    for module in ("beta", "alpha", "sub/__init__"):
        (root / f"{module}.py").write_text(f"from {name} import LOADED\nLOADED.append(__name__)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def test_discovery_imports_every_module_of_the_package_once(package: str) -> None:
    assert discover(package) == ("alpha", "beta", "sub")
    loaded = sys.modules[package].LOADED
    assert loaded == [f"{package}.alpha", f"{package}.beta", f"{package}.sub"]
    assert discover(package) == ("alpha", "beta", "sub")
    assert len(loaded) == 3


# --- typed configs --------------------------------------------------------------------------


@pytest.fixture
def widget() -> Widget[WidgetConfig]:
    entries: dict[str, Any] = {}
    Widget.decorator(entries, "w", WidgetConfig)(build)
    entry: Widget[WidgetConfig] = entries["w"]
    return entry


def test_a_definition_is_read_into_the_config(widget: Widget[WidgetConfig]) -> None:
    config = widget.read({"name": "n", "kind": "widget", "colour": "green", "size": "7"}, "w")
    assert config == WidgetConfig(colour="green", size=7)
    both = widget.read({"colour": "red", "tags": ["a", "b"], "extra": {"k": 1}}, "w")
    assert both.tags == ("a", "b") and both.extra == {"k": 1} and both.size == 3


def test_none_is_kept_for_an_optional_field_only(widget: Widget[WidgetConfig]) -> None:
    assert widget.read({"colour": "red", "size": None, "extra": None}, "w").size is None
    with pytest.raises(ConfigError) as err:
        widget.read({"colour": "red", "label": None}, "w")
    assert (err.value.field, err.value.message) == ("label", "a label, in quotes")


@pytest.mark.parametrize(
    ("values", "field_name", "message"),
    [
        (
            {"colour": "red", "sise": 2, "zzz": 1},
            "sise",
            "not a field of widget 'w'; expected one of "
            "['name', 'kind', 'colour', 'size', 'label', 'tags', 'extra']",
        ),
        ({"size": 2}, "colour", "required; a string"),
        ({"colour": 1}, "colour", "a string"),
        ({"colour": "red", "size": [2]}, "size", "an integer"),
        ({"colour": "red", "tags": "a"}, "tags", "a list of names"),
        ({"colour": "red", "extra": []}, "extra", "a mapping"),
        ({"colour": "red", "size": "big"}, "size", "invalid literal for int() with base 10: 'big'"),
        ({"colour": "blue"}, "colour", "expected one of ['red', 'green'], got 'blue'"),
    ],
)
def test_a_wrong_definition_is_a_config_error_naming_the_field(
    widget: Widget[WidgetConfig], values: dict[str, Any], field_name: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        widget.read(values, "widget 'w'")
    assert isinstance(err.value, ValueError)
    assert (err.value.field, err.value.message) == (field_name, message)
    assert str(err.value) == f"{field_name}: {message}"


@dataclass(kw_only=True)
class Mutable:
    size: int = 1


@dataclass(frozen=True)
class Reserved:
    name: str = ""


@dataclass(frozen=True)
class Listy:
    sizes: list[int]


@dataclass(frozen=True)
class Numbers:
    colour: Literal[1, 2]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (Mutable, "widget 'x': config must be a frozen dataclass"),
        (dict, "widget 'x': config must be a frozen dataclass"),
        (Reserved, "widget 'x': config may not declare ['name']"),
        (Listy, "widget 'x': config field 'sizes' has type list[int]"),
        (Numbers, "widget 'x': config field 'colour' has type typing.Literal[1, 2]"),
    ],
)
def test_a_config_is_a_frozen_dataclass_of_known_types(config: type, message: str) -> None:
    entries: dict[str, Any] = {}
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        Widget.decorator(entries, "x", config)
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        config_fields(config, TYPES, "widget 'x'", Widget.reserved)
    assert not entries


@pytest.mark.parametrize(
    ("values", "kind", "unknown"),
    [
        ({"colour": "red", "zeta": 1, "alpha": 2}, "unknown", ("alpha", "zeta")),
        ({}, "missing", ()),
        ({"colour": "red", "size": [1]}, "type", ()),
        ({"colour": "red", "size": "seven"}, "value", ()),
        ({"colour": "purple"}, "choice", ()),
    ],
)
def test_a_config_error_says_what_kind_of_mistake_and_lists_every_unknown_field(
    widget: Widget[WidgetConfig], values: dict[str, Any], kind: str, unknown: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as err:
        widget.read(values, "w")
    assert err.value.kind == kind
    assert tuple(err.value.unknown) == unknown
