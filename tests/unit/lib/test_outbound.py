"""check_backend_url: the address check every declared backend passes."""

from __future__ import annotations

import pytest

from harmeval.outbound import check_backend_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8088/v1",
        "https://api.openai.com/v1",
        "http://vllm:8000/v1",
        "http://[::1]:8000/v1",
        "HTTPS://Example.COM",
        "http://10.0.0.7/v1",
        "http://169.253.255.255/",  # just outside 169.254.0.0/16
        "http://metadata-service.example/v1",  # a name that merely starts like one
    ],
)
def test_ordinary_urls_pass(url: str) -> None:
    check_backend_url(url, allow_link_local=False)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata service"),
        ("http://169.254.170.2/v2/credentials", "a link-local address"),
        ("http://[fe80::1]:8000/v1", "a link-local address"),
        ("http://[fe80::1%25eth0]:8000/v1", "a link-local address"),
        ("http://[fd00:ec2::254]/latest", "a cloud metadata service"),
        ("http://[::ffff:169.254.169.254]/", "a cloud metadata service"),
        ("http://metadata.google.internal/computeMetadata/v1/", "a cloud metadata service"),
        ("http://METADATA.google.internal./computeMetadata/v1/", "a cloud metadata service"),
        ("http://metadata/computeMetadata/v1/", "a cloud metadata service"),
        # Forms the C resolver reads as 169.254.169.254.
        ("http://2852039166/", "a cloud metadata service"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "a cloud metadata service"),
        ("http://169.254.43518/", "a cloud metadata service"),
    ],
)
def test_link_local_and_metadata_hosts_are_refused_unless_allowed(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as err:
        check_backend_url(url, allow_link_local=False)
    assert "allow_link_local: true" in str(err.value)
    check_backend_url(url, allow_link_local=True)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("file:///etc/passwd", "the scheme must be http or https, not 'file'"),
        ("gopher://vllm:70/", "the scheme must be http or https"),
        ("vllm:8000/v1", "the scheme must be http or https"),
        ("http:///v1", "no host"),
        ("http://user:pw@vllm:8000/v1", "must not carry credentials"),
        ("http://token@vllm:8000/v1", "must not carry credentials"),
        ("http://vllm:port/v1", "is not a valid URL"),
        ("http://[fe80::1/v1", "is not a valid URL"),
    ],
)
def test_other_schemes_credentials_and_broken_urls_are_refused_even_when_allowed(
    url: str, fragment: str
) -> None:
    for allow in (False, True):
        with pytest.raises(ValueError, match=fragment):
            check_backend_url(url, allow_link_local=allow)


def test_credentials_are_not_repeated_in_the_message() -> None:
    with pytest.raises(ValueError) as err:
        check_backend_url("http://user:hunter2-secret@vllm:8000/v1", allow_link_local=False)
    assert "hunter2" not in str(err.value) and "'vllm'" in str(err.value)
