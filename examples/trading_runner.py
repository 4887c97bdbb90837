"""A toy trading runner that obeys polymon: every order goes through PauseGuard first.

    .venv/bin/python examples/trading_runner.py --bootstrap 127.0.0.1:9092 \\
        --scope bot:b1/market:m7 --scope bot:b2/market:m8

Pause a scope (an OpsCommand PAUSE on ops.commands, e.g. with ``polymon produce
ops.commands``) and its orders are held with the reason; stop the polymon workers or
the broker and every order is held (fail closed) until they are back.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import threading
import time

from streams.records import PauseState
from streams.runner import GuardStatus, PauseGuard

DEFAULT_SCOPES = ["bot:b1/market:m7", "bot:b1/market:m9", "bot:b2/market:m8"]
_printing = threading.Lock()


def say(line: str) -> None:
    """One whole line: the guard's callbacks run on its own thread, beside the orders."""
    with _printing:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def on_change(scope: str, state: PauseState | None) -> None:
    # A real runner would cancel the scope's resting orders when it becomes paused.
    what = "deleted" if state is None else ("PAUSED" if state.paused else "resumed")
    reason = f" ({state.reason_code})" if state is not None and state.reason_code else ""
    say(f"[pauses] {scope}: {what}{reason}")


def on_health(status: GuardStatus) -> None:
    say(f"[guard] {status.state.value}: {status.reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--prefix", default="", help="polymon's POLYMON_TOPIC_PREFIX")
    parser.add_argument("--scope", action="append", dest="scopes",
                        help=f"scope to trade, repeatable (default: {' '.join(DEFAULT_SCOPES)})")
    parser.add_argument("--max-age", type=float, default=5.0,
                        help="deny when polymon's heartbeat is older than this, seconds")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between orders")
    parser.add_argument("--orders", type=int, default=0,
                        help="stop after this many order attempts (0: until Ctrl-C)")
    parser.add_argument("--ready-timeout", type=float, default=30.0,
                        help="how long to wait for the guard before the first order")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # librdkafka logs every failed reconnect; on_health already says the broker is gone.
    logging.getLogger("streams.runner.rdkafka").setLevel(logging.CRITICAL)
    scopes = args.scopes or DEFAULT_SCOPES

    with PauseGuard(args.bootstrap, topic_prefix=args.prefix, heartbeat_max_age_s=args.max_age,
                    on_change=on_change, on_health=on_health) as guard:
        if not guard.wait_ready(timeout=args.ready_timeout):
            say(f"[guard] not ready after {args.ready_timeout:g}s, orders are held: "
                f"{guard.status().reason}")
        attempts = range(1, args.orders + 1) if args.orders else itertools.count(1)
        try:
            for number, scope in zip(attempts, itertools.cycle(scopes), strict=False):
                decision = guard.allowed(scope)  # from memory: no network call per order
                if decision:
                    say(f"order {number} {scope}: SENT")
                else:
                    say(f"order {number} {scope}: HELD, {decision.reason}")
                time.sleep(args.interval)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
