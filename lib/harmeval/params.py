"""Decoding parameters: one canonical form, so the same request always hits the same cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from harmeval.common.v1 import common_pb2

DEFAULT_MAX_TOKENS = 128


# Seeds are 32-bit in llama.cpp and vLLM, and llama.cpp reads 2**32 - 1 as "pick a random
# seed": anything above this is refused, not silently made random or wrapped around.
MAX_SEED = 2**32 - 2


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    system_prompt: str = ""

    @classmethod
    def from_proto(cls, p: common_pb2.GenerationParams) -> GenerationParams:
        # proto3 cannot tell 0 from unset: exactly 0 for top_p / max_tokens means "default";
        # anything else is taken as sent, so validate() refuses -5 or NaN instead of quietly
        # replacing it.
        return cls(
            temperature=float(p.temperature),
            top_p=float(p.top_p) if p.top_p != 0 else 1.0,
            max_tokens=int(p.max_tokens) if p.max_tokens != 0 else DEFAULT_MAX_TOKENS,
            stop=tuple(p.stop),
            seed=int(p.seed),
            system_prompt=p.system_prompt,
        )

    def to_proto(self) -> common_pb2.GenerationParams:
        return common_pb2.GenerationParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            stop=list(self.stop),
            seed=self.seed,
            system_prompt=self.system_prompt,
        )

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if not self.system_prompt:
            # Omitted when empty so answers stored before system prompts existed keep their key.
            del d["system_prompt"]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GenerationParams:
        return cls(
            temperature=float(d["temperature"]),
            top_p=float(d["top_p"]),
            max_tokens=int(d["max_tokens"]),
            stop=tuple(d.get("stop", ())),
            seed=int(d["seed"]),
            system_prompt=str(d.get("system_prompt", "")),
        )

    def validate(self) -> list[str]:
        """Problems with these parameters, as messages naming the field."""
        problems = []
        if not 0.0 <= self.temperature <= 5.0:
            problems.append(f"temperature must be in [0, 5], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.max_tokens <= 8192:
            problems.append(f"max_tokens must be in [1, 8192], got {self.max_tokens}")
        if any(s == "" for s in self.stop):
            problems.append("stop sequences must not be empty strings")
        if len(self.system_prompt) > 8000:
            problems.append("system_prompt: longer than 8000 characters")
        if not 0 <= self.seed <= MAX_SEED:
            problems.append(f"seed must be in [0, {MAX_SEED}], got {self.seed}")
        if any("\x00" in s for s in (*self.stop, self.system_prompt)):
            problems.append("stop and system_prompt must not contain NUL characters")
        return problems

    def cache_key(self) -> str:
        canonical = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
