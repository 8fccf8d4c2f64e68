"""Where a service may send requests: the check every operator-declared backend URL passes.

A backend (a judge's LLM endpoint, a generator's OpenAI-compatible or TGI server) is declared by
the operator and called with the operator's key. Its URL must be plain http(s) with no
credentials in it, and must not point at a link-local address or a cloud metadata service
(169.254.169.254 and friends hand out the node's credentials to whoever asks), unless the
operator says so explicitly (``allow_link_local: true``).

Only the URL as written is checked: names are not resolved here, since what a name resolves
to can change after start-up. The HTTP clients never follow redirects, so the checked URL is
the only one a request goes to.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["METADATA_ADDRESSES", "METADATA_NAMES", "check_backend_url"]

# Cloud metadata services outside the link-local ranges (AWS's IPv6 endpoint), and inside them
# (named here so the message can say what they are).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# Names of metadata services (GCP's, and the short names resolved inside cloud networks).
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(host: str) -> IPAddress | None:
    """The IP address `host` is written as, or None for a name. Forms the C resolver also takes
    as an IPv4 address ("2852039166", "0xa9.0xfe.0xa9.0xfe", "169.254.43518") count too."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_backend_url(url: str, *, allow_link_local: bool) -> None:
    """A ValueError saying what is wrong with `url` as a backend's address: a scheme other than
    http(s), no host, credentials in the URL, or (unless `allow_link_local`) a link-local or
    metadata-service host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ValueError(f"{url!r}: the scheme must be http or https, not {parts.scheme!r}")
    if "@" in parts.netloc:
        raise ValueError(
            f"the URL must not carry credentials (user:password@); give the key in the "
            f"backend's api_key_file or api_key_env instead (URL host: {host!r})"
        )
    if not host:
        raise ValueError(f"{url!r}: no host")
    if allow_link_local:
        return
    name = host.rstrip(".").lower()
    address = _address(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    why = ""
    if address in METADATA_ADDRESSES or name in METADATA_NAMES:
        why = "a cloud metadata service"
    elif address is not None and address.is_link_local:
        why = "a link-local address"
    if why:
        raise ValueError(
            f"{url!r}: {host} is {why}, which hands out the node's credentials; refused "
            "unless the backend's declaration says allow_link_local: true"
        )
