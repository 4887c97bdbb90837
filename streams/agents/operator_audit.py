"""Every operator command ends in one audit.log entry: who, why, what it decided, the state
before and after. Its id derives from the command id (``command:<id>``), so a re-delivered
command re-publishes the same entry, and the HTTP API finds a command's outcome by the
``command_id`` in the entry's evidence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streams.agents import causes
from streams.agents.latches import pause_latches
from streams.agents.outputs import send
from streams.app import clock, settings, topics
from streams.envelope import audit_envelope
from streams.records import OpsAction, OpsCommand

SOURCE = "agents.commands"


def command_decision_id(command_id: str) -> str:
    return f"command:{command_id}"


async def publish_command_audit(command: OpsCommand, decision: str, *, before: Any = None,
                                after: Any = None, detail: str = "",
                                evidence: dict[str, Any] | None = None,
                                source: str = SOURCE) -> None:
    await send(topics.audit, command.scope.encode(), audit_envelope(
        decision_id=command_decision_id(command.command_id), scope=command.scope,
        reason_code="GOV_OPERATOR_ACTION", action=command.action.value.lower(),
        actor=f"operator:{command.actor}", decision=decision, before=before, after=after,
        evidence={"command_id": command.command_id, "reason": command.reason,
                  "target": command.target or "", "detail": detail, **(evidence or {})},
        source=source, observed_ms=clock.now_ms(), event_time_ms=command.issued_time_ms,
        config_version=settings.config_version, cause=causes.of(None),  # the command's
    ))


def _latch(scope: str) -> dict[str, Any] | None:
    entry = pause_latches.data.get(scope)
    return entry["latch"] if entry else None


def _public(latch: dict[str, Any] | None) -> dict[str, Any]:
    if latch is None:
        return {"paused": False, "holds": []}
    return {"paused": latch["paused"], "holds": sorted(latch["holds"])}


async def audited_pause_command(command: OpsCommand,
                                apply: Callable[[], Awaitable[None]]) -> None:
    """Run a PAUSE/RESUME on the scope's latch and audit what it did (once per command id:
    the latch ignores a command id it has seen, and so does the audit)."""
    latch = _latch(command.scope)
    if latch is not None and command.command_id in latch["commands"]:
        await apply()
        return
    before = _public(latch)
    await apply()
    after = _public(_latch(command.scope))
    if command.action is OpsAction.PAUSE:
        decision = "paused" if not before["paused"] else "held"
        detail = ("scope paused" if decision == "paused"
                  else "scope was already paused; the operator's hold is added")
    else:
        decision = "resumed" if before["paused"] and not after["paused"] else "noop"
        detail = ("every hold released" if decision == "resumed"
                  else "scope was not paused")
    await publish_command_audit(command, decision, before=before, after=after, detail=detail)
