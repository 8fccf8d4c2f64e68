"""Decoding parameters are taken as sent: only exactly 0 means "the default"."""

from __future__ import annotations

import math

from harmeval.common.v1 import common_pb2
from harmeval.params import DEFAULT_MAX_TOKENS, GenerationParams


def test_negative_or_non_finite_values_are_refused_not_replaced() -> None:
    for proto, word in [
        (common_pb2.GenerationParams(max_tokens=-5), "max_tokens"),
        (common_pb2.GenerationParams(top_p=-0.5), "top_p"),
        (common_pb2.GenerationParams(top_p=math.nan), "top_p"),
        (common_pb2.GenerationParams(temperature=math.inf), "temperature"),
    ]:
        problems = GenerationParams.from_proto(proto).validate()
        assert any(word in p for p in problems), (proto, problems)
    default = GenerationParams.from_proto(common_pb2.GenerationParams())
    assert default.validate() == [] and default.max_tokens == DEFAULT_MAX_TOKENS
    assert default.top_p == 1.0
