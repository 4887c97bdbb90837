from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.acls import Acl, AclError, AclPrincipals, deployment_acls
from streams.topics import load_topic_specs

SPECS = load_topic_specs()
PRINCIPALS = AclPrincipals(worker="User:polymon", runners=["User:runner"],
                           command_writers=["User:api"],
                           producers={"User:feeds": ["health.events", "exec.fills"]})


def acls_of(principal: str, acls: list[Acl]) -> set[tuple[str, str, str]]:
    return {(a.operation, a.resource_type, a.name) for a in acls if a.principal == principal}


def test_only_the_worker_writes_the_decision_topics() -> None:
    acls = deployment_acls(SPECS, "p.", "p.polymon", PRINCIPALS)
    decisions = ("control.pauses", "monitor.heartbeat", "monitor.alerts", "monitor.incidents",
                 "audit.log", "control.rollout", "monitor.deadletter")
    for name in decisions:
        writers = {a.principal for a in acls if a.operation == "WRITE" and a.name == "p." + name}
        assert writers == {"User:polymon"}, name
    ops = {a.principal for a in acls if a.operation == "WRITE" and a.name == "p.ops.commands"}
    assert ops == {"User:polymon", "User:api"}


def test_runners_read_pauses_and_heartbeats_and_write_only_their_acks_and_trades() -> None:
    acls = deployment_acls(SPECS, "", "polymon", PRINCIPALS)
    runner = acls_of("User:runner", acls)
    topics = {(op, name) for op, kind, name in runner if kind == "TOPIC"}
    writes = ("control.pause-acks", "exec.trades")
    assert topics == {(op, name) for op in ("READ", "DESCRIBE")
                      for name in ("control.pauses", "monitor.heartbeat")} | {
        (op, name) for op in ("WRITE", "DESCRIBE") for name in writes}
    assert {name for op, _, name in runner if op == "WRITE"} == set(writes)
    # inputs: the worker reads the acks and the trades and never writes them (it copies
    # the trades to audit.log, which it alone writes)
    for name in writes:
        writers = {a.principal for a in acls if a.operation == "WRITE" and a.name == name}
        assert writers == {"User:runner"}, name


def test_producers_write_only_their_inputs_and_the_worker_no_input() -> None:
    acls = deployment_acls(SPECS, "", "polymon", PRINCIPALS)
    feeds = {(op, name) for op, _, name in acls_of("User:feeds", acls)}
    assert feeds == {(op, name) for op in ("WRITE", "DESCRIBE")
                     for name in ("health.events", "exec.fills")}
    worker_writes = {name for op, _, name in acls_of("User:polymon", acls) if op == "WRITE"}
    assert "health.events" not in worker_writes and "exec.fills" not in worker_writes
    # Faust's changelogs and leader topic, under the group's prefix
    assert Acl("User:polymon", "CREATE", "TOPIC", "polymon-", "PREFIXED") in acls


def test_a_producer_listed_for_an_output_topic_is_refused() -> None:
    wrong = AclPrincipals(worker="User:w", producers={"User:feeds": ["control.pauses"]})
    with pytest.raises(AclError, match=r"control\.pauses.*not input topics"):
        deployment_acls(SPECS, "", "polymon", wrong)


@pytest.mark.parametrize("principal", ["polymon", "User:", "Group:x", "User:a\nALLOW"])
def test_principals_are_checked(principal: str) -> None:
    with pytest.raises(ValidationError, match="not a Kafka principal"):
        AclPrincipals(worker=principal)
