"""What every request must satisfy before any handler sees it, read from the message's own
descriptor (so a new RPC or field is covered the day it is added): no NUL in any string
(PostgreSQL text cannot hold one), every floating-point number finite, every enum value one
the contract defines. Each problem names its field by path (`answers[3].text`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# Messages larger than this are checked off the event loop (a 300,000-value agreement
# request takes a noticeable fraction of a second to walk in Python).
LARGE_BYTES = 256 * 1024

_STRING, _FLOAT, _ENUM, _MESSAGE = "string", "float", "enum", "message"
_KIND = {
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_DOUBLE: _FLOAT,
    FieldDescriptor.TYPE_FLOAT: _FLOAT,
    FieldDescriptor.TYPE_ENUM: _ENUM,
    FieldDescriptor.TYPE_MESSAGE: _MESSAGE,
}


@cache
def _checked_fields(descriptor: Descriptor) -> frozenset[str]:
    """Names of the fields worth looking at (strings, numbers, enums, messages)."""
    return frozenset(f.name for f in descriptor.fields if f.type in _KIND)


def _value_problem(field: FieldDescriptor, value: Any) -> str | None:
    kind = _KIND.get(field.type)
    if kind == _STRING and "\x00" in value:
        return "contains a NUL character"
    if kind == _FLOAT and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    enum = field.enum_type
    if kind == _ENUM and enum is not None and enum.values_by_number.get(value) is None:
        return f"{value} is not a value of {enum.name}"
    return None


def _problems(message: Message, path: str) -> Iterator[str]:
    wanted = _checked_fields(message.DESCRIPTOR)
    for field, value in message.ListFields():
        if field.name not in wanted:
            continue
        where = f"{path}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for key, item in value.items():
                if (problem := _value_problem(key_field, key)) is not None:
                    yield f"{where} key: {problem}"
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _problems(item, f"{where}[{key!r}].")
                elif (problem := _value_problem(value_field, item)) is not None:
                    yield f"{where}[{key!r}]: {problem}"
        elif field.is_repeated:
            for i, item in enumerate(value):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    yield from _problems(item, f"{where}[{i}].")
                elif (problem := _value_problem(field, item)) is not None:
                    yield f"{where}[{i}]: {problem}"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            yield from _problems(value, f"{where}.")
        elif (problem := _value_problem(field, value)) is not None:
            yield f"{where}: {problem}"


def request_problems(message: Message) -> list[str]:
    """What is wrong with `message` whatever the RPC (all of it: a caller fixes a request in
    one pass)."""
    return list(_problems(message, ""))
