"""The runner service's settings (`HARMEVAL_` variables, read once at start-up by
`harmeval.settings.load`)."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval.settings import CommonSettings, SettingsError


@dataclass(frozen=True)
class RunnerSettings(CommonSettings):
    runner_address: str = "127.0.0.1:50054"
    runner_prometheus_port: int = 9454
    # The services a run's work goes to (in Kubernetes `dns:///` names of headless Services).
    runner_generator_target: str = "127.0.0.1:50051"
    runner_judge_target: str = "127.0.0.1:50052"
    runner_metrics_target: str = "127.0.0.1:50053"
    # Prompts per job: a generate job asks every small model for them at once, then queues
    # one judge job per judge for the same prompts.
    runner_chunk_size: int = 8
    # Fleet-wide caps on jobs in flight (all runner replicas together; pgqueuer enforces them
    # in the database). Enough generate jobs keep every engine's slots full; the generator
    # queues the rest in memory.
    runner_generate_jobs: int = 32
    runner_judge_jobs: int = 64
    # Per-judge fleet-wide caps, "name=N,other=M": at most N of that judge's jobs at once, all
    # replicas together (a provider's rate limit is per account, not per pod). A job sends at
    # most chunk-size listwise calls, or chunk-size x small models pointwise ones.
    runner_judge_limits: str = ""
    # Jobs one replica works on at once.
    runner_worker_jobs: int = 128
    # A job whose worker stopped sending heartbeats for this long is picked up again.
    runner_heartbeat_timeout_s: float = 30.0
    # A job retried this many times (a service down, overloaded) fails its items for good.
    runner_max_attempts: int = 30
    # Seconds between two looks at the database while a WatchRun stream waits for progress.
    runner_watch_interval_s: float = 0.5
    # Whether this replica works on jobs (off: it serves the API only).
    runner_worker: bool = True

    def __post_init__(self) -> None:
        # Fail at start-up, not at the first run: 0 would mean "unlimited" to pgqueuer.
        minimums = {
            "runner_chunk_size": 1,
            "runner_generate_jobs": 1,
            "runner_judge_jobs": 1,
            "runner_worker_jobs": 2,
            "runner_max_attempts": 1,
        }
        for name, least in minimums.items():
            if getattr(self, name) < least:
                raise SettingsError(f"HARMEVAL_{name.upper()}: at least {least}")
        for name in ("runner_heartbeat_timeout_s", "runner_watch_interval_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"HARMEVAL_{name.upper()}: must be positive")
        self.judge_limits()

    def judge_limits(self) -> dict[str, int]:
        """The parsed `runner_judge_limits`; a malformed value fails start-up."""
        limits: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in self.runner_judge_limits.split(","))):
            name, sep, value = part.rpartition("=")
            if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
                raise SettingsError(
                    f"HARMEVAL_RUNNER_JUDGE_LIMITS: {part!r} is not 'judge-name=N' (N >= 1)"
                )
            limits[name.strip()] = int(value)
        return limits
