"""Workers ask each other with their own signed requests, never with a caller's token: a
member of the group that announces a URL of its choosing (here a recorder standing in
for a rogue process) receives no operator token, and the signature it does receive is
good for its own URL only."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from streams.peer_auth import PEER_SIGNATURE, PEER_TIME, is_peer, peer_headers
from streams.processes import free_port
from streams.worker_process import WorkerProcess
from tests.conftest import Stack, wait_until

pytestmark = pytest.mark.integration

READER = "reader-token-0123456789"
TOKENS = {READER: {"actor": "rita", "rights": ["read"]}}


class Recorder(http.server.ThreadingHTTPServer):
    """Answers 503 to everything and keeps each request's path and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append((self.path, dict(self.headers.items())))
                body = b'{"error": "busy"}'
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def get(worker: WorkerProcess, path: str, headers: dict[str, str] | None = None
        ) -> tuple[int, Any]:
    request = urllib.request.Request(f"{worker.url}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_member_announcing_any_url_never_receives_a_callers_token(
        stack: Stack, recorder: Recorder) -> None:
    stack.create_topics()
    settings = {"api_tokens": TOKENS, "api_read_requires_token": True}
    honest = stack.start_worker("worker-1", **settings)
    # joins the group like any worker, but announces the recorder's URL as its own
    stack.start_worker("worker-2", web_url=recorder.url, **settings)
    token = {"Authorization": f"Bearer {READER}"}

    def answered_with_both() -> dict[str, Any] | None:
        status, reply = get(honest, "/api/freshness", token)
        urls = {w["url"] for w in reply.get("workers", [])} if status == 200 else set()
        return reply if recorder.url in urls else None

    reply = wait_until(answered_with_both, 60, what="a fan-out that reaches both members")
    failed = [w for w in reply["workers"] if w["url"] == recorder.url]
    assert failed == [{"worker_id": None, "url": recorder.url, "partitions": failed[0][
        "partitions"], "ok": False, "error": "HTTP 503"}]
    assert reply["complete"] is False

    fan_outs = [(path, headers) for path, headers in recorder.seen
                if path.startswith("/api/freshness")]
    assert fan_outs, recorder.seen
    for path, headers in fan_outs:
        assert "local=true" in path
        assert "Authorization" not in headers and READER not in json.dumps(headers)
        signed = {PEER_TIME: headers[PEER_TIME], PEER_SIGNATURE: headers[PEER_SIGNATURE]}
        sent_ms = int(headers[PEER_TIME])
        # good for the recorder's own URL, useless against the honest worker
        assert is_peer(stack.peer_secret, "GET", recorder.url, "/api/freshness", signed, sent_ms)
        assert not is_peer(stack.peer_secret, "GET", honest.url, "/api/freshness", signed,
                           sent_ms)
        status, _ = get(honest, "/api/freshness?local=true", signed)
        assert status == 401, "a signature for another worker's URL must not be accepted"


def test_a_peers_signed_request_is_answered_and_learns_the_member_id(stack: Stack) -> None:
    stack.create_topics()
    worker = stack.start_worker(api_tokens=TOKENS, api_read_requires_token=True)
    assert get(worker, "/api/freshness?local=true")[0] == 401
    signed = peer_headers(stack.peer_secret, "GET", worker.url, "/api/freshness",
                          int(time.time() * 1000))
    status, reply = get(worker, "/api/freshness?local=true", signed)
    assert status == 200 and reply["worker_id"] == "worker-1"

    status, health = get(worker, "/healthz")
    assert status == 200 and "group_member_id" not in health
    signed = peer_headers(stack.peer_secret, "GET", worker.url, "/healthz",
                          int(time.time() * 1000))
    status, health = get(worker, "/healthz", signed)
    assert status == 200 and health["group_member_id"]
