"""TLS for the gRPC ports: server credentials that follow certificate rotation, client
credentials, and the rule that plaintext listens on loopback only unless allowed."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import grpc

from harmeval.settings import CommonSettings, SettingsError

logger = logging.getLogger(__name__)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{what} {path}: {exc}") from exc


class _Rotating:
    """Server certificate files, read again when any of them changes. gRPC asks on every new
    connection; connections already open keep the certificate they were made with."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.files = [p for p in (cert, key, client_ca) if p is not None]
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._stamp = self._stamps()
        self.config = self._load()

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for p in self.files:
            st = p.stat()
            stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(_read(self.key, "TLS key"), _read(self.cert, "TLS certificate"))],
            root_certificates=_read(self.client_ca, "client CA") if self.client_ca else None,
        )

    def __call__(self) -> grpc.ServerCertificateConfiguration:
        """None keeps the current configuration (gRPC's fetcher contract; its stubs say
        otherwise)."""
        try:
            stamp = self._stamps()
            if stamp == self._stamp:
                return None  # type: ignore[return-value]
            config = self._load()
        except (OSError, SettingsError) as exc:
            # Mid-rotation (one file replaced, not yet the other): keep serving the old pair.
            logger.warning("TLS files not reloaded yet: %s", exc)
            return None  # type: ignore[return-value]
        self._stamp = stamp
        logger.info("TLS certificate reloaded from %s", self.cert)
        return config


def server_credentials(settings: CommonSettings) -> grpc.ServerCredentials | None:
    """TLS credentials (mutual when a client CA is set), or None for plaintext."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        if settings.tls_client_ca_file is not None:
            raise SettingsError("HARMEVAL_TLS_CLIENT_CA_FILE needs a server certificate and key")
        return None
    if cert is None or key is None:
        raise SettingsError("HARMEVAL_TLS_CERT_FILE and HARMEVAL_TLS_KEY_FILE go together")
    rotating = _Rotating(cert, key, settings.tls_client_ca_file)
    return grpc.dynamic_ssl_server_credentials(
        rotating.config,
        rotating,
        require_client_authentication=settings.tls_client_ca_file is not None,
    )


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plaintext_bind(address: str, settings: CommonSettings) -> None:
    if not is_loopback(address) and not settings.allow_plaintext:
        raise SettingsError(
            f"refusing to serve plaintext on {address}: anyone on the network could read the "
            "answers and tokens. Set HARMEVAL_TLS_CERT_FILE and HARMEVAL_TLS_KEY_FILE, bind "
            "to 127.0.0.1, or set HARMEVAL_ALLOW_PLAINTEXT=true behind a trusted proxy"
        )


def channel_credentials(settings: CommonSettings) -> grpc.ChannelCredentials | None:
    """Client TLS credentials when a CA is configured, else None (plaintext)."""
    if settings.tls_ca_file is None:
        if settings.tls_client_cert_file or settings.tls_client_key_file:
            raise SettingsError("a client certificate needs HARMEVAL_TLS_CA_FILE (TLS) too")
        return None
    cert, key = settings.tls_client_cert_file, settings.tls_client_key_file
    if (cert is None) != (key is None):
        raise SettingsError(
            "HARMEVAL_TLS_CLIENT_CERT_FILE and HARMEVAL_TLS_CLIENT_KEY_FILE go together"
        )
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.tls_ca_file, "CA"),
        private_key=_read(key, "client key") if key else None,
        certificate_chain=_read(cert, "client certificate") if cert else None,
    )
