"""Bearer-token auth: 401 without or with an unknown token, 403 without the right."""

from __future__ import annotations

import pytest

from streams.settings import ApiTokenSetting, Settings
from streams.web.auth import AuthError, authenticate, authorize

TOKENS = {
    "alice-token-0123456789": ApiTokenSetting(actor="alice", rights=["pause", "resume", "ack"]),
    "bob-token-0123456789ab": ApiTokenSetting(actor="bob", rights=["read"]),
}


def test_a_known_token_names_its_actor_and_rights() -> None:
    who = authenticate("Bearer alice-token-0123456789", TOKENS)
    assert who.actor == "alice" and who.rights == {"pause", "resume", "ack"}
    authorize(who, "pause")
    assert authenticate("bearer   bob-token-0123456789ab ", TOKENS).actor == "bob"


@pytest.mark.parametrize(("header", "message"), [
    (None, "missing Authorization header"),
    ("", "missing Authorization header"),
    ("alice-token-0123456789", "must be 'Bearer <token>'"),
    ("Basic YWxpY2U6eA==", "must be 'Bearer <token>'"),
    ("Bearer", "must be 'Bearer <token>'"),
    ("Bearer alice-token-012345678", "unknown token"),
    ("Bearer alice-token-0123456789x", "unknown token"),
])
def test_no_or_unknown_token_is_401(header: str | None, message: str) -> None:
    with pytest.raises(AuthError, match=message) as caught:
        authenticate(header, TOKENS)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith('Bearer realm="polymon"')


def test_no_tokens_configured_refuses_everyone() -> None:
    with pytest.raises(AuthError, match="no API tokens") as caught:
        authenticate("Bearer alice-token-0123456789", {})
    assert caught.value.status == 401


def test_a_token_without_the_right_is_403_and_says_which() -> None:
    bob = authenticate("Bearer bob-token-0123456789ab", TOKENS)
    with pytest.raises(AuthError) as caught:
        authorize(bob, "resolve")
    assert caught.value.status == 403 and not caught.value.headers
    assert caught.value.message == "bob lacks the 'resolve' right (holds: read)"


def test_unknown_rights_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown right"):
        authorize(authenticate("Bearer bob-token-0123456789ab", TOKENS), "launch")


def test_tokens_from_the_environment_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMON_API_TOKENS",
                       '{"token-abcdefghijklmnop": {"actor": "alice", "rights": ["pause"]}}')
    assert Settings().api_tokens["token-abcdefghijklmnop"].actor == "alice"
    monkeypatch.setenv("POLYMON_API_TOKENS", '{"short": {"actor": "a", "rights": []}}')
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings()
    monkeypatch.setenv("POLYMON_API_TOKENS",
                       '{"token-abcdefghijklmnop": {"actor": "a", "rights": ["launch"]}}')
    with pytest.raises(ValueError, match="rights"):
        Settings()
