from __future__ import annotations

import re
from pathlib import Path

from streams.topics import SPEC_PATH, load_topic_specs

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"
COMPACTED = {"model.profiles", "control.pauses", "monitor.incidents", "control.rollout",
             "monitor.heartbeat", "control.pause-acks"}


def test_spec_declares_every_topic_with_its_cleanup_policy() -> None:
    specs = load_topic_specs()
    assert {name for name, spec in specs.items() if spec.compacted} == COMPACTED
    assert len(specs) == 18
    for spec in specs.values():
        assert spec.partitions >= 1 and spec.key and spec.schema


def test_spec_matches_the_design_topic_table() -> None:
    table = {
        match[1]: match[2].strip()
        for match in re.finditer(r"^\| ([a-z.-]+) \| [^|]+ \| (\w+) \|", DESIGN.read_text(),
                                 re.MULTILINE)
    }
    table.pop("topic")  # the header row
    public = {name: spec for name, spec in load_topic_specs().items() if not spec.internal}
    assert set(table) == set(public)
    assert all(public[name].cleanup == cleanup for name, cleanup in table.items())


def test_internal_topics_are_documented_in_the_design() -> None:
    design = DESIGN.read_text()
    internal = [spec.name for spec in load_topic_specs().values() if spec.internal]
    assert internal == ["monitor.incident.inputs", "monitor.incident.scopes"]
    assert all(f"`{name}`" in design for name in internal)


def test_input_topics_share_one_partition_count() -> None:
    specs = load_topic_specs()
    counts = {specs[name].partitions for name in (
        "health.events", "exec.fills", "model.scores", "model.features", "ops.commands")}
    assert len(counts) == 1


def test_spec_ships_inside_the_package() -> None:
    assert SPEC_PATH.parent.name == "streams" and SPEC_PATH.exists()
