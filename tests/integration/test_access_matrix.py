"""Every RPC of every service x every kind of caller -> the expected status code.

The matrix is built from the service descriptors, so a new RPC is covered the moment it is
added to a proto (and a new RPC without an access rule stops its server from starting).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from harmeval.access import ROLES, may_call, rules_of
from harmeval.clients import raw_channel
from harmeval.settings import CommonSettings
from harmeval.tokens import create_token, revoke_token
from tests.credentials import TOKENS, TOKENS_FILE
from tests.integration.conftest import Stack

DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def _revoked_token() -> str:
    token, entry = create_token(TOKENS_FILE, "operator", "matrix-revoked")
    revoke_token(TOKENS_FILE, entry.id)
    return token


async def _call(ch: grpc.aio.Channel, method: MethodDescriptor) -> grpc.StatusCode:
    """The code the server answers an empty request with (OK when it succeeds)."""
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls: Any = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs = {
        "request_serializer": request_cls.SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    try:
        if method.server_streaming:
            async for _ in ch.unary_stream(path, **kwargs)(request_cls(), timeout=20):
                break
        else:
            await ch.unary_unary(path, **kwargs)(request_cls(), timeout=20)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_every_rpc_answers_every_caller_with_the_expected_code(stack: Stack) -> None:
    callers: dict[str, str | None] = {
        "no credentials": None,
        "malformed token": "not-a-token",
        "forged token": "hev_000000000000_" + "x" * 43,
        "revoked token": _revoked_token(),
        **{f"role {role}": TOKENS[role] for role in sorted(ROLES)},
    }
    await asyncio.sleep(1.1)  # servers look at the token file at most once a second
    cells, mismatches = 0, []
    for name, srv in stack.servers.items():
        service = srv.spec.descriptor
        rules = rules_of(service)
        for caller, token in callers.items():
            client = CommonSettings(token=token or "")
            async with raw_channel(f"127.0.0.1:{srv.port}", client) as ch:
                for method in service.methods:
                    code = await _call(ch, method)
                    rule = rules[f"/{service.full_name}/{method.name}"]
                    role = caller.removeprefix("role ") if caller.startswith("role ") else None
                    if role is None:
                        ok = code == grpc.StatusCode.UNAUTHENTICATED
                    elif may_call(role, rule):
                        ok = code not in DENIED
                    else:
                        ok = code == grpc.StatusCode.PERMISSION_DENIED
                    cells += 1
                    if not ok:
                        mismatches.append(f"{name}.{method.name} by {caller}: {code.name}")
    rpcs = sum(len(s.spec.descriptor.methods) for s in stack.servers.values())
    assert cells == rpcs * len(callers)
    assert mismatches == [], "\n".join(mismatches)
    print(f"access matrix: {cells} cells, all matched")


async def test_health_is_open_and_reflection_needs_a_token(stack: Stack) -> None:
    port = stack.servers["judge"].port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as anonymous:
        reply = await health_pb2_grpc.HealthStub(anonymous).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(anonymous).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        try:
            async for _ in stream:
                raise AssertionError("reflection answered a caller without credentials")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    async with raw_channel(f"127.0.0.1:{port}", CommonSettings(token=TOKENS["viewer"])) as ch:
        stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = [s.name async for r in stream for s in r.list_services_response.service]
        assert "harmeval.judge.v1.JudgeService" in names
