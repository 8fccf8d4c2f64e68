"""Who may call what: roles, and the rule every RPC declares in its proto.

Each RPC carries `option (harmeval.common.v1.access) = {role: ROLE_X}` (protos/harmeval/
common/v1/access.proto); this module reads those options from the service descriptor, so the
contract is the one place the rules live, and a service with an RPC lacking a rule fails here,
before its server starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from harmeval.common.v1 import access_pb2

VIEWER, ANALYST, ANNOTATOR, OPERATOR = "viewer", "analyst", "annotator", "operator"
ROLES = frozenset({VIEWER, ANALYST, ANNOTATOR, OPERATOR})

# The roles each role acts as: analysts and annotators see what viewers see, operators all.
GRANTS: dict[str, frozenset[str]] = {
    VIEWER: frozenset({VIEWER}),
    ANALYST: frozenset({VIEWER, ANALYST}),
    ANNOTATOR: frozenset({VIEWER, ANNOTATOR}),
    OPERATOR: ROLES,
}

_ROLE_NAMES = {
    access_pb2.ROLE_VIEWER: VIEWER,
    access_pb2.ROLE_ANALYST: ANALYST,
    access_pb2.ROLE_ANNOTATOR: ANNOTATOR,
    access_pb2.ROLE_OPERATOR: OPERATOR,
}


class AccessRuleError(RuntimeError):
    """An RPC has no access rule, or one naming no known role: the service must not start."""


@dataclass(frozen=True)
class Rule:
    role: str
    # The response carries raw harmful text: every call is audited.
    raw_text: bool = False


def may_call(role: str, rule: Rule) -> bool:
    return rule.role in GRANTS.get(role, frozenset())


def rules_of(service: ServiceDescriptor) -> dict[str, Rule]:
    """`/package.Service/Method` -> its rule, for every RPC of the service."""
    rules: dict[str, Rule] = {}
    problems: list[str] = []
    for method in service.methods:
        options = method.GetOptions()
        extension: Any = access_pb2.access  # generated extensions are untyped in the stubs
        if not options.HasExtension(extension):
            problems.append(f"{method.full_name} has no (harmeval.common.v1.access) rule")
            continue
        declared: access_pb2.AccessRule = options.Extensions[extension]
        role = _ROLE_NAMES.get(declared.role)
        if role is None:
            problems.append(f"{method.full_name}: access rule names no known role")
            continue
        rules[f"/{service.full_name}/{method.name}"] = Rule(role, declared.raw_text)
    if problems:
        raise AccessRuleError(f"{service.full_name} refuses to start: " + "; ".join(problems))
    return rules
