"""A deployment's Kafka ACLs, from its principals: who may write each topic, and who may
only read.

Kafka is polymon's trust boundary: whoever writes ``control.pauses`` unpauses runners,
whoever writes ``ops.commands`` acts as any operator, whoever writes
``monitor.heartbeat`` keeps guards READY while polymon is down. So:

- the worker principal alone writes every topic polymon decides on (pauses, alerts,
  incidents, rollout, audit, heartbeat, dead letters) and its internal and changelog
  topics (``<group>-`` prefixed, which Faust creates), and reads everything it consumes;
- ``ops.commands`` is written by the worker (its operator API publishes there) and the
  listed command writers only;
- each producer writes the input topics it is listed for, and nothing else;
- runners read ``control.pauses`` and ``monitor.heartbeat`` and write their pause
  acknowledgements to ``control.pause-acks``, and nothing else (a runner can at worst
  misreport its own acknowledgements: it cannot pause, unpause or silence anything),
  and their trade reports to ``exec.trades``, which the worker checks and copies to
  ``audit.log`` (a runner cannot write audit.log: it could forge decisions there).

:func:`deployment_acls` is pure (plain values in, bindings out); :func:`apply_acls` talks
to the admin client. Deny is Kafka's default once an
authorizer runs with ``allow.everyone.if.no.acl.found=false``: nothing here grants more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from streams.topics import TopicSpec

# User:<name> for SASL, User:CN=...,O=... for TLS client certificates
PRINCIPAL = re.compile(r"User:[A-Za-z0-9_.@=,+ -]{1,200}")
RUNNER_TOPICS = ("control.pauses", "monitor.heartbeat")
RUNNER_ACKS_TOPIC = "control.pause-acks"  # written by runners (their PauseGuard's acks)
RUNNER_TRADES_TOPIC = "exec.trades"  # written by runners: their trade reports
RUNNER_WRITES = (RUNNER_ACKS_TOPIC, RUNNER_TRADES_TOPIC)
COMMANDS_TOPIC = "ops.commands"
# librdkafka names a PauseGuard's (never joined) group like this; a group id is required
# for its coordinator lookups even with assign()
RUNNER_GROUP_PREFIX = "polymon-pause-guard-"

Operation = Literal["READ", "WRITE", "DESCRIBE", "CREATE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"]
ResourceType = Literal["TOPIC", "GROUP", "CLUSTER"]
PatternType = Literal["LITERAL", "PREFIXED"]


class AclPrincipals(BaseModel):
    """Who is who in a deployment's Kafka (POLYMON_ACL_PRINCIPALS, JSON)."""

    model_config = {"extra": "forbid"}
    worker: str = Field(description="the workers' principal, e.g. User:polymon")
    command_writers: list[str] = Field(
        default_factory=list, description="principals besides the worker that may write "
        "ops.commands (a separately deployed API)")
    runners: list[str] = Field(
        default_factory=list, description="trading runners: read pauses and heartbeats, "
        "write their pause acknowledgements and trade reports")
    producers: dict[str, list[str]] = Field(
        default_factory=dict, description="principal -> the input topics it writes")

    @field_validator("worker")
    @classmethod
    def _worker_is_a_principal(cls, value: str) -> str:
        return _principal(value)

    @field_validator("command_writers", "runners")
    @classmethod
    def _are_principals(cls, value: list[str]) -> list[str]:
        return [_principal(v) for v in value]

    @field_validator("producers")
    @classmethod
    def _producers_are_principals(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {_principal(k): v for k, v in value.items()}


def _principal(value: str) -> str:
    if not PRINCIPAL.fullmatch(value):
        raise ValueError(f"not a Kafka principal: {value[:80]!r} (expected User:<name>)")
    return value


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding, host '*'."""

    principal: str
    operation: Operation
    resource_type: ResourceType
    name: str
    pattern: PatternType = "LITERAL"

    def __str__(self) -> str:
        pattern = "" if self.pattern == "LITERAL" else f" ({self.pattern.lower()})"
        return (f"ALLOW {self.principal} {self.operation} {self.resource_type} "
                f"{self.name}{pattern}")


class AclError(ValueError):
    """The principals do not describe a deployment (what is wrong is in the message)."""


def deployment_acls(specs: Mapping[str, TopicSpec], prefix: str, group_id: str,
                    principals: AclPrincipals) -> list[Acl]:
    """Every ALLOW binding of a deployment whose topics are ``specs`` (by default name)
    under ``prefix``, with consumer group ``group_id``."""
    inputs = {name for name, spec in specs.items() if spec.input and name != COMMANDS_TOPIC}
    for principal, topics in principals.producers.items():
        wrong = sorted(set(topics) - inputs)
        if wrong:
            raise AclError(f"producer {principal} is listed for {', '.join(wrong)}, which "
                           f"are not input topics (inputs: {', '.join(sorted(inputs))})")
    missing = [t for t in (*RUNNER_TOPICS, *RUNNER_WRITES) if t not in specs]
    if missing or COMMANDS_TOPIC not in specs:
        raise AclError(f"the topic spec lacks {', '.join([*missing, COMMANDS_TOPIC])}")
    worker = principals.worker
    acls: set[Acl] = set()
    for name in specs:
        topic = prefix + name
        # the worker reads and describes every topic; it writes what it decides and the
        # operator commands of its API, never another service's input
        # DESCRIBE_CONFIGS: the worker checks the topics' cleanup policy before it starts
        acls.update(Acl(worker, op, "TOPIC", topic)
                    for op in ("READ", "DESCRIBE", "DESCRIBE_CONFIGS"))
        if name not in inputs:
            acls.add(Acl(worker, "WRITE", "TOPIC", topic))
    # Faust's changelog, repartition and leader topics: created and used by the workers
    for operation in ("CREATE", "READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"):
        acls.add(Acl(worker, operation, "TOPIC", f"{group_id}-", "PREFIXED"))
    acls.update(Acl(worker, op, "GROUP", group_id) for op in ("READ", "DESCRIBE"))
    for writer in principals.command_writers:
        acls.update(Acl(writer, op, "TOPIC", prefix + COMMANDS_TOPIC)
                    for op in ("WRITE", "DESCRIBE"))
    for principal, topics in principals.producers.items():
        for name in topics:
            acls.update(Acl(principal, op, "TOPIC", prefix + name)
                        for op in ("WRITE", "DESCRIBE"))
    for runner in principals.runners:
        for name in RUNNER_TOPICS:
            acls.update(Acl(runner, op, "TOPIC", prefix + name) for op in ("READ", "DESCRIBE"))
        acls.update(Acl(runner, op, "TOPIC", prefix + name)
                    for name in RUNNER_WRITES for op in ("WRITE", "DESCRIBE"))
        acls.update(Acl(runner, op, "GROUP", RUNNER_GROUP_PREFIX, "PREFIXED")
                    for op in ("READ", "DESCRIBE"))
    return sorted(acls)


def acl_bindings(acls: Iterable[Acl]) -> list[Any]:
    """confluent-kafka AclBindings of ``acls``."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [AclBinding(ResourceType[acl.resource_type],
                       "kafka-cluster" if acl.resource_type == "CLUSTER" else acl.name,
                       ResourcePatternType[acl.pattern], acl.principal, "*",
                       AclOperation[acl.operation], AclPermissionType.ALLOW)
            for acl in acls]


def apply_acls(admin: AdminClient, acls: list[Acl], timeout_s: float = 30.0) -> None:
    """Create every binding (creating an existing one is a no-op); raises on the first
    refusal, naming the binding."""
    bindings = acl_bindings(acls)
    if not bindings:
        return
    futures = admin.create_acls(bindings, request_timeout=timeout_s)
    for acl, binding in zip(acls, bindings, strict=True):
        try:
            futures[binding].result(timeout_s)
        except Exception as exc:
            raise AclError(f"could not create {acl}: {exc}") from exc
