"""The compiled parts, all optional: without a C compiler (or Cython) the package
installs without them and runs as pure Python, slower.

- streams/_avrodecode.c: the Avro decoder of input records (else cavro decodes). The
  build records the source's digest, so a build of an older source is recognised and
  not used (streams/avrodecode.py).
- The hot path's modules (streams.compiled.MODULES), compiled from their .py by Cython.
  The build writes streams/_compiled.json, each module's source digest (null: its
  compilation failed), so a module edited since is run from its source
  (streams/compiled.py).
"""

import importlib.util
import json
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
SOURCE = "streams/_avrodecode.c"

# streams/compiled.py is stdlib only: loaded by path, without the package's dependencies
_spec = importlib.util.spec_from_file_location("polymon_compiled", HERE / "streams/compiled.py")
assert _spec is not None and _spec.loader is not None
compiled = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compiled)

extensions = [Extension(
    "streams._avrodecode", [SOURCE], optional=True,
    define_macros=[("SOURCE_SHA256", f'"{compiled.digest(HERE / SOURCE)}"')],
    extra_compile_args=["-O2"],
)]
sources = {name: compiled.source_of(name, HERE / "streams") for name in compiled.MODULES}
digests = {name: compiled.digest(path) for name, path in sources.items()}

try:
    from Cython.Build import cythonize
except ImportError:  # pure Python, as without a compiler
    cythonize = None


def _cythonized(names: list[str]) -> list[Extension]:
    return cythonize(
        [Extension(name, [str(sources[name].relative_to(HERE))], optional=True)
         for name in names],
        build_dir="build/cython", quiet=True, nthreads=os.cpu_count() or 1,
        # plain Python semantics: annotations are hints, not C types
        compiler_directives={"language_level": 3, "annotation_typing": False,
                             "binding": True},
    )


if cythonize is not None and os.environ.get("POLYMON_PURE_PYTHON") != "1":
    try:
        extensions += _cythonized(list(sources))
    except Exception:  # one module Cython cannot read stays pure Python
        for name in sources:
            try:
                extensions += _cythonized([name])
            except Exception as exc:
                print(f"warning: {name} runs as pure Python: Cython failed: {exc}")


class BuildExt(build_ext):
    """Builds in parallel, and writes the manifest of the hot-path modules built."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.built: dict[str, str | None] = dict.fromkeys(compiled.MODULES)
        super().run()
        # next to the modules built: in place (editable) or in the wheel's tree
        manifest = Path(self.get_ext_fullpath("streams._manifest")).with_name(
            compiled.MANIFEST)
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(self.built, indent=1, sort_keys=True) + "\n")

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)  # a failure of an optional one raises past this
        if ext.name in digests:
            self.built[ext.name] = digests[ext.name]


setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
