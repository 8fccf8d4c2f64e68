"""The annotation app's settings (`HARMEVAL_` variables, read once at start-up by
`harmeval.settings.load`)."""

from __future__ import annotations

from dataclasses import dataclass

from harmeval.settings import CommonSettings, SettingsError


@dataclass(frozen=True)
class AnnotatorSettings(CommonSettings):
    # HTTP, host:port. The app serves people's browsers: in a cluster behind an Ingress with
    # TLS; locally on loopback.
    annotator_address: str = "127.0.0.1:8470"
    annotator_prometheus_port: int = 9455
    # Where prompts and answers come from and labels go.
    annotator_metrics_target: str = "127.0.0.1:50053"
    # People each prompt goes to unless its queue says otherwise (2+ measures the human
    # ceiling: how well people agree with each other).
    annotator_overlap: int = 2
    # Minutes of labelling after which the page suggests a break (harmful text is tiring).
    annotator_break_minutes: float = 45.0
    # A sign-in lasts this long.
    annotator_session_hours: float = 12.0
    # Set the cookie's Secure flag (the app is reached over HTTPS, e.g. through an Ingress).
    annotator_secure_cookies: bool = False

    def __post_init__(self) -> None:
        if self.annotator_overlap < 1:
            raise SettingsError("HARMEVAL_ANNOTATOR_OVERLAP: at least 1")
        for name in ("annotator_break_minutes", "annotator_session_hours"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"HARMEVAL_{name.upper()}: must be positive")
