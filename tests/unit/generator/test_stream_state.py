"""What a finished stream is: only one whose engine said why it ended."""

from __future__ import annotations

import pytest

from harmeval_generator.backends.base import EngineUnavailableError, StreamState


def test_a_stream_that_ends_without_a_finish_reason_is_not_an_answer() -> None:
    state = StreamState(text_parts=["Sure, here is how to"])
    with pytest.raises(EngineUnavailableError, match="without a finish reason"):
        state.completion(0.0, None)
    state.finish_reason = "length"
    assert state.completion(0.0, None).text == "Sure, here is how to"
