"""The judge service's settings (`HARMEVAL_` variables, read once at start-up by
`harmeval.settings.load`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harmeval.settings import CommonSettings


@dataclass(frozen=True)
class JudgeSettings(CommonSettings):
    judge_address: str = "127.0.0.1:50052"
    judge_prometheus_port: int = 9452
    # Any OpenAI-compatible chat endpoint: OpenAI, vLLM, TGI's messages API, llama.cpp server.
    # With the key, it declares the backend named "default" (see judge_backends_file).
    judge_llm_base_url: str = "http://127.0.0.1:8088/v1"
    judge_llm_api_key: str = "sk-no-key-needed"
    judge_llm_model: str = "gemma3-270m"
    # The judge's name in studies and reports.
    judge_llm_name: str = "openai-listwise-gemma3-270m"
    judge_llm_timeout_seconds: float = 120.0
    judge_llm_max_retries: int = 2
    # Enough for k verdict lines and a short preamble; a rambling judge is cut off (unscorable).
    judge_llm_max_tokens: int = 128
    # The built-in LLM judges' structured output: none (verdict lines) | json_schema |
    # json_object | auto (harmeval_judge.llm_client). `harmeval up` sets json_object for its
    # llama.cpp server.
    judge_llm_structured_output: str = "none"
    # Empty: the LLM judge is not offered (e.g. no endpoint configured).
    judge_llm_enabled: bool = True
    # Largest answer accepted, in characters.
    judge_max_answer_chars: int = 32_000
    # Per request, all retries included.
    judge_llm_deadline_seconds: float = 300.0
    # Upper bound of the adaptive concurrency limit per endpoint.
    judge_llm_max_concurrency: int = 256
    # How LLM judges post requests: "openai-sdk" (the official SDK) or "aiohttp" (the same JSON,
    # a third of the CPU per call, for endpoints taking hundreds of calls a second).
    judge_llm_transport: str = "openai-sdk"
    # The LLM backends judges may call (YAML, written by the operator; see
    # harmeval_judge/backends.py): a definition names one, never a URL or a key.
    judge_backends_file: Path | None = None
    # Extra judge definitions (YAML; see harmeval_judge/definitions.py).
    judge_judges_file: Path | None = None
    # Price table: JSON text or a JSON/YAML file, {"gpt-4o": {"prompt_per_1k": ..., ...}}.
    judge_prices: str = ""
    # Spend limit in USD for this process; 0 = none. Past it judging stops: RESOURCE_EXHAUSTED.
    judge_budget_usd: float = 0.0
