"""The hot path's modules, compiled with Cython when the package is built (setup.py),
and the guard that keeps a stale build from being used.

The .py files stay the source: Cython compiles them as they are (plain Python
semantics, annotations not used as C types), and each runs as pure Python when it is
not built (no compiler, no Cython) or when its build is not of the current source. The
build writes ``_compiled.json`` next to the modules: each module's source digest, or
null for one whose compilation failed. :func:`install` puts a finder in front of
Python's own, which loads the ``.py`` of any streams module whose current source does
not have the digest the manifest gives it (modules it does not name included), so an
edited module is never shadowed by the build of its older version (``./dev`` rebuilds).

It is installed where a process can first reach the hot path: the command line
(streams.cli), the Faust app (streams.app), the packages streams.agents and
streams.control, ops/bench_handlers.py and the tests (tests/__init__.py); not when
``streams`` is imported, so a trading runner that embeds streams.runner keeps its import
system as it was. What the runner reaches of the hot path (streams.records loads
streams.assembly) goes through :func:`load`, the same check without a finder left behind.

Stdlib only: setup.py loads this file to know what to compile, before polymon's
dependencies are installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# Each input event runs through these (compiled, the handlers run about 12 % fewer
# instructions per event: README "Benchmark").
MODULES = (
    "streams.agents.canary",
    "streams.agents.decoding",
    "streams.agents.drift",
    "streams.agents.execution",
    "streams.agents.health",
    "streams.agents.latches",
    "streams.agents.outputs",
    "streams.batching",
    "streams.clock",
    "streams.codec",
    "streams.fetching",
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


def source_of(module: str, root: Path = ROOT) -> Path:
    """The .py of ``module`` (streams.x.y) under the package directory ``root``."""
    return root.joinpath(*module.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StaleBuildFinder(MetaPathFinder):
    """Loads the source of a streams module unless the manifest names that very source
    (a module compiled once and listed no more may have left its build behind)."""

    def __init__(self, built: Mapping[str, str | None], root: Path = ROOT) -> None:
        self.built = dict(built)  # module -> digest of the source it was built from
        self.root = root
        self.stale: list[str] = []  # listed modules loaded from their source

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith("streams."):
            return None
        source = source_of(fullname, self.root)
        if not source.is_file():
            return None  # a package, a C module, or an installed build without sources
        built = self.built.get(fullname)
        if built is not None and built == digest(source):
            return None  # current: Python's own finders load the build
        if fullname in MODULES:
            self.stale.append(fullname)
        return importlib.util.spec_from_file_location(fullname, source)


def read_manifest(root: Path = ROOT) -> dict[str, str | None]:
    try:
        built = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return built if isinstance(built, dict) else {}


_finder: StaleBuildFinder | None = None


def install() -> None:
    """Put the guard in front of Python's finders (idempotent)."""
    global _finder
    if _finder is None:
        _finder = StaleBuildFinder(read_manifest())
        sys.meta_path.insert(0, _finder)


def load(name: str, root: Path = ROOT) -> ModuleType:
    """Import the streams module ``name`` as the installed finder would, without installing
    it: a build of another source is passed over for the ``.py``. ``root``: the package
    directory."""
    if _finder is not None or name in sys.modules:
        return importlib.import_module(name)
    spec = StaleBuildFinder(read_manifest(root), root).find_spec(name)
    if spec is None or spec.loader is None:  # a current build, or no source: Python's way
        return importlib.import_module(name)
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
    """Module -> whether it runs compiled (of those imported so far)."""
    return {name: not str(getattr(sys.modules[name], "__file__", "")).endswith(".py")
            for name in MODULES if name in sys.modules}


def describe() -> str:
    """One line for the worker's log: how many hot modules run compiled, and why not."""
    running = status()
    compiled = sum(running.values())
    line = f"{compiled}/{len(running)} hot-path modules compiled"
    if compiled < len(running):
        stale = sorted(set(_finder.stale)) if _finder else []
        line += (f"; not built from their current source: {', '.join(stale)} (./dev "
                 "rebuilds them; or pip install -e .)" if stale
                 else "; not built (no Cython or C compiler at install): pure Python, slower")
    return line
