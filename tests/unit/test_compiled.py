"""The hot path's compiled modules: a build is used only for the source it was built
from; an edited module runs from its source."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from streams import compiled

MODULE = "streams.control.due"


def _package(tmp_path: Path, text: str = "VALUE = 1\n") -> Path:
    """A stand-in streams directory holding MODULE's source."""
    source = compiled.source_of(MODULE, tmp_path)
    source.parent.mkdir(parents=True)
    source.write_text(text)
    return source


def test_a_module_built_from_its_current_source_is_left_to_pythons_finders(
        tmp_path: Path) -> None:
    source = _package(tmp_path)
    finder = compiled.StaleBuildFinder({MODULE: compiled.digest(source)}, tmp_path)
    assert finder.find_spec(MODULE) is None
    assert finder.stale == []


@pytest.mark.parametrize("built", [{MODULE: "0" * 64}, {MODULE: None}, {}],
                         ids=["built-from-another-source", "build-failed", "never-built"])
def test_a_module_edited_since_its_build_is_loaded_from_its_source(
        tmp_path: Path, built: dict[str, str | None]) -> None:
    source = _package(tmp_path, "VALUE = 2\n")
    finder = compiled.StaleBuildFinder(built, tmp_path)
    spec = finder.find_spec(MODULE)
    assert spec is not None and spec.origin == str(source)
    assert finder.stale == [MODULE]
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    assert module.VALUE == 2


def test_a_module_compiled_once_and_listed_no_more_is_loaded_from_its_source(
        tmp_path: Path) -> None:
    """Its build may still lie next to it: only the manifest's digest lets a build run."""
    source = tmp_path / "settings.py"
    source.write_text("VALUE = 3\n")
    finder = compiled.StaleBuildFinder({MODULE: None}, tmp_path)
    spec = finder.find_spec("streams.settings")
    assert spec is not None and spec.origin == str(source)
    assert finder.stale == []  # not one of the hot path's: nothing to warn about


def test_packages_c_modules_and_installs_without_sources_are_left_alone(
        tmp_path: Path) -> None:
    finder = compiled.StaleBuildFinder({}, tmp_path)
    assert finder.find_spec(MODULE) is None  # no source here: an installed build is it
    (tmp_path / "agents").mkdir()
    assert finder.find_spec("streams.agents") is None  # a package
    assert finder.find_spec("streams._avrodecode") is None  # C, checked by avrodecode
    assert finder.find_spec("json") is None  # not polymon's


def test_the_manifest_is_read_as_written_and_a_broken_one_as_empty(tmp_path: Path) -> None:
    (tmp_path / compiled.MANIFEST).write_text(json.dumps({MODULE: "ab", "x": None}))
    assert compiled.read_manifest(tmp_path) == {MODULE: "ab", "x": None}
    (tmp_path / compiled.MANIFEST).write_text("{not json")
    assert compiled.read_manifest(tmp_path) == {}
    assert compiled.read_manifest(tmp_path / "absent") == {}


def test_load_passes_over_a_stale_build_and_leaves_no_finder_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a process without the guard installed (the runner client's) loads of the hot
    path goes through the same check."""
    import streams

    name = "streams.stale_probe"
    source = compiled.source_of(name, tmp_path)
    source.write_text("VALUE = 4\n")
    (tmp_path / compiled.MANIFEST).write_text(json.dumps({name: "0" * 64}))
    monkeypatch.setattr(compiled, "_finder", None)
    finders = list(sys.meta_path)
    try:
        module = compiled.load(name, tmp_path)
        assert module.VALUE == 4 and module.__file__ == str(source)
        assert sys.modules[name] is module and vars(streams)["stale_probe"] is module
        assert sys.meta_path == finders
    finally:
        sys.modules.pop(name, None)
        vars(streams).pop("stale_probe", None)


def test_every_listed_module_exists_and_the_guard_is_installed() -> None:
    for name in compiled.MODULES:
        assert compiled.source_of(name).is_file(), name
    assert any(isinstance(finder, compiled.StaleBuildFinder) for finder in sys.meta_path)


def test_this_install_runs_the_hot_path_compiled_when_it_was_built() -> None:
    """After ./dev (pip install -e .) with Cython and a C compiler, as on this machine
    kind and in CI, every hot-path module runs compiled and current."""
    built = compiled.read_manifest()
    if not any(built.values()):
        pytest.skip("the hot path is not compiled in this install (no Cython or compiler)")
    for name in compiled.MODULES:
        importlib.import_module(name)
    running = compiled.status()
    assert running == dict.fromkeys(compiled.MODULES, True), compiled.describe()
    assert compiled.describe() == f"{len(compiled.MODULES)}/{len(compiled.MODULES)} " \
        "hot-path modules compiled"
