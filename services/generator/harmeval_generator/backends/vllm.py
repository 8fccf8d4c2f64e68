"""vLLM in process (its V1 async engine, `AsyncLLM`) for GPU pods.

Every request goes to the engine as soon as it arrives and the engine batches whatever is in
flight (continuous batching): nothing here serialises requests. vLLM is imported lazily, so
this module loads without it; it is written against vLLM's current API (vllm >= 0.11:
`vllm.v1.engine.async_llm.AsyncLLM`, `SamplingParams(output_kind=DELTA)`,
`EngineDeadError`). tests/integration/test_vllm_engine.py runs it where a GPU and vLLM exist.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    DEFAULT_STOP,
    Completion,
    Engine,
    EngineUnavailableError,
    ModelPrompt,
    PromptFormat,
    StreamState,
    chat_messages,
    check_context,
    complete_by_streaming,
    completion_prompt,
)
from harmeval_generator.backends.registry import register_backend
from harmeval_generator.settings import GeneratorSettings


@dataclass(frozen=True, kw_only=True)
class VllmConfig:
    """A models-file entry's fields for `backend: vllm`."""

    model: str  # a Hugging Face id or a local directory
    prompt_format: PromptFormat = "completion"
    max_model_len: int | None = None  # None: the model's own
    gpu_memory_utilization: float = 0.85
    dtype: str = "auto"
    # Any other `AsyncEngineArgs` keyword, passed as it is.
    engine_kwargs: dict[str, Any] | None = None


@register_backend("vllm", config=VllmConfig)
def build(name: str, config: VllmConfig, settings: GeneratorSettings) -> Engine:
    return VllmEngine(
        name,
        config.model,
        prompt_format=config.prompt_format,
        max_model_len=config.max_model_len,
        gpu_memory_utilization=config.gpu_memory_utilization,
        dtype=config.dtype,
        engine_kwargs=config.engine_kwargs,
    )


class VllmEngine(Engine):
    backend = "vllm"
    in_process = True

    def __init__(
        self,
        name: str,
        model: str,
        *,
        prompt_format: str = "completion",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.name = name
        self.model = model
        self.prompt_format = prompt_format
        args = AsyncEngineArgs(
            model=model,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            **(engine_kwargs or {}),
        )
        self._engine: Any = AsyncLLM.from_engine_args(args)
        # vLLM schedules up to max_num_seqs sequences per step; more only queue inside it.
        self.max_concurrency = int((engine_kwargs or {}).get("max_num_seqs") or 256)
        self._tokenizer: Any = None

    @property
    def context_length(self) -> int:
        return int(self._engine.model_config.max_model_len)

    def settings(self) -> dict[str, str]:
        return {
            "model": self.model,
            "prompt_format": self.prompt_format,
            "max_model_len": str(self.context_length),
        }

    async def _render(self, prompt: ModelPrompt) -> str:
        if self._tokenizer is None:
            self._tokenizer = await self._engine.get_tokenizer()
        if self.prompt_format == "chat":
            return str(
                self._tokenizer.apply_chat_template(
                    chat_messages(prompt), tokenize=False, add_generation_prompt=True
                )
            )
        return completion_prompt(prompt)

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        text = await self._render(prompt)
        n_prompt = len(self._tokenizer.encode(text))
        check_context(n_prompt, params.max_tokens, self.context_length)

    def _sampling(self, params: GenerationParams) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop or (() if self.prompt_format == "chat" else DEFAULT_STOP)),
            seed=params.seed,
            output_kind=RequestOutputKind.DELTA,
        )

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        from vllm.v1.engine.exceptions import EngineDeadError

        request_id = uuid.uuid4().hex
        text = await self._render(prompt)
        try:
            async for out in self._engine.generate(text, self._sampling(params), request_id):
                if out.prompt_token_ids is not None:
                    state.prompt_tokens = len(out.prompt_token_ids)
                delta = out.outputs[0]
                state.completion_tokens += len(delta.token_ids)
                if delta.finish_reason:
                    state.finish_reason = "length" if delta.finish_reason == "length" else "stop"
                if delta.text:
                    state.text_parts.append(delta.text)
                    yield delta.text
        except EngineDeadError as exc:
            raise EngineUnavailableError(f"vLLM engine for {self.name} died: {exc}") from exc
        finally:
            # The caller went away (cancelled, deadline): free the request's KV-cache slot.
            await self._engine.abort(request_id)

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        return await complete_by_streaming(self, prompt, params)

    async def close(self) -> None:
        self._engine.shutdown()
