"""What the CLI needs: where the services and the local judge model server listen."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval.settings import CommonSettings


@dataclass(frozen=True)
class ClientSettings(CommonSettings):
    """What the CLI needs: where the services and the local judge model server listen."""

    generator_address: str = "127.0.0.1:50051"
    judge_address: str = "127.0.0.1:50052"
    metrics_address: str = "127.0.0.1:50053"
    runner_address: str = "127.0.0.1:50054"
    # The annotation app (HTTP).
    annotator_address: str = "127.0.0.1:8470"
    llm_server_port: int = 8088
    llm_server_n_ctx: int = 4096
    # Which embedded model the local judge server serves (harmeval_client.embedded_models):
    # smollm2-135m-instruct or gemma3-270m.
    llm_server_model: str = "smollm2-135m-instruct"
    log_format: str = "text"
