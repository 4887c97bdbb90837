from __future__ import annotations

import pytest

from streams.peer_auth import (
    MAX_SKEW_S,
    PEER_SIGNATURE,
    PEER_TIME,
    is_peer,
    peer_headers,
    reachable_peer,
)

SECRET = "s" * 64
NOW = 1_800_000_000_000
WORKER = "http://10.0.0.1:6066"


def test_a_signed_request_is_a_peers_for_its_target_path_and_time_only() -> None:
    headers = peer_headers(SECRET, "GET", WORKER, "/api/scopes", NOW)
    assert is_peer(SECRET, "GET", WORKER + "/", "/api/scopes", headers, NOW + 1000)
    assert not is_peer(SECRET, "GET", "http://rogue:6066", "/api/scopes", headers, NOW)
    assert not is_peer(SECRET, "GET", WORKER, "/api/pauses", headers, NOW)
    assert not is_peer(SECRET, "POST", WORKER, "/api/scopes", headers, NOW)
    assert not is_peer("t" * 64, "GET", WORKER, "/api/scopes", headers, NOW)
    late = NOW + int(MAX_SKEW_S * 1000) + 1
    assert not is_peer(SECRET, "GET", WORKER, "/api/scopes", headers, late)


@pytest.mark.parametrize("headers", [
    {}, {PEER_TIME: str(NOW)}, {PEER_SIGNATURE: "00"},
    {PEER_TIME: "-1", PEER_SIGNATURE: "00"}, {PEER_TIME: "9" * 40, PEER_SIGNATURE: "00"},
])
def test_unsigned_or_malformed_requests_are_not_a_peers(headers: dict[str, str]) -> None:
    assert not is_peer(SECRET, "GET", WORKER, "/healthz", headers, NOW)


def test_without_a_secret_nothing_is_signed_and_nothing_is_a_peers() -> None:
    assert peer_headers(None, "GET", WORKER, "/healthz", NOW) == {}
    signed = peer_headers(SECRET, "GET", WORKER, "/healthz", NOW)
    assert not is_peer(None, "GET", WORKER, "/healthz", signed, NOW)


def test_only_http_urls_and_listed_ones_are_asked() -> None:
    assert reachable_peer(WORKER, None)
    assert not reachable_peer("file:///etc/passwd", None)
    assert not reachable_peer("gopher://10.0.0.1:70", None)
    assert not reachable_peer("http://", None)
    assert reachable_peer(WORKER, [WORKER + "/"])
    assert not reachable_peer("http://10.0.0.9:6066", [WORKER])
