"""Protobuf responses from the report statistics' results: the one place they become messages.

A result is a dataclass, or a list of dataclasses, whose field names are those of the message
it becomes. ``to_proto`` copies it field by field: a nested dataclass (or list of them) becomes
a nested message (or repeated messages), a list a repeated field, a dict a map, and None leaves
an optional field unset. A dataclass field the message lacks is an error, not a silent drop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TypeVar

from google.protobuf.message import Message

from harmeval.metrics.v1 import metrics_pb2
from harmeval_metrics.registry import Report, registered

__all__ = [
    "RESPONSES",
    "agreement_response",
    "disagreements_response",
    "ranking_response",
    "response",
    "to_proto",
]

M = TypeVar("M", bound=Message)

RESPONSES: dict[Report, type[Message]] = {
    "agreement": metrics_pb2.GetAgreementResponse,
    "ranking": metrics_pb2.GetModelRankingResponse,
    "disagreements": metrics_pb2.GetDisagreementsResponse,
}


def to_proto(result: object, message: M) -> M:
    """Copies the dataclass ``result`` into ``message`` (see the module docstring)."""
    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        raise TypeError(f"expected a dataclass instance, got {type(result).__name__}")
    fields = message.DESCRIPTOR.fields_by_name
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        descriptor = fields.get(f.name)
        if descriptor is None:
            owner = message.DESCRIPTOR.full_name
            raise TypeError(f"{type(result).__name__}.{f.name}: {owner} has no such field")
        nested = descriptor.message_type
        if nested is not None and nested.GetOptions().map_entry:
            getattr(message, f.name).update(value)
        elif descriptor.is_repeated and nested is not None:
            target = getattr(message, f.name)
            for item in value:
                to_proto(item, target.add())
        elif descriptor.is_repeated:
            getattr(message, f.name).extend(value)
        elif value is None:
            continue
        elif nested is not None:
            sub = getattr(message, f.name)
            sub.SetInParent()
            to_proto(value, sub)
        else:
            setattr(message, f.name, value)
    return message


def response(message: M, report: Report, results: Mapping[str, object]) -> M:
    """Fills ``message`` with every registered statistic of ``report`` from ``results``.

    Statistics that make rows come first (in registry order); a statistic with ``join``
    then adds its fields to the row whose join fields match (results matching no row are
    dropped: they describe nothing the report lists).
    """
    if not isinstance(message, RESPONSES[report]):
        raise TypeError(
            f"{report!r} fills {RESPONSES[report].__name__}, not {type(message).__name__}"
        )
    stats = registered(report)
    for stat in [s for s in stats if not s.join] + [s for s in stats if s.join]:
        result = results[stat.name]
        if stat.into is None:
            to_proto(result, message)
            continue
        if not isinstance(result, list):
            sub = getattr(message, stat.into)
            sub.SetInParent()
            to_proto(result, sub)
            continue
        target = getattr(message, stat.into)
        if not stat.join:
            for item in result:
                to_proto(item, target.add())
            continue
        rows = {tuple(getattr(row, k) for k in stat.join): row for row in target}
        for item in result:
            row = rows.get(tuple(getattr(item, k) for k in stat.join))
            if row is not None:
                to_proto(item, row)
    return message


def agreement_response(results: Mapping[str, object]) -> metrics_pb2.GetAgreementResponse:
    return response(metrics_pb2.GetAgreementResponse(), "agreement", results)


def ranking_response(results: Mapping[str, object]) -> metrics_pb2.GetModelRankingResponse:
    return response(metrics_pb2.GetModelRankingResponse(), "ranking", results)


def disagreements_response(
    results: Mapping[str, object],
) -> metrics_pb2.GetDisagreementsResponse:
    return response(metrics_pb2.GetDisagreementsResponse(), "disagreements", results)
