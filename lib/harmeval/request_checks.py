"""What every request must satisfy before any handler sees it, read from the message's own
descriptor (so a new RPC or field is covered the day it is added): no NUL in any string
(PostgreSQL text cannot hold one), every floating-point number finite, every enum value one
the contract defines. Each problem names its field by path (`answers[3].text`).

Each message type is compiled once into the list of fields worth looking at, so a request
costs a few attribute reads per message (bench/request_checks.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# Messages larger than this are checked off the event loop (a 300,000-value agreement
# request takes a noticeable fraction of a second to walk in Python).
LARGE_BYTES = 256 * 1024

_STRING, _FLOAT, _ENUM, _MESSAGE, _MAP = "string", "float", "enum", "message", "map"
_KINDS = {
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_DOUBLE: _FLOAT,
    FieldDescriptor.TYPE_FLOAT: _FLOAT,
    FieldDescriptor.TYPE_ENUM: _ENUM,
    FieldDescriptor.TYPE_MESSAGE: _MESSAGE,
}


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str
    repeated: bool
    # Enums: the defined values and the enum's name. Messages: the field's message type.
    values: frozenset[int] = frozenset()
    enum: str = ""
    message: Descriptor | None = None
    # Maps: the kinds of the key and the value.
    key: _Field | None = None
    value: _Field | None = None


def _field(f: FieldDescriptor, strings: bool) -> _Field | None:
    entry = f.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key = _field(entry.fields_by_name["key"], strings)
        value = _field(entry.fields_by_name["value"], strings)
        if key is None and value is None:
            return None
        return _Field(f.name, _MAP, False, key=key, value=value)
    kind = _KINDS.get(f.type)
    if kind is None or (kind == _STRING and not strings):
        return None
    if kind == _MESSAGE and entry is not None and not _plan(entry, strings):
        return None
    enum = f.enum_type
    return _Field(
        f.name,
        kind,
        f.is_repeated,
        values=frozenset(v.number for v in enum.values) if enum is not None else frozenset(),
        enum=enum.name if enum is not None else "",
        message=entry,
    )


@cache
def _plan(descriptor: Descriptor, strings: bool = True) -> tuple[_Field, ...]:
    """The fields of a message type worth looking at (none: nothing below it can be wrong);
    without strings when its bytes are known to hold no NUL."""
    fields = (_field(f, strings) for f in descriptor.fields)
    return tuple(f for f in fields if f is not None)


def _scalar_problem(f: _Field, value: Any) -> str | None:
    if f.kind == _STRING:
        return "contains a NUL character" if "\x00" in value else None
    if f.kind == _FLOAT:
        return None if math.isfinite(value) else f"must be a finite number, not {value}"
    if f.kind == _ENUM and value not in f.values:
        return f"{value} is not a value of {f.enum}"
    return None


def _problems(message: Message, path: str) -> Iterator[str]:
    for f in _plan(message.DESCRIPTOR):
        where = f"{path}{f.name}"
        if f.kind == _MAP:
            for key, item in getattr(message, f.name).items():
                if f.key is not None and (problem := _scalar_problem(f.key, key)) is not None:
                    yield f"{where} key: {problem}"
                if f.value is None:
                    continue
                if f.value.kind == _MESSAGE:
                    yield from _problems(item, f"{where}[{key!r}].")
                elif (problem := _scalar_problem(f.value, item)) is not None:
                    yield f"{where}[{key!r}]: {problem}"
        elif f.kind == _MESSAGE:
            if f.repeated:
                for i, item in enumerate(getattr(message, f.name)):
                    yield from _problems(item, f"{where}[{i}].")
            elif message.HasField(f.name):
                yield from _problems(getattr(message, f.name), f"{where}.")
        elif f.repeated:
            values = getattr(message, f.name)
            if f.kind == _STRING and not any("\x00" in v for v in values):
                continue  # the common case, without a path per item
            for i, item in enumerate(values):
                if (problem := _scalar_problem(f, item)) is not None:
                    yield f"{where}[{i}]: {problem}"
        elif (problem := _scalar_problem(f, getattr(message, f.name))) is not None:
            yield f"{where}: {problem}"


def _clean(message: Message, plan: tuple[_Field, ...], strings: bool) -> bool:
    """Whether nothing in `message` (whose type's plan is `plan`) is wrong: the common case,
    checked without building a path or a generator per field."""
    for f in plan:
        value = getattr(message, f.name)
        kind = f.kind
        if kind == _MESSAGE:
            assert f.message is not None
            sub = _plan(f.message, strings)
            if f.repeated:
                if not all(_clean(item, sub, strings) for item in value):
                    return False
            elif message.HasField(f.name) and not _clean(value, sub, strings):
                return False
        elif kind == _STRING:
            if any("\x00" in v for v in value) if f.repeated else "\x00" in value:
                return False
        elif kind == _FLOAT:
            if not (all(map(math.isfinite, value)) if f.repeated else math.isfinite(value)):
                return False
        elif kind == _ENUM:
            if not (f.values.issuperset(value) if f.repeated else value in f.values):
                return False
        elif value:  # a map: its entries the slow way
            return False
    return True


def request_problems(message: Message, data: bytes | None = None) -> list[str]:
    """What is wrong with `message` whatever the RPC (all of it: a caller fixes a request in
    one pass). `data`, the bytes it was decoded from: when they hold no zero byte at all, no
    string in it can hold a NUL, and only numbers and enums are looked at."""
    strings = data is None or b"\x00" in data
    clean = _clean(message, _plan(message.DESCRIPTOR, strings), strings)
    return [] if clean else list(_problems(message, ""))
