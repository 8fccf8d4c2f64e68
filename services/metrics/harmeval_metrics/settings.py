"""The metrics service's settings (`HARMEVAL_` variables, read once at start-up by
`harmeval.settings.load`)."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval.settings import CommonSettings


@dataclass(frozen=True)
class MetricsSettings(CommonSettings):
    metrics_address: str = "127.0.0.1:50053"
    metrics_prometheus_port: int = 9453
    # Imports store prompts and answers through the generator's RPCs and labels through the
    # judge's (each service writes only its own tables): where to reach them.
    metrics_generator_target: str = "127.0.0.1:50051"
    metrics_judge_target: str = "127.0.0.1:50052"
