"""streams.framework.install: one call puts every patch in (idempotent), refuses to start
on a library it was not written for before changing anything, and with
POLYMON_FRAMEWORK_PATCHES=false leaves every library as shipped while the same handlers
are still fed (through Faust agents, a record at a time). Each case runs in a process of
its own: the patches are process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_STATE = """
import inspect
from aiokafka.consumer.fetcher import Fetcher, FetchResult, PartitionRecords
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from streams import assembly, framework
from streams.framework import pydantic_fields, record_unpacking

def state():
    return {
        "unpacking": PartitionRecords._unpack_records is record_unpacking.unpack_records,
        "getall": FetchResult.getall is record_unpacking.getall,
        "idle_backoff": hasattr(Fetcher._proc_fetch_request, "idle_backoff"),
        "rejoin": hasattr(CoordinatorGroupRebalance.perform_group_join, "rejoins_on_empty"),
        "validated": assembly._assemble is pydantic_fields.assemble_validated,
    }
"""

_ON = _STATE + """
import streams.app
first = state()
from streams.settings import get_settings
assert framework.install(get_settings()) is True  # again: nothing changes
assert state() == first, (state(), first)
assert type(streams.app.app).__name__ == "BatchingApp"
import streams.agents
from streams import delivery
# no agents: the batching consumer reads the input topics and hands them over
assert not streams.app.app.agents, list(streams.app.app.agents)
subscribed = {name for topic in streams.app.app.topics for name in topic.topics}
assert delivery.batch_handlers and set(delivery.batch_handlers) <= subscribed
try:
    framework.install(get_settings().model_copy(update={"framework_patches": False}))
except RuntimeError as exc:
    assert "cannot be switched at run time" in str(exc)
else:
    raise AssertionError("switched off after install")
print(sorted(key for key, on in first.items() if on))
"""

_OFF = _STATE + """
stock = {
    "unpack": PartitionRecords._unpack_records, "getall": FetchResult.getall,
    "fetch": Fetcher._proc_fetch_request, "join": CoordinatorGroupRebalance.perform_group_join,
}
import faust
import streams.app
import streams.agents
from streams import delivery
from streams.framework import clients
assert (PartitionRecords._unpack_records, FetchResult.getall, Fetcher._proc_fetch_request,
        CoordinatorGroupRebalance.perform_group_join) == tuple(stock.values())
assert type(streams.app.app) is faust.App
# every input topic is fed to its handler by a Faust agent of its own
agents = {name.removeprefix("polymon.deliver.") for name in streams.app.app.agents}
assert agents == set(delivery.batch_handlers), (agents, set(delivery.batch_handlers))
assert clients.aiokafka_producer(streams.app.app) is None
from streams import avrodecode, records
if avrodecode.extension is not None:  # every record reads through pydantic's hook again
    assert not any(avrodecode.extension.has_plain_getattr(cls)
                   for cls in vars(records).values()
                   if isinstance(cls, type) and issubclass(cls, records.Record))
assert clients.group_member_id(streams.app.app) == ""
print(sorted(key for key, on in state().items() if on))
"""

_REFUSED = _STATE + """
from streams.framework import gate
gate.EXPECTED_VERSIONS["faust-streaming"] = "0.15.2"
try:
    import streams.app
except gate.FrameworkMismatch as exc:
    print(str(exc).splitlines()[1].strip())
    print(sorted(key for key, on in state().items() if on))
else:
    raise AssertionError("started on another faust-streaming")
"""


def _run(code: str, **env: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        check=False, env={**{k: v for k, v in os.environ.items()  # the native parts' switch
                             if not k.startswith("POLYMON_") or k == "POLYMON_NO_EXTENSIONS"},
                          **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


@pytest.mark.parametrize("engine", ["kafka", "embedded"])
def test_install_puts_every_patch_in_once(engine: str) -> None:
    installed = _run(_ON, POLYMON_BROKER_ENGINE=engine)
    expected = ["getall", "unpacking"] + (["idle_backoff", "rejoin"] if engine == "embedded"
                                          else [])
    assert installed == [str(sorted(expected))]


def test_switched_off_every_library_stays_as_shipped_and_agents_feed_the_handlers() -> None:
    # the embedded broker's workarounds would be in otherwise
    assert _run(_OFF, POLYMON_FRAMEWORK_PATCHES="false", POLYMON_BROKER_ENGINE="embedded") == [
        "['validated']"]


def test_another_version_is_refused_before_anything_is_patched() -> None:
    assert _run(_REFUSED, POLYMON_BROKER_ENGINE="embedded") == [
        "- faust-streaming 0.15.3 is installed, the framework patches need exactly "
        "faust-streaming==0.15.2", "[]"]


def test_the_worker_command_refuses_to_start_with_the_error() -> None:
    code = ("from streams.framework import gate\n"
            "gate.EXPECTED_VERSIONS['pydantic'] = '2.99.0'\n"
            "from streams.cli import main\nmain()\n")
    done = subprocess.run(
        [sys.executable, "-c", code, "worker"], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, "POLYMON_KAFKA_BOOTSTRAP": "127.0.0.1:9",
                          "COLUMNS": "200"})
    assert done.returncode != 0
    assert "pydantic==2.99.0" in done.stderr and "is installed" in done.stderr, done.stderr
    assert "cannot reach Kafka" not in done.stderr  # refused before connecting
