"""How workers ask each other: signed with a shared secret, never with a caller's token.

A list request fans out to every member of the consumer group, and the member check
reads each member's id from its /healthz. Any process that joins the group announces a
URL there, so a caller's bearer token must never travel to an announced URL. Instead a
worker signs its own request: HMAC-SHA256 over (method, the target's URL, path, time)
with ``POLYMON_PEER_SECRET``, which every worker of the deployment shares. A signature is
good for one target and ``MAX_SKEW_S``: a rogue member that receives one cannot replay it
to a real worker. Pure: no aiohttp.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr

Secret = SecretStr | str | None

PEER_TIME = "X-Polymon-Peer-Time"
PEER_SIGNATURE = "X-Polymon-Peer-Signature"
MAX_SKEW_S = 30.0
_MAX_TIME_CHARS = 16


def _revealed(secret: Secret) -> str | None:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def signature(secret: str, method: str, target: str, path: str, time_ms: int) -> str:
    message = "\n".join((method.upper(), target.rstrip("/"), path, str(time_ms)))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def peer_headers(secret: Secret, method: str, target: str, path: str,
                 now_ms: int) -> dict[str, str]:
    """The headers of a request this worker sends to the peer at ``target``; none
    without a secret (the peer then treats it as any anonymous caller)."""
    secret = _revealed(secret)
    if not secret:
        return {}
    return {PEER_TIME: str(now_ms),
            PEER_SIGNATURE: signature(secret, method, target, path, now_ms)}


def is_peer(secret: Secret, method: str, own_url: str, path: str,
            headers: Mapping[str, str], now_ms: int) -> bool:
    """Whether a request to this worker (at ``own_url``) was signed by a peer, recently."""
    secret = _revealed(secret)
    sent, given = headers.get(PEER_TIME, ""), headers.get(PEER_SIGNATURE, "")
    if not secret or not given or not sent.isdigit() or len(sent) > _MAX_TIME_CHARS:
        return False
    if abs(now_ms - int(sent)) > MAX_SKEW_S * 1000:
        return False
    return hmac.compare_digest(signature(secret, method, own_url, path, int(sent)), given)


def reachable_peer(url: str, known: list[str] | None) -> bool:
    """Whether this worker may send a request to an announced ``url``: http(s) with a
    host, and one of ``known`` when the deployment lists its workers' URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return known is None or url.rstrip("/") in {k.rstrip("/") for k in known}
