"""The baseline of `polymon bench`: a bare Faust agent that only counts messages, on the
same topics and broker. Run as a process: python -m streams.devtools.bench_bare BOOTSTRAP PREFIX
PORT; it serves its count at http://127.0.0.1:PORT/count."""

from __future__ import annotations

import sys

import faust

bootstrap, prefix, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
INPUTS = ("health.events", "exec.fills", "model.scores", "model.features")

app = faust.App(f"{prefix}bare-counter", broker=f"kafka://{bootstrap}", web_port=port,
                web_host="127.0.0.1", value_serializer="raw", key_serializer="raw",
                topic_partitions=4, consumer_auto_offset_reset="earliest", autodiscover=False,
                datadir=f"/tmp/polymon-bench-bare-{port}")
count = 0


@app.agent(app.topic(*(prefix + name for name in INPUTS)))
async def counter(stream: faust.StreamT) -> None:
    global count
    async for _ in stream.events():
        count += 1


@app.page("/count")
async def served(web, request):  # type: ignore[no-untyped-def]
    return web.json({"count": count})


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
