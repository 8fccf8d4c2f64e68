"""How the OpenAI-compatible engine reports what its server answered (the SDK's own errors)."""

from __future__ import annotations

import httpx2
import openai
import pytest

from harmeval_generator.backends.base import (
    EngineMisconfiguredError,
    EngineUnavailableError,
    PromptTooLongError,
    RequestRejectedError,
)
from harmeval_generator.backends.openai_compat import _map_error

URL = "http://server.invalid/v1"


def status_error(cls: type[openai.APIStatusError], status: int, message: str) -> Exception:
    request = httpx2.Request("POST", f"{URL}/completions")
    return cls(message, response=httpx2.Response(status, request=request), body=None)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            status_error(openai.BadRequestError, 400, "maximum context length is 4096 tokens"),
            PromptTooLongError,
        ),
        (status_error(openai.BadRequestError, 400, "logprobs must be <= 5"), RequestRejectedError),
        (status_error(openai.UnprocessableEntityError, 422, "bad stop"), RequestRejectedError),
        (status_error(openai.AuthenticationError, 401, "bad key"), EngineMisconfiguredError),
        (status_error(openai.NotFoundError, 404, "no model gemma"), EngineMisconfiguredError),
        (status_error(openai.InternalServerError, 503, "overloaded"), EngineUnavailableError),
        (
            openai.APIConnectionError(request=httpx2.Request("POST", URL)),
            EngineUnavailableError,
        ),
    ],
)
def test_server_answers_map_to_what_the_caller_must_do(
    error: Exception, expected: type[Exception]
) -> None:
    mapped = _map_error(error, URL)
    assert type(mapped) is expected
    assert URL in str(mapped)
