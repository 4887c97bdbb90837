"""The stream-processing peer of `polymon bench`: a minimal quixstreams application on the
same topics and broker as the bare Faust baseline (streams.devtools.bench_bare), doing the least a
health pipeline does: decode every input with polymon's codec, keep each scope's last book
update in quixstreams state (RocksDB, with its changelog topic), check it against the
staleness threshold and publish a pause record when a scope turns stale or fresh again.

Run as a process, like bench_bare, by the interpreter of the quixstreams env
(streams.devtools.bench.quix_python: quixstreams cannot share polymon's environment):
python -m streams.devtools.bench_quix BOOTSTRAP PREFIX PORT STATE_DIR THRESHOLD_S; it serves its
count of processed messages at http://127.0.0.1:PORT/count, as bench_bare does.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

INPUTS = ("health.events", "exec.fills", "model.scores", "model.features")
PAUSES = "bench.quix-pauses"
BOOK_MS, PAUSED = "book_ms", "paused"

count = 0  # messages processed, read by the parent over HTTP


class ScopeState(Protocol):
    """What the staleness check needs of quixstreams' State (one scope's: the key's)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


def track(event: dict[str, Any], state: ScopeState, now_ms: int,
          threshold_ms: int) -> dict[str, Any] | None:
    """One health event of a scope: a book DATA_UPDATE moves the scope's last update time;
    the scope is stale when that is more than ``threshold_ms`` before ``now_ms``. Returns
    the pause record when the scope turned stale (or fresh) with this event, else None."""
    last = state.get(BOOK_MS)
    if (event["kind"] == "DATA_UPDATE" and event.get("feed") == "book"
            and (last is None or event["event_time_ms"] > last)):  # a late one moves nothing
        last = event["event_time_ms"]
        state.set(BOOK_MS, last)
    if last is None:  # no book data yet: nothing to be stale
        return None
    stale = now_ms - last > threshold_ms
    if stale == state.get(PAUSED, False):
        return None
    state.set(PAUSED, stale)
    return {"scope": event["scope"], "paused": stale, "reason": "stale data: book",
            "last_update_ms": last, "detected_ms": now_ms}


def serve_count(port: int) -> ThreadingHTTPServer:
    """GET /count → {"count": n}, from a daemon thread (the app's loop owns the main one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"count": count}).encode()
            self.send_response(200 if self.path == "/count" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a request every 20 ms while the parent waits for the first event

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str]) -> None:
    from quixstreams import Application, State  # only in the quixstreams env

    from streams import compiled

    compiled.install()  # before the hot path's codec: a stale build of it never runs
    from streams.codec import Codecs, SchemaCatalog
    from streams.topics import load_topic_specs

    bootstrap, prefix, port, state_dir, threshold_s = argv
    threshold_ms = int(float(threshold_s) * 1000)
    codecs, specs = Codecs(SchemaCatalog()), load_topic_specs()

    def processed(topic: str, partition: int, offset: int) -> None:
        global count
        count += 1

    app = Application(broker_address=bootstrap, consumer_group=f"{prefix}quix-peer",
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                      on_message_processed=processed)
    pauses = app.topic(prefix + PAUSES, value_serializer="json", key_serializer="bytes")
    for name in INPUTS:
        decode: Callable[[bytes | None], dict[str, Any]] = codecs[specs[name].schema].decode
        sdf = app.dataframe(app.topic(prefix + name, value_deserializer="bytes",
                                      key_deserializer="bytes")).apply(decode)
        if name == "health.events":
            def check(event: dict[str, Any], state: State) -> dict[str, Any] | None:
                return track(event, state, int(time.time() * 1000), threshold_ms)

            sdf = sdf.apply(check, stateful=True).filter(lambda pause: pause is not None)
            sdf.to_topic(pauses)
    serve_count(int(port))
    app.run()


if __name__ == "__main__":
    main(sys.argv[1:])
