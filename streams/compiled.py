"""polymon's native parts, the switch that turns them all off, and the start-up check
that a build is of the current source.

Native parts, each with a pure twin that does the same job:

- ``streams._avro`` (streams/_native/avro.c): Avro frames decoded and encoded, input
  records assembled; twin: fastavro and pydantic (streams/avrodecode.py loads it).
- ``streams._batches`` (streams/_native/batches.c): fetched Kafka record batches read
  into records; twin: aiokafka's own reading (streams/framework/record_unpacking.py
  loads it).
- The hot path's modules (:data:`MODULES`), compiled from their .py by Cython (plain
  Python semantics); twin: the .py itself.

``POLYMON_NO_EXTENSIONS=1`` (at install: nothing native is built; at run time: nothing
native is used) turns every one of them off, as aiokafka's ``NO_EXTENSIONS`` and Faust's
``NO_CYTHON`` do. A part that is not built (no compiler, no Cython) runs as its twin too.

The build writes ``_compiled.json`` next to the modules (setup.py): each native part's
source digest, or null for one whose build failed. :func:`install`, called once where a
process starts (the command line, the Faust app, the agents' and control packages, the
tests), compares those digests with the sources, once, and refuses to go on with a build
of other sources (``./dev`` rebuilds whenever they change): a stale build would run code
that is no longer in the tree. Nothing is checked per import, and a process that never
calls it (a trading runner embedding streams.runner) keeps its import system as it was.

Stdlib only: setup.py and ./dev load this file to know what to build, before polymon's
dependencies are installed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from pathlib import Path
from types import ModuleType

SWITCH = "POLYMON_NO_EXTENSIONS"
# Read here, before anything native can be imported (the Settings model documents it and
# rejects a value that is no boolean at a worker's start): any value but these turns the
# native parts off, as any value of aiokafka's NO_EXTENSIONS does.
_OFF = ("", "0", "false", "f", "no", "n", "off")
NO_EXTENSIONS = os.environ.get(SWITCH, "").strip().lower() not in _OFF

# The C extensions, each with the sources its build is made of (under the package).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "streams._avro": ("_native/avro.c", "_native/reader.h"),
    "streams._batches": ("_native/batches.c", "_native/reader.h"),
}
# Each input event runs through these: compiled, they run the handlers measurably faster
# (docs/benchmarks.md, micro-benchmarks).
MODULES = (
    "streams.agents.canary",
    "streams.agents.decoding",
    "streams.agents.drift",
    "streams.agents.execution",
    "streams.agents.health",
    "streams.agents.latches",
    "streams.agents.outputs",
    "streams.clock",
    "streams.codec",
    "streams.framework.batch_consumer",
    "streams.framework.record_unpacking",
    "streams.control.canary",
    "streams.control.due",
    "streams.control.execution",
    "streams.control.health",
    "streams.control.keying",
    "streams.agents.ticks",
    "streams.assembly",
)
MANIFEST = "_compiled.json"
ROOT = Path(__file__).resolve().parent  # the streams package


class StaleBuildError(RuntimeError):
    """A native part built from sources other than the tree's."""


def source_of(module: str, root: Path = ROOT) -> Path:
    """The .py of ``module`` (streams.x.y) under the package directory ``root``."""
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def sources_of(name: str, root: Path = ROOT) -> list[Path]:
    """What the build of the native part ``name`` is made of."""
    if name in EXTENSIONS:
        return [root / path for path in EXTENSIONS[name]]
    return [source_of(name, root)]


def digest(*paths: Path) -> str:
    hashed = hashlib.sha256()
    for path in paths:
        hashed.update(path.read_bytes())
    return hashed.hexdigest()


def read_manifest(root: Path = ROOT) -> dict[str, str | None]:
    try:
        built = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return built if isinstance(built, dict) else {}


def _builds(root: Path) -> dict[str, list[Path]]:
    """The modules with a compiled build under ``root``, and their build files."""
    found: dict[str, list[Path]] = {}
    for suffix in EXTENSION_SUFFIXES:
        for path in root.rglob(f"*{suffix}"):
            parts = path.relative_to(root).with_name(path.name.removesuffix(suffix)).parts
            found.setdefault(".".join(("streams", *parts)), []).append(path)
    return found


def stale(root: Path = ROOT) -> list[str]:
    """The native parts whose build is not of the current source, and builds the manifest
    does not name as built (a module once compiled and since dropped from the list). Only
    where the sources are (a checkout or an installed tree): a build is checked against
    the files next to it."""
    built = read_manifest(root)
    found = []
    for name in sorted(_builds(root)):
        sources = sources_of(name, root)
        if not all(path.is_file() for path in sources):
            continue  # no source to compare with
        if built.get(name) != digest(*sources):
            found.append(name)
    return found


def remove_stale(root: Path = ROOT) -> list[str]:
    """Delete the builds :func:`stale` finds (``./dev`` does, after building): their
    modules then run from source. Returns their names."""
    builds = _builds(root)
    names = stale(root)
    for name in names:
        for path in builds[name]:
            path.unlink(missing_ok=True)
    return names


class _SourceFinder(MetaPathFinder):
    """With the switch on: the .py of each compiled module, not its build (Python's own
    finders prefer an extension module to a .py of the same name)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname, self.root))


_installed = False


def install() -> None:
    """Ready this process's native parts, once (idempotent): with the switch on, the
    compiled modules' sources are loaded instead of their builds; else a build of other
    sources stops the process with what to do about it."""
    global _installed
    if _installed:
        return
    if NO_EXTENSIONS:
        sys.meta_path.insert(0, _SourceFinder())
    else:
        out_of_date = stale(ROOT)
        if out_of_date:
            raise StaleBuildError(
                f"polymon's native parts were built from other sources than these: "
                f"{', '.join(out_of_date)}. Rebuild them (./dev does whenever the sources "
                f"change; or pip install -e .), or run without them: {SWITCH}=1")
    _installed = True


def extension(name: str) -> ModuleType | None:
    """The C extension ``name`` (streams._avro, streams._batches), or None when the switch
    is on or it is not built: its caller uses the pure twin."""
    if NO_EXTENSIONS:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def load(name: str, root: Path = ROOT) -> ModuleType:
    """Import the compiled module ``name`` where :func:`install` may not have run (the
    runner reaches streams.assembly through streams.records): its source with the switch
    on, else as Python imports it."""
    if not NO_EXTENSIONS or name in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, source_of(name, root))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: a module importing it back finds it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)
    return module


def status() -> dict[str, bool]:
    """Native part -> whether it runs native (the compiled modules of those imported so
    far, and both C extensions)."""
    running = {name: not str(getattr(sys.modules[name], "__file__", "")).endswith(".py")
               for name in MODULES if name in sys.modules}
    for name in EXTENSIONS:
        running[name] = extension(name) is not None
    return running


def describe() -> str:
    """One line for the worker's log: which native parts run, and why not."""
    running = status()
    modules = [running[name] for name in MODULES if name in running]
    line = (f"{sum(modules)}/{len(modules)} hot-path modules compiled; C extensions: "
            + ", ".join(f"{name} {'on' if running[name] else 'off'}" for name in EXTENSIONS))
    if NO_EXTENSIONS:
        line += f" ({SWITCH} is set: pure Python, slower)"
    elif not all(running.values()):
        line += " (the rest not built: no Cython or C compiler at install; pure Python, slower)"
    return line

