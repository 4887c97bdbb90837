"""Bearer-token auth of the operator API. Pure: no Faust, no aiohttp.

Tokens come from settings (``POLYMON_API_TOKENS``), each naming an actor and the rights
it grants: ``read`` (only needed when ``POLYMON_API_READ_REQUIRES_TOKEN`` is set),
``pause``, ``resume``, ``rollback``, ``promote``, ``ack``, ``resolve``. No or an unknown
token: 401; a known token without the right: 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from streams.settings import ApiTokenSetting

RIGHTS = ("read", "pause", "resume", "rollback", "promote", "ack", "resolve")
CHALLENGE = 'Bearer realm="polymon"'


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        if self.status == 401:
            return {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'}
        return {}


@dataclass(frozen=True, slots=True)
class Principal:
    actor: str
    rights: frozenset[str]


def authenticate(authorization: str | None,
                 tokens: Mapping[str, ApiTokenSetting]) -> Principal:
    """The principal of an ``Authorization: Bearer <token>`` header, or AuthError(401)."""
    if not authorization:
        raise AuthError(401, "missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError(401, "Authorization header must be 'Bearer <token>'")
    if not tokens:
        raise AuthError(401, "this worker has no API tokens (POLYMON_API_TOKENS): operator "
                             "actions through the API are disabled")
    found: ApiTokenSetting | None = None
    for known, grant in tokens.items():
        # Compare with every token in constant time: no early exit that leaks which.
        if hmac.compare_digest(known.encode(), token.encode()):
            found = grant
    if found is None:
        raise AuthError(401, "unknown token")
    return Principal(actor=found.actor, rights=frozenset(found.rights))


def authorize(principal: Principal, right: str) -> None:
    """AuthError(403) unless the principal holds ``right``."""
    if right not in RIGHTS:
        raise ValueError(f"unknown right {right!r}")
    if right not in principal.rights:
        held = ", ".join(sorted(principal.rights)) or "none"
        raise AuthError(403, f"{principal.actor} lacks the '{right}' right (holds: {held})")
