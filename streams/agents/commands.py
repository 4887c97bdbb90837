"""Operator commands on ops.commands, dispatched by action to the module that owns it.

Modules register with ``@handles(action, ...)`` at import time; a command whose action
has no handler yet is audited as refused rather than silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from streams.agents import causes
from streams.agents.decoding import consume
from streams.agents.latches import operator_command
from streams.agents.operator_audit import audited_pause_command, publish_command_audit
from streams.app import topics
from streams.codec import InputMessage
from streams.records import OpsAction, OpsCommand

log = logging.getLogger(__name__)
CommandHandler = Callable[[OpsCommand, InputMessage], Awaitable[None]]
_handlers: dict[OpsAction, CommandHandler] = {}


def handles(*actions: OpsAction) -> Callable[[CommandHandler], CommandHandler]:
    def register(handler: CommandHandler) -> CommandHandler:
        for action in actions:
            if action in _handlers:
                raise RuntimeError(f"two handlers for {action}: {_handlers[action]} and {handler}")
            _handlers[action] = handler
        return handler

    return register


@handles(OpsAction.PAUSE, OpsAction.RESUME)
async def pause_or_resume(command: OpsCommand, message: InputMessage) -> None:
    await audited_pause_command(command, lambda: operator_command(
        command.scope, message.partition, command.command_id,
        command.action is OpsAction.PAUSE, command.actor))


async def dispatch(command: OpsCommand, message: InputMessage) -> None:
    handler = _handlers.get(command.action)
    if handler is None:
        log.warning("no handler for %s command %s", command.action, command.command_id)
        await publish_command_audit(command, "refused",
                                    detail=f"no handler for {command.action.value} commands")
        return
    with causes.caused_by(message):  # its decisions name the command's record
        await handler(command, message)


consume(topics.ops_commands, "OpsCommand", dispatch)
