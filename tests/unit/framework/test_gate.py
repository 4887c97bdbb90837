"""streams.framework.gate: the installed libraries pass; another version, a missing
private attribute or one of another signature is refused with an error naming the
package, the version found and expected, or the attribute; the expected versions are
the deployment lock's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.framework import gate
from streams.framework.gate import FrameworkMismatch, Needed

LOCK = Path(__file__).resolve().parents[3] / "requirements.lock"


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def test_the_expected_versions_are_the_lock_files() -> None:
    locked = _locked()
    assert {package: locked.get(package) for package in gate.EXPECTED_VERSIONS} == (
        gate.EXPECTED_VERSIONS)


def test_the_lock_pins_every_dependency_and_extra_of_the_package() -> None:
    from importlib import metadata

    locked = _locked()
    required = metadata.requires("polymon") or []
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", spec)[0]).lower()
             for spec in required}
    names.discard("polymon")  # an extra naming another extra
    assert names - set(locked) == set()


def test_the_installed_libraries_pass() -> None:
    gate.check()  # the environment the tests run in is the locked one


def test_another_version_is_refused_naming_package_found_and_expected() -> None:
    with pytest.raises(FrameworkMismatch) as refused:
        gate.check({**gate.EXPECTED_VERSIONS, "aiokafka": "0.13.0"})
    found = gate.installed_version("aiokafka")
    assert (f"aiokafka {found} is installed, the framework patches need exactly "
            "aiokafka==0.13.0") in str(refused.value)
    assert "POLYMON_FRAMEWORK_PATCHES=false" in str(refused.value)


def test_a_package_not_installed_is_refused() -> None:
    with pytest.raises(FrameworkMismatch, match="no-such-dist not installed is installed"):
        gate.check({"no-such-dist": "1.0"}, needed=())


def test_a_missing_private_method_is_refused_naming_it() -> None:
    missing = Needed("aiokafka", "aiokafka.consumer.fetcher:PartitionRecords",
                     "_unpack_records_v2", ("self",))
    with pytest.raises(FrameworkMismatch,
                       match=r"aiokafka\.consumer\.fetcher\.PartitionRecords"
                             r"\._unpack_records_v2: missing"):
        gate.check(needed=(missing,))


def test_a_private_method_of_another_signature_is_refused() -> None:
    changed = Needed("faust-streaming", "faust.transport.drivers.aiokafka:Consumer",
                     "_new_offset", ("self", "tp", "generation"))
    with pytest.raises(FrameworkMismatch, match=r"_new_offset: parameters \(self, tp\), "
                                                r"expected \(self, tp, generation\)"):
        gate.check(needed=(changed,))


def test_an_instance_attribute_no_longer_set_is_refused() -> None:
    gone = Needed("faust-streaming", "faust.transport.drivers.aiokafka:Consumer",
                  "_acked_offsets_v2", instance=True)
    assert gate.attribute_problem(gone) == (
        "faust.transport.drivers.aiokafka.Consumer._acked_offsets_v2: not set on its "
        "instances any more")
    kept = Needed("faust-streaming", "faust.transport.drivers.aiokafka:Consumer",
                  "_read_offset", instance=True)
    assert gate.attribute_problem(kept) is None


def test_every_needed_attribute_is_there_as_expected() -> None:
    assert [problem for item in gate.NEEDED
            if (problem := gate.attribute_problem(item))] == []


def test_pydantic_keeps_the_private_fields_written_in_its_slots() -> None:
    slot = Needed("pydantic", "pydantic.main:BaseModel", "__pydantic_fields_set__")
    assert gate.attribute_problem(slot) is None
    other = Needed("pydantic", "pydantic.main:BaseModel", "__pydantic_fields_kept__")
    assert gate.attribute_problem(other) == (
        "pydantic.main.BaseModel.__pydantic_fields_kept__: missing")


def test_the_image_and_dev_install_with_the_lock_and_the_image_checks_the_gate() -> None:
    root = LOCK.parent
    dockerfile = re.sub(r"\\\n\s*", " ", (root / "Dockerfile").read_text())
    assert re.search(r"^COPY .*\brequirements\.lock\b", dockerfile, re.MULTILINE)
    assert re.search(r"pip install [^&]*-c requirements\.lock \.(\s|$)", dockerfile)
    assert "from streams.framework import gate; gate.check()" in dockerfile
    dev = re.sub(r"\\\n\s*", " ", (root / "dev").read_text())
    assert re.search(r"pip install [^\n]*-c requirements\.lock -e '\.\[dev\]'", dev)


def _closure(root: str, extras: set[str]) -> set[str]:
    """Every distribution ``root`` with ``extras`` needs, itself excluded, transitively."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    needed: set[str] = set()
    pending = [(root, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            marker = requirement.marker
            if marker is not None and not any(
                    marker.evaluate({"extra": extra}) for extra in [*wanted, ""]):
                continue
            dependency = norm(requirement.name)
            if dependency != norm(root):
                needed.add(dependency)
            pending.append((requirement.name, frozenset(requirement.extras)))
    return needed


def test_the_lock_holds_nothing_the_package_does_not_need() -> None:
    assert set(_locked()) - _closure("polymon", {"dev", "embedded", "runner"}) == set()
