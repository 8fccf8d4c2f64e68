"""TLS and mutual TLS on a real server, with certificates made in the test (trustme)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harmeval import clients
from harmeval.access import AccessRuleError
from harmeval.clients import raw_channel
from harmeval.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from harmeval.server import RunningServer, ServiceSpec, create_server
from harmeval.settings import CommonSettings, SettingsError
from harmeval_metrics.service import SPEC, MetricsServicer
from harmeval_metrics.settings import MetricsSettings
from tests.credentials import TOKENS, secured


def write_pair(cert: trustme.LeafCert, folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    crt, key = folder / f"{stem}.crt", folder / f"{stem}.key"
    # Written beside and renamed, as a Secret volume update does: never half a file.
    for pem, path in ((cert.cert_chain_pems, crt), ([cert.private_key_pem], key)):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(p.bytes() for p in pem))
        os.replace(tmp, path)
    return crt, key


def write_ca(ca: trustme.CA, path: Path) -> Path:
    ca.cert_pem.write_to_path(str(path))
    return path


@asynccontextmanager
async def serving(settings: MetricsSettings) -> AsyncIterator[RunningServer]:
    servicer = MetricsServicer(settings)
    srv = await create_server(SPEC, servicer, "127.0.0.1:0", settings)
    await srv.start()
    async with AsyncExitStack() as stack:
        await servicer.startup(stack)
        await srv.set_serving(True)
        try:
            yield srv
        finally:
            await srv.stop(0)


async def agreement_code(port: int, client: CommonSettings) -> grpc.StatusCode:
    """NOT_FOUND (an unknown study) means the call got through TLS and auth to the handler."""
    async with raw_channel(f"localhost:{port}", client) as ch:
        try:
            await metrics_pb2_grpc.MetricsServiceStub(ch).GetAgreement(
                metrics_pb2.GetAgreementRequest(study="no-such-study"), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


def tls_settings(database_url: str, tmp_path: Path, ca: trustme.CA) -> MetricsSettings:
    crt, key = write_pair(ca.issue_cert("localhost", "127.0.0.1"), tmp_path / "server", "tls")
    return secured(
        MetricsSettings(
            database_url=database_url, data_dir=tmp_path, tls_cert_file=crt, tls_key_file=key
        )
    )


async def test_tls_port_serves_tls_clients_with_a_token(
    database_url: str, tmp_path: Path, ca: trustme.CA
) -> None:
    ca_file = write_ca(ca, tmp_path / "ca.pem")
    async with serving(tls_settings(database_url, tmp_path, ca)) as srv:
        viewer = CommonSettings(tls_ca_file=ca_file, token=TOKENS["viewer"])
        assert await agreement_code(srv.port, viewer) == grpc.StatusCode.NOT_FOUND
        anonymous = CommonSettings(tls_ca_file=ca_file)
        assert await agreement_code(srv.port, anonymous) == grpc.StatusCode.UNAUTHENTICATED
        # A plaintext client gets no answer from a TLS port at all, not even health.
        plaintext = CommonSettings(token=TOKENS["viewer"])
        assert await agreement_code(srv.port, plaintext) == grpc.StatusCode.UNAVAILABLE
        other_ca = write_ca(trustme.CA(), tmp_path / "other-ca.pem")
        wrong_trust = CommonSettings(tls_ca_file=other_ca, token=TOKENS["viewer"])
        assert await agreement_code(srv.port, wrong_trust) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_needs_a_client_certificate_mapped_to_a_role(
    database_url: str, tmp_path: Path, ca: trustme.CA
) -> None:
    ca_file = write_ca(ca, tmp_path / "ca.pem")
    settings = replace(
        tls_settings(database_url, tmp_path, ca),
        tls_client_ca_file=ca_file,
        auth_cert_roles="dashboards=viewer",
    )
    ops_crt, ops_key = write_pair(
        ca.issue_cert("dashboards", common_name="dashboards"), tmp_path / "c", "dash"
    )
    odd_crt, odd_key = write_pair(
        ca.issue_cert("stranger", common_name="stranger"), tmp_path / "c", "stranger"
    )
    async with serving(settings) as srv:
        no_cert = CommonSettings(tls_ca_file=ca_file, token=TOKENS["operator"])
        assert await agreement_code(srv.port, no_cert) == grpc.StatusCode.UNAVAILABLE
        mapped = CommonSettings(
            tls_ca_file=ca_file, tls_client_cert_file=ops_crt, tls_client_key_file=ops_key
        )
        assert await agreement_code(srv.port, mapped) == grpc.StatusCode.NOT_FOUND
        # The certificate's role is the caller's: a viewer may not register studies.
        async with raw_channel(f"localhost:{srv.port}", mapped) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await metrics_pb2_grpc.MetricsServiceStub(ch).RegisterStudy(
                    metrics_pb2.RegisterStudyRequest(name="x"), timeout=5
                )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        unmapped = replace(mapped, tls_client_cert_file=odd_crt, tls_client_key_file=odd_key)
        assert await agreement_code(srv.port, unmapped) == grpc.StatusCode.PERMISSION_DENIED
        # A token still speaks for its holder under mutual TLS.
        with_token = replace(unmapped, token=TOKENS["viewer"])
        assert await agreement_code(srv.port, with_token) == grpc.StatusCode.NOT_FOUND


async def test_rotated_certificate_is_served_to_new_connections(
    database_url: str, tmp_path: Path, ca: trustme.CA
) -> None:
    settings = tls_settings(database_url, tmp_path, ca)
    old_ca = write_ca(ca, tmp_path / "old-ca.pem")
    new = trustme.CA()
    new_ca = write_ca(new, tmp_path / "new-ca.pem")
    token = TOKENS["viewer"]
    async with serving(settings) as srv:
        trust_old = CommonSettings(tls_ca_file=old_ca, token=token)
        trust_new = CommonSettings(tls_ca_file=new_ca, token=token)
        assert await agreement_code(srv.port, trust_old) == grpc.StatusCode.NOT_FOUND
        assert await agreement_code(srv.port, trust_new) == grpc.StatusCode.UNAVAILABLE
        write_pair(new.issue_cert("localhost", "127.0.0.1"), tmp_path / "server", "tls")
        assert await agreement_code(srv.port, trust_new) == grpc.StatusCode.NOT_FOUND
        assert await agreement_code(srv.port, trust_old) == grpc.StatusCode.UNAVAILABLE


async def test_health_port_is_plaintext_beside_a_tls_port(
    database_url: str, tmp_path: Path, ca: trustme.CA
) -> None:
    settings = replace(tls_settings(database_url, tmp_path, ca), health_address="127.0.0.1:0")
    async with serving(settings) as srv:
        assert srv.health_port not in (0, srv.port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.health_port}") as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # Nothing but health there.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await metrics_pb2_grpc.MetricsServiceStub(ch).GetAgreement(
                    metrics_pb2.GetAgreementRequest(study="x"), timeout=5
                )
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_plaintext_off_loopback_is_refused_unless_allowed(
    database_url: str, tmp_path: Path
) -> None:
    settings = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    with pytest.raises(SettingsError, match=r"refusing to serve plaintext on 0\.0\.0\.0"):
        await create_server(SPEC, MetricsServicer(settings), "0.0.0.0:0", settings)
    allowed = replace(settings, allow_plaintext=True)
    srv = await create_server(SPEC, MetricsServicer(allowed), "0.0.0.0:0", allowed)
    assert srv.port > 0
    await srv.stop(0)


async def test_a_server_with_no_way_to_authenticate_refuses_to_start(
    database_url: str, tmp_path: Path
) -> None:
    settings = MetricsSettings(database_url=database_url, data_dir=tmp_path)
    with pytest.raises(SettingsError, match="no way to authenticate callers"):
        await create_server(SPEC, MetricsServicer(settings), "127.0.0.1:0", settings)


async def test_a_service_with_an_rpc_lacking_a_rule_refuses_to_start(
    database_url: str, tmp_path: Path
) -> None:
    settings = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    unruled = ServiceSpec(
        "health",
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        health_pb2_grpc.add_HealthServicer_to_server,
    )
    with pytest.raises(AccessRuleError, match=r"grpc\.health\.v1\.Health\.Check has no"):
        await create_server(unruled, MetricsServicer(settings), "127.0.0.1:0", settings)


async def test_a_channel_follows_its_client_certificate_and_token_files(
    database_url: str, tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cert-manager renews the services' client certificates and Secrets change: a channel
    made once (the runner's, the metrics service's) uses the new files for new calls."""
    monkeypatch.setattr(clients, "CREDENTIALS_CHECK_INTERVAL_S", 0.0)
    ca_file = write_ca(ca, tmp_path / "ca.pem")
    settings = replace(
        tls_settings(database_url, tmp_path, ca),
        tls_client_ca_file=ca_file,
        auth_cert_roles="dashboards=viewer",
    )
    folder = tmp_path / "client"
    crt, key = write_pair(ca.issue_cert("stranger", common_name="stranger"), folder, "tls")
    client = CommonSettings(tls_ca_file=ca_file, tls_client_cert_file=crt, tls_client_key_file=key)
    request = metrics_pb2.GetAgreementRequest(study="no-such-study")
    async with serving(settings) as srv, raw_channel(f"localhost:{srv.port}", client) as ch:
        stub = metrics_pb2_grpc.MetricsServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgreement(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        write_pair(ca.issue_cert("dashboards", common_name="dashboards"), folder, "tls")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgreement(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND  # through, as the new identity

    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["viewer"])
    plain = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    async with (
        serving(plain) as srv,
        raw_channel(f"127.0.0.1:{srv.port}", CommonSettings(token_file=token_file)) as ch,
    ):
        stub = metrics_pb2_grpc.MetricsServiceStub(ch)
        register = metrics_pb2.RegisterStudyRequest(name="")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RegisterStudy(register, timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        token_file.write_text(TOKENS["operator"] + "\n")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RegisterStudy(register, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # allowed; empty name


async def test_a_token_is_never_sent_in_plaintext_off_loopback() -> None:
    with pytest.raises(SettingsError, match="refusing to send a token in plaintext"):
        raw_channel("10.1.2.3:50053", CommonSettings(token=TOKENS["viewer"]))
    await raw_channel("10.1.2.3:50053", CommonSettings()).close()  # no token: nothing to leak
    allowed = CommonSettings(token=TOKENS["viewer"], allow_plaintext=True)
    await raw_channel("10.1.2.3:50053", allowed).close()


async def test_an_authorization_header_of_another_scheme_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    settings = secured(MetricsSettings(database_url=database_url, data_dir=tmp_path))
    async with serving(settings) as srv, grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
        for header in ("Basic dXNlcjpwYXNz", "Bearer", TOKENS["operator"]):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await metrics_pb2_grpc.MetricsServiceStub(ch).GetAgreement(
                    metrics_pb2.GetAgreementRequest(study="x"),
                    metadata=[("authorization", header)],
                    timeout=5,
                )
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "malformed" in (err.value.details() or "")
