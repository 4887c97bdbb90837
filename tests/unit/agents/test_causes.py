"""streams.agents.causes: a decision names the last input seen for its scope, unless the
code around it names its cause (an operator command, an incident input)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.agents import causes
from streams.tracing import Cause

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _message(offset: int, traceparent: str | None = None) -> SimpleNamespace:
    headers = (("traceparent", traceparent.encode()),) if traceparent else ()
    return SimpleNamespace(topic="health.events", partition=4, offset=offset, headers=headers)


def test_a_decision_names_the_last_input_of_its_scope() -> None:
    causes.last_input["market:c1"] = _message(7, f"00-{TRACE}-{SPAN}-01")
    causes.last_input["market:c1"] = _message(8, f"00-{TRACE}-{'1' * 16}-01")
    assert causes.of("market:c1") == Cause(TRACE, "1" * 16, ("health.events/4@8",))
    assert causes.of("market:never-seen") == Cause()


def test_an_explicit_cause_wins_inside_its_block_only() -> None:
    causes.last_input["market:c2"] = _message(1)
    command = SimpleNamespace(topic="ops.commands", partition=0, offset=3, headers=())
    with causes.caused_by(command) as cause:
        assert cause.events == ("ops.commands/0@3",)
        assert causes.of("market:c2") == cause
        assert causes.of(None) == cause
    assert causes.of("market:c2").events == ("health.events/4@1",)


def test_an_explicit_cause_does_not_leak_into_other_tasks() -> None:
    async def main() -> tuple[Cause, Cause]:
        entered, release = asyncio.Event(), asyncio.Event()

        async def command() -> Cause:
            with causes.caused_by(Cause(events=("ops.commands/0@9",))) as cause:
                entered.set()
                await release.wait()
                return cause

        task = asyncio.create_task(command())
        await entered.wait()
        tick = causes.of(None)  # a tick running meanwhile keeps its own (none)
        release.set()
        return tick, await task

    tick, command = asyncio.run(main())
    assert tick == Cause() and command.events == ("ops.commands/0@9",)
