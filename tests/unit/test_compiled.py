"""The native parts: a build of other sources is refused at start-up, saying what to do;
POLYMON_NO_EXTENSIONS turns every native part off, in favour of its pure twin."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams import compiled

MODULE = "streams.control.due"
SUFFIX = compiled.EXTENSION_SUFFIXES[0]


def _tree(tmp_path: Path, built: dict[str, str | None], text: str = "VALUE = 1\n") -> Path:
    """A stand-in streams directory: MODULE's source and a build of it, and a manifest."""
    source = compiled.source_of(MODULE, tmp_path)
    source.parent.mkdir(parents=True)
    source.write_text(text)
    source.with_name(source.stem + SUFFIX).write_bytes(b"a build")
    (tmp_path / compiled.MANIFEST).write_text(json.dumps(built))
    return source


def test_a_build_of_the_current_source_is_not_stale(tmp_path: Path) -> None:
    source = _tree(tmp_path, {})
    (tmp_path / compiled.MANIFEST).write_text(json.dumps({MODULE: compiled.digest(source)}))
    assert compiled.stale(tmp_path) == []


@pytest.mark.parametrize("built", [{MODULE: "0" * 64}, {MODULE: None}, {}],
                         ids=["built-from-another-source", "build-failed", "not-listed"])
def test_a_build_of_another_source_or_unlisted_is_stale(
        tmp_path: Path, built: dict[str, str | None]) -> None:
    _tree(tmp_path, built)
    assert compiled.stale(tmp_path) == [MODULE]


def test_a_c_extension_is_checked_against_all_of_its_sources(tmp_path: Path) -> None:
    for path in compiled.EXTENSIONS["streams._batches"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f"/* {path} */\n")
    (tmp_path / f"_batches{SUFFIX}").write_bytes(b"a build")
    sources = compiled.sources_of("streams._batches", tmp_path)
    (tmp_path / compiled.MANIFEST).write_text(
        json.dumps({"streams._batches": compiled.digest(*sources)}))
    assert compiled.stale(tmp_path) == []
    (tmp_path / "_native" / "reader.h").write_text("/* edited */\n")  # the shared header
    assert compiled.stale(tmp_path) == ["streams._batches"]


def test_a_build_without_its_source_is_left_alone(tmp_path: Path) -> None:
    """An installed tree without sources: nothing to compare with."""
    (tmp_path / f"clock{SUFFIX}").write_bytes(b"a build")
    assert compiled.stale(tmp_path) == []


def test_remove_stale_deletes_only_the_stale_builds(tmp_path: Path) -> None:
    source = _tree(tmp_path, {})
    current = tmp_path / "clock.py"
    current.write_text("NOW = 0\n")
    (tmp_path / f"clock{SUFFIX}").write_bytes(b"a build")
    (tmp_path / compiled.MANIFEST).write_text(
        json.dumps({"streams.clock": compiled.digest(current)}))
    assert compiled.remove_stale(tmp_path) == [MODULE]
    assert not source.with_name(source.stem + SUFFIX).exists()
    assert (tmp_path / f"clock{SUFFIX}").exists()


def test_install_refuses_a_stale_build_and_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, {MODULE: "0" * 64})
    monkeypatch.setattr(compiled, "ROOT", tmp_path)
    monkeypatch.setattr(compiled, "_installed", False)
    monkeypatch.setattr(compiled, "NO_EXTENSIONS", False)
    with pytest.raises(compiled.StaleBuildError) as raised:
        compiled.install()
    message = str(raised.value)
    assert MODULE in message and "./dev" in message and "pip install -e ." in message
    assert "POLYMON_NO_EXTENSIONS=1" in message


def test_the_manifest_is_read_as_written_and_a_broken_one_as_empty(tmp_path: Path) -> None:
    (tmp_path / compiled.MANIFEST).write_text(json.dumps({MODULE: "ab", "x": None}))
    assert compiled.read_manifest(tmp_path) == {MODULE: "ab", "x": None}
    (tmp_path / compiled.MANIFEST).write_text("{not json")
    assert compiled.read_manifest(tmp_path) == {}
    assert compiled.read_manifest(tmp_path / "absent") == {}


def test_every_listed_part_has_its_sources() -> None:
    for name in [*compiled.EXTENSIONS, *compiled.MODULES]:
        for path in compiled.sources_of(name):
            assert path.is_file(), (name, path)


def test_no_import_hook_is_left_unless_the_switch_is_on() -> None:
    finders = [f for f in sys.meta_path if isinstance(f, compiled._SourceFinder)]
    assert len(finders) == (1 if compiled.NO_EXTENSIONS else 0)


@pytest.mark.skipif(compiled.NO_EXTENSIONS, reason="POLYMON_NO_EXTENSIONS is set")
def test_this_install_runs_every_native_part_when_it_was_built() -> None:
    """After ./dev (pip install -e .) with Cython and a C compiler, as on this machine
    and in CI, every native part runs native and current."""
    built = compiled.read_manifest()
    if not any(built.values()):
        pytest.skip("nothing native is built in this install (no Cython or compiler)")
    assert compiled.stale() == []
    for name in compiled.MODULES:
        importlib.import_module(name)
    running = compiled.status()
    assert running == dict.fromkeys([*compiled.MODULES, *compiled.EXTENSIONS], True), \
        compiled.describe()


# What a process reports of its native parts, with every one of them imported.
_REPORT = """
import json
from streams import compiled
compiled.install()
import importlib
for name in compiled.MODULES:
    importlib.import_module(name)
from streams import assembly, avrodecode, codec
from streams.framework import record_unpacking
print(json.dumps({
    "status": compiled.status(),
    "describe": compiled.describe(),
    "avro": avrodecode.extension is not None,
    "assemble_in_python": assembly._assemble is assembly._assemble_in_python,
    "health_program": codec.Codecs(codec.SchemaCatalog())["HealthEvent"]._program is not None,
    "read_batches": record_unpacking._read_batches is not None,
}))
"""


@pytest.mark.parametrize("switch", ["1", "0"])
def test_the_switch_turns_every_native_part_off(switch: str) -> None:
    """A process started with POLYMON_NO_EXTENSIONS=1 runs every pure twin: the compiled
    modules from their .py, fastavro and pydantic for Avro, aiokafka for batches."""
    if switch == "0" and compiled.stale():  # (only with the switch on here: else no run)
        pytest.skip("a build of other sources: the start-up check refuses it (tested above)")
    env = {**os.environ, compiled.SWITCH: switch}
    done = subprocess.run([sys.executable, "-c", _REPORT], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    if switch == "1":
        assert not any(report["status"].values()), report
        assert set(report["status"]) == {*compiled.MODULES, *compiled.EXTENSIONS}
        assert report == report | {"avro": False, "assemble_in_python": True,
                                   "health_program": False, "read_batches": False}
        assert "POLYMON_NO_EXTENSIONS is set" in report["describe"]
    elif any(compiled.read_manifest().values()):  # a native build: all of it in use
        assert all(report["status"].values()), report
        assert report == report | {"avro": True, "assemble_in_python": False,
                                   "health_program": True, "read_batches": True}
