"""Who may call which RPC, and the check of one ``authorization: Bearer <key>`` header.

The check is independent of gRPC so that an HTTP front end (the web service) can apply the same
rule to its own header; ``interceptor`` applies it to every gRPC call of a server.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from modelverse.security.keys import KeyRing, Role

# Methods every caller may use: liveness probes and the API description (the protos are public).
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)
# The role each public RPC needs. A method not listed needs ``admin``: a new RPC is closed until
# someone decides it may be open to readers.
METHOD_ROLES: dict[str, Role] = {
    "/modelverse.v1.SearchService/Search": Role.READ,
    "/modelverse.v1.SearchService/GetModel": Role.READ,
    "/modelverse.v1.SearchService/ListModels": Role.READ,
    "/modelverse.v1.SearchService/SampleImages": Role.READ,
    "/modelverse.v1.SearchService/GetThumbnails": Role.READ,
    "/modelverse.v1.AdminService/RegisterModel": Role.ADMIN,
    "/modelverse.v1.AdminService/GetJob": Role.ADMIN,
    "/modelverse.v1.AdminService/RemoveModel": Role.ADMIN,
}


class Denial(enum.Enum):
    """Why a call is refused; maps to UNAUTHENTICATED / PERMISSION_DENIED (gRPC) or 401 / 403 (HTTP)."""

    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    key_id: str | None = None
    role: Role | None = None
    denial: Denial | None = None
    message: str = ""


def needed_role(method: str) -> Role | None:
    """The role ``method`` (``/package.Service/Method``) needs; None when it is open."""
    if method.startswith(OPEN_PREFIXES):
        return None
    return METHOD_ROLES.get(method, Role.ADMIN)


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``authorization: Bearer <key>`` value (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


class Authenticator:
    """Decides one call from its authorization header and the role it needs."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def decide(self, authorization: str | None, needed: Role | None) -> Decision:
        if needed is None:
            return Decision(True)
        key = bearer_key(authorization)
        if key is None:
            return Decision(False, denial=Denial.UNAUTHENTICATED,
                            message="missing API key: send metadata 'authorization: Bearer <key>'")
        found = self.ring.role_of(key)
        if found is None:
            return Decision(False, denial=Denial.UNAUTHENTICATED, message="unknown or revoked API key")
        key_id, role = found
        if not role.allows(needed):
            return Decision(False, key_id, role, Denial.PERMISSION_DENIED,
                            f"this call needs a key with role '{needed.value}'; key {key_id} has role '{role.value}'")
        return Decision(True, key_id, role)
