"""The versions and private attributes the patches were written against, checked before
any is installed: a worker on another release of faust-streaming, mode-streaming,
aiokafka or pydantic refuses to start, naming the package, the version found and the
one expected, rather than run a patch against code it was not written for.

The expected versions are the deployment lock's (requirements.lock; a unit test keeps
the two equal). Attributes are checked by existence and, for methods, by their
parameter names; attributes a library sets on its instances by the assignment in its
class's source (an instance is not at hand before the app starts).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from importlib import metadata

# distribution -> exact version the patches follow
EXPECTED_VERSIONS = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.0",
    "pydantic": "2.14.4",
}


class FrameworkMismatch(RuntimeError):
    """The installed libraries are not those the framework patches were written for."""


@dataclass(frozen=True)
class Needed:
    """One private attribute a patch relies on: ``owner`` (module:qualname) has
    ``attribute``; a method with ``parameters`` (names, self included), or one its
    instances are given (``instance``: assigned as ``self.<attribute>`` in the source of
    the owner or a base class from the same package)."""

    package: str  # the distribution that owns it
    owner: str
    attribute: str
    parameters: tuple[str, ...] | None = None
    instance: bool = False

    def __str__(self) -> str:
        return f"{self.owner.replace(':', '.')}.{self.attribute}"


_FAUST_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_PARTITION_RECORDS = "aiokafka.consumer.fetcher:PartitionRecords"
_FETCH_RESULT = "aiokafka.consumer.fetcher:FetchResult"

NEEDED: tuple[Needed, ...] = (
    # batch_consumer: Faust's consumer, its hand-off replaced
    Needed("faust-streaming", _FAUST_CONSUMER, "_drain_messages", ("self", "fetcher")),
    Needed("faust-streaming", _FAUST_CONSUMER, "_new_offset", ("self", "tp")),
    Needed("faust-streaming", _FAUST_CONSUMER, "_wait_next_records", ("self", "timeout")),
    Needed("faust-streaming", _FAUST_CONSUMER, "_add_gap",
           ("self", "tp", "offset_from", "offset_to")),
    Needed("faust-streaming", _FAUST_CONSUMER, "_to_message", ("self", "tp", "record")),
    *(Needed("faust-streaming", _FAUST_CONSUMER, name, instance=True) for name in (
        "_read_offset", "_buffered_partitions", "_committed_offset", "_acked_index",
        "_acked", "_n_acked", "_waiting_for_ack", "_gap", "_commit_every")),
    Needed("mode-streaming", "mode.services:Service", "_stopped", instance=True),
    Needed("faust-streaming", "faust.app.base:App", "_new_transport", ("self",)),
    # record_unpacking: aiokafka's unpacking of a fetched partition
    Needed("aiokafka", _PARTITION_RECORDS, "_unpack_records", ("self",)),
    Needed("aiokafka", _PARTITION_RECORDS, "__init__", (
        "self", "tp", "records", "aborted_transactions", "fetch_offset", "key_deserializer",
        "value_deserializer", "check_crcs", "isolation_level")),
    Needed("aiokafka", _PARTITION_RECORDS, "_consume_aborted_up_to", ("self", "batch_offset")),
    Needed("aiokafka", _PARTITION_RECORDS, "_contains_abort_marker", ("self", "next_batch")),
    *(Needed("aiokafka", _PARTITION_RECORDS, name, instance=True) for name in (
        "_records", "_tp", "_key_deserializer", "_value_deserializer", "_isolation_level",
        "_check_crcs", "_aborted_producers", "_records_iterator")),
    Needed("aiokafka", _FETCH_RESULT, "getall", ("self", "max_records")),
    Needed("aiokafka", _FETCH_RESULT, "_update_position", ("self",)),
    *(Needed("aiokafka", _FETCH_RESULT, name, instance=True)
      for name in ("_topic_partition", "_partition_records")),
    Needed("aiokafka", "aiokafka.consumer.fetcher", "MemoryRecords"),
    # embedded_broker: the fetcher's request and the group join
    Needed("aiokafka", "aiokafka.consumer.fetcher:Fetcher", "_proc_fetch_request",
           ("self", "assignment", "node_id", "request")),
    Needed("aiokafka", "aiokafka.consumer.fetcher:Fetcher", "_records", instance=True),
    Needed("aiokafka", "aiokafka.consumer.group_coordinator:CoordinatorGroupRebalance",
           "perform_group_join", ("self",)),
    # producer: Faust's producer, idempotent
    Needed("faust-streaming", "faust.transport.drivers.aiokafka:Producer",
           "_settings_extra", ("self",)),
    Needed("faust-streaming", "faust.transport.drivers.aiokafka:Transport", "Producer"),
    # clients: the aiokafka producer and consumer under Faust's
    Needed("faust-streaming", "faust.transport.drivers.aiokafka:Producer",
           "_ensure_producer", ("self",)),
    Needed("faust-streaming", "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
           "_ensure_consumer", ("self",)),
    Needed("faust-streaming", "faust.transport.consumer:ThreadDelegateConsumer", "_thread",
           instance=True),
    Needed("aiokafka", "aiokafka.consumer.consumer:AIOKafkaConsumer", "_coordinator",
           instance=True),
    # pydantic_fields: a model's instance fields written without validation
    *(Needed("pydantic", "pydantic.main:BaseModel", name) for name in (
        "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")),
    # ... and the attribute hook record classes skip
    Needed("pydantic", "pydantic.main:BaseModel", "__getattr__", ("self", "item")),
)


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def version_problems(expected: dict[str, str] | None = None) -> list[str]:
    """One line per package whose installed version is not the expected one."""
    problems = []
    for package, wanted in (expected or EXPECTED_VERSIONS).items():
        found = installed_version(package)
        if found != wanted:
            problems.append(f"{package} {found or 'not installed'} is installed, the "
                            f"framework patches need exactly {package}=={wanted}")
    return problems


def _resolve(owner: str) -> object:
    module_name, _, qualname = owner.partition(":")
    target: object = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        target = getattr(target, part)
    return target


def _assigned_on_instances(cls: type, attribute: str, package_root: str) -> bool:
    pattern = re.compile(rf"\bself\.{re.escape(attribute)}\s*(:[^=\n]*)?=[^=]")
    for klass in cls.__mro__:
        if not klass.__module__.startswith(package_root):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if pattern.search(source):
            return True
    return False


def attribute_problem(needed: Needed) -> str | None:
    """Why ``needed`` is not as the patches expect, or None."""
    try:
        owner = _resolve(needed.owner)
    except (ImportError, AttributeError) as exc:
        return f"{needed}: {needed.owner} cannot be imported ({exc})"
    if needed.instance:
        root = needed.owner.partition(":")[0].split(".")[0]
        if not isinstance(owner, type) or not _assigned_on_instances(
                owner, needed.attribute, root):
            return f"{needed}: not set on its instances any more"
        return None
    if isinstance(owner, type) and needed.attribute.startswith("__pydantic"):
        present = needed.attribute in getattr(owner, "__slots__", ())
    else:
        present = hasattr(owner, needed.attribute)
    if not present:
        return f"{needed}: missing"
    if needed.parameters is not None:
        try:
            found = tuple(inspect.signature(getattr(owner, needed.attribute)).parameters)
        except (TypeError, ValueError):
            return f"{needed}: no signature to check"
        if found != needed.parameters:
            return (f"{needed}: parameters ({', '.join(found)}), expected "
                    f"({', '.join(needed.parameters)})")
    return None


def check(expected: dict[str, str] | None = None,
          needed: tuple[Needed, ...] = NEEDED) -> None:
    """Raise :class:`FrameworkMismatch` naming every package of another version and every
    attribute not as expected."""
    problems = version_problems(expected)
    problems += [f"{item.package}: {problem}" for item in needed
                 if (problem := attribute_problem(item)) is not None]
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise FrameworkMismatch(
            "polymon's framework patches do not fit the installed libraries:\n"
            f"{lines}\ninstall the versions of requirements.lock (pip install -c "
            "requirements.lock .), or start with POLYMON_FRAMEWORK_PATCHES=false to run "
            "the libraries' own paths (slower)")
