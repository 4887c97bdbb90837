"""In-process benchmark of the agents' handlers: the `polymon bench` event mix through the
real batch handlers (decode, validation, agent state, changelog records encoded as the
flush does, re-keyed fills handed back as the consumer would), without Kafka. What a
change costs per event, measured without the broker's noise.

Usage::

    .venv/bin/python ops/bench_handlers.py [--events 100000] [--scopes 5000] [--rounds 3]
                                           [--flush-every 25000] [--baseline REV]
                                           [--instructions]

Prints CPU microseconds per input event, in all and per input topic (a topic's figure is
per record of that topic; ``rekeyed`` is per re-keyed fill; ``changelogs`` per changelog
record encoded, every ``--flush-every`` input events: how many a flush finds depends on
how many events each scope gets between flushes). Each run is a fresh process
(fresh state, as a worker starts). With ``--baseline REV`` the runs alternate between a
git worktree of REV and this checkout, and the ratio of the best runs is printed: the
machine's speed drifts, alternating keeps the comparison fair. With ``--instructions``
the handlers' instructions per input event are counted under valgrind instead
(deterministic, so one run per tree: on a shared machine whose speed moves by tens of
per cent within an hour, the way to see a change of a few per cent).

Staleness thresholds are out of reach (as in the bench's pipeline phase): the events are
a minute old, and the benchmark measures the steady state, not an alert storm. The
agents' clock stands still (half way through the current hour), so a run does the same
work however long it takes. A run fails if any record is dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]
BATCH = 500  # records per handler call, as the consumer hands them over (YIELD_EVERY)


class _Consumed:
    """What a batch handler reads of a consumed record (a worker's are
    streams.framework.record_unpacking.FetchedRecord; this is the same whatever the
    tree under test)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, offset: int, timestamp: int, key: bytes | None,
                 value: bytes | None, headers: Any = ()) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset
        self.timestamp, self.key, self.value, self.headers = timestamp, key, value, headers


async def _run_handlers(events: int, scopes: int, flush_every: int,
                        handle: bool = True, collect: bool = True) -> dict[str, Any]:
    """One run, in this process (which imported the tree under test). ``handle=False``:
    everything but handling the events (what --instructions subtracts). ``collect=False``:
    no garbage collection once the mix is built (see _instructions)."""
    from faust.types import TP

    from streams import compiled

    compiled.install()  # before the tree's hot path: a stale build of it never runs
    from streams import agents, web, worker  # noqa: F401  (registers agents)
    from streams.agents import decoding, outputs
    from streams.app import settings

    # where the tree under test keeps its dev tools: the older place first, since the
    # checkout's editable install also answers for streams.devtools
    try:
        from streams import bench  # type: ignore[attr-defined]
    except ImportError:
        from streams.devtools import bench  # type: ignore[no-redef]

    async def keep_queued() -> int:  # the producer is not started: drained below
        return 0

    letters: list[str] = []

    def refuse_letter(message: Any, stage: Any, error: str) -> None:
        letters.append(f"{message.topic}@{message.offset} ({stage}): {error}")

    decoding.flush_outbox_if_due = keep_queued  # type: ignore[assignment]
    decoding.publish_dead_letter = refuse_letter  # type: ignore[assignment]
    # The agents' clock stands still, half way through the current hour: the handlers
    # do the same work whenever and however slowly (valgrind) they run. A clock that
    # moved on took windows (minutes, the canary's hour) past their ends at different
    # points of different runs: the same code counted up to 4 % apart.
    hour_ms = 3_600_000
    now_ms = int(time.time() * 1000)
    frozen_ms = now_ms - now_ms % hour_ms + hour_ms // 2
    from streams import clock

    clock._time_ns = lambda: frozen_ms * 1_000_000  # type: ignore[attr-defined]
    start_ms = frozen_ms - 60_000  # a minute of event time before now, in one minute
    mix = bench.synthetic_mix(events, scopes, 1, start_ms)
    worker.tune_gc(settings.gc_thresholds)  # as a worker starts
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for topic, key, value in mix:
        by_topic.setdefault(topic, []).append((key, value))
    if not collect:
        gc.disable()
    if not handle:
        return {}
    try:  # where the tree under test keeps its handlers (the older place first, as above)
        from streams import batching  # type: ignore[attr-defined]

        handlers = batching._batch_handlers
    except ImportError:
        from streams.delivery import batch_handlers as handlers
    names = {topic: next(name for name in handlers if name.endswith(topic))
             for topic in by_topic}
    rekeyed = next(name for name in handlers if name.endswith("exec.fills-by-scope-repartition"))
    spent = dict.fromkeys([*by_topic, "rekeyed", "changelogs"], 0.0)
    counts = dict.fromkeys(spent, 0)
    offsets = dict.fromkeys(spent, 0)

    # trees from before changelog_messages: the encoding flush_changelogs did inline
    encoded = getattr(outputs, "changelog_messages", None) or (lambda changes: (
        (outputs._encode_json(key).encode(),
         None if value is None else outputs._encode_json(value).encode())
        for key, value in changes.items()))

    def encode_changelogs() -> None:
        """What flush_changelogs does before handing the records to the producer."""
        began = time.process_time()
        while outputs._unsent:
            _, changes = outputs._unsent.popitem()
            counts["changelogs"] += sum(1 for _ in encoded(changes))
        spent["changelogs"] += time.process_time() - began

    async def hand(label: str, name: str, items: list[tuple[bytes, bytes]]) -> None:
        for first in range(0, len(items), BATCH):
            # a queued message is (key, value) or, carrying its cause, (key, value, headers)
            chunk = [_Consumed(name, offsets[label] + i, start_ms, *message)
                     for i, message in enumerate(items[first:first + BATCH])]
            offsets[label] += len(chunk)
            began = time.process_time()
            await handlers[name](TP(name, 0), chunk)
            spent[label] += time.process_time() - began
            counts[label] += len(chunk)

    step = 4 * BATCH  # input events per round: every topic in proportion, then re-keyed
    for first in range(0, events, step):
        if first and first % flush_every < step:
            encode_changelogs()
        for topic, items in by_topic.items():
            share = items[first * len(items) // events:(first + step) * len(items) // events]
            await hand(topic, names[topic], share)
        sent_on = [message for (topic, _), queued in list(outputs._outbox.items())
                   if topic == rekeyed for message in queued]
        outputs._outbox.clear()
        await hand("rekeyed", rekeyed, sent_on)
    encode_changelogs()
    if letters:
        raise SystemExit(f"{len(letters)} records dead-lettered, e.g. {letters[0]}")
    return {"us_per_event": sum(spent.values()) / events * 1e6,
            "topics": {label: spent[label] / counts[label] * 1e6
                       for label in spent if counts[label]}}


def _child(tree: Path, events: int, scopes: int, flush_every: int, handle: bool,
           collect: bool) -> None:
    sys.path.insert(0, str(tree))
    print(json.dumps(asyncio.run(_run_handlers(events, scopes, flush_every, handle, collect))))


def _child_run(tree: Path, events: int, scopes: int, flush_every: int, handle: bool = True,
               under: Sequence[str] = (), collect: bool = True,
               ) -> subprocess.CompletedProcess[str]:
    """One run in a fresh process that imports ``tree``'s streams package (``under``: a
    command that runs it, e.g. valgrind; ``collect=False``: no garbage collection)."""
    sys.path.insert(0, str(CHECKOUT))
    from streams import compiled

    compiled.install()  # streams.devtools.bench imports the hot path
    from streams.devtools.bench import THROUGHPUT_SETTINGS
    from streams.worker_process import worker_env

    env = worker_env("127.0.0.1:9", **THROUGHPUT_SETTINGS)  # nothing is sent: no broker
    env["PYTHONPATH"] = str(tree)
    env["PYTHONHASHSEED"] = "0"  # the same dict and set orders: the same instructions
    done = subprocess.run(
        [*under, sys.executable, __file__, "--child", str(tree), "--events", str(events),
         "--scopes", str(scopes), "--flush-every", str(flush_every),
         *([] if handle else ["--mix-only"]), *([] if collect else ["--no-gc"])],
        env=env, cwd=tree, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"run in {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def _run(tree: Path, events: int, scopes: int, flush_every: int) -> dict[str, Any]:
    done = _child_run(tree, events, scopes, flush_every)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


CACHEGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no",
              "--cachegrind-out-file=/dev/null")
WARM_UP = 4 * BATCH  # events of the shorter run: start-up and first scopes, subtracted


def _instructions(tree: Path, events: int, scopes: int, flush_every: int) -> float:
    """Instructions per input event of the handlers, counted by valgrind: the same as a
    timing on a quiet machine, the same on a busy one. Four runs: the mix handled with
    ``WARM_UP`` and with ``WARM_UP + events`` events, and the same two without handling
    (imports, building and encoding the mix); the difference of the differences is what
    ``events`` events cost the handlers. Without garbage collection once the mix is
    built: whether a full collection falls inside a run moved the count by several per
    cent between trees whose handlers differed by less."""
    # Modules compiled to bytecode first: four runs starting at once otherwise race to
    # compile and cache them, and whichever compiled counted the compiling.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "streams")],
                   check=True, capture_output=True)
    runs = [(count, handle) for handle in (True, False)
            for count in (WARM_UP, WARM_UP + events)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = list(pool.map(
            lambda run: _child_run(tree, run[0], scopes, flush_every, run[1], CACHEGRIND,
                                   collect=False),
            runs))
    counted = []
    for run in done:
        found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
        if found is None:
            raise SystemExit(f"valgrind printed no instruction count:\n{run.stderr[-3000:]}")
        counted.append(int(found[1].replace(",", "")))
    short, long, short_mix, long_mix = counted
    return ((long - short) - (long_mix - short_mix)) / events


def _line(label: str, result: dict[str, Any]) -> str:
    topics = ", ".join(f"{topic} {us:.1f}" for topic, us in result["topics"].items())
    return f"{label:>13}: {result['us_per_event']:6.1f} µs per input event  ({topics})"


def _count_instructions(trees: dict[str, Path], args: argparse.Namespace) -> None:
    counted = {}
    for label, tree in trees.items():
        print(f"{label}: counting with valgrind (4 runs, a few minutes)", file=sys.stderr,
              flush=True)
        counted[label] = _instructions(tree, args.events, args.scopes, args.flush_every)
        print(f"{label:>13}: {counted[label]:,.0f} instructions per input event", flush=True)
    if "baseline" in counted:
        print(f"this checkout runs ×{counted['baseline'] / counted['this']:.3f} fewer "
              f"instructions per input event than {args.baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--scopes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flush-every", type=int, default=25_000, metavar="N",
                        help="input events between changelog flushes (25,000: the 1 s "
                        "changelog interval at 25k events/s)")
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare with")
    parser.add_argument("--instructions", action="store_true",
                        help="count the handlers' instructions per input event with valgrind "
                        "instead of timing them (deterministic: for a noisy machine; "
                        "about 50× slower, --rounds unused)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mix-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-gc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.events < 4 * BATCH or args.scopes < 1 or args.rounds < 1
            or args.flush_every < 1):
        parser.error("--events must be at least 2000, --scopes, --rounds and --flush-every "
                     "at least 1")
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH (Debian: apt-get install valgrind)")
    if args.child:
        _child(args.child, args.events, args.scopes, args.flush_every, not args.mix_only,
               not args.no_gc)
        return
    with tempfile.TemporaryDirectory(prefix="bench-handlers-") as scratch:
        trees = {"this": CHECKOUT}
        if args.baseline:
            base = Path(scratch) / "baseline"
            added = subprocess.run(
                ["git", "-C", str(CHECKOUT), "worktree", "add", "--detach", str(base),
                 args.baseline], capture_output=True, text=True)
            if added.returncode != 0:
                parser.error(f"--baseline {args.baseline}: {added.stderr.strip()}")
            if (base / "setup.py").exists():  # its compiled parts, as pip install builds them
                print(f"building {args.baseline}'s compiled parts", file=sys.stderr, flush=True)
                built = subprocess.run([sys.executable, "setup.py", "-q", "build_ext",
                                        "--inplace"], cwd=base, capture_output=True, text=True)
                if built.returncode != 0:
                    raise SystemExit(f"building {args.baseline}'s compiled parts failed:\n"
                                     f"{built.stderr[-3000:]}")
            trees = {"baseline": base, "this": CHECKOUT}
        try:
            if args.instructions:
                _count_instructions(trees, args)
                return
            best: dict[str, dict[str, Any]] = {}
            for round_number in range(1, args.rounds + 1):
                for label, tree in trees.items():
                    result = _run(tree, args.events, args.scopes, args.flush_every)
                    print(_line(f"{label} {round_number}", result), flush=True)
                    if label not in best or result["us_per_event"] < best[label]["us_per_event"]:
                        best[label] = result
            for label, result in best.items():
                print(_line(f"best {label}", result))
            if "baseline" in best:
                ratio = best["baseline"]["us_per_event"] / best["this"]["us_per_event"]
                print(f"this checkout is ×{ratio:.2f} the speed of {args.baseline} "
                      f"(best of {args.rounds} alternating runs each)")
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(CHECKOUT), "worktree", "remove", "--force",
                                str(Path(scratch) / "baseline")], capture_output=True)


if __name__ == "__main__":
    main()
