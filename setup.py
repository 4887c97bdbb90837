"""The native parts, all optional: without a C compiler (or Cython), or with
POLYMON_NO_EXTENSIONS=1, the package installs without them and runs their pure twins.

- streams._avro (streams/_native/avro.c): Avro frames decoded and encoded, input records
  assembled (else fastavro and pydantic).
- streams._batches (streams/_native/batches.c): Kafka record batches read (else aiokafka).
- The hot path's modules (streams.compiled.MODULES), compiled from their .py by Cython.

The build writes streams/_compiled.json, each part's source digest (null: its build
failed), which the start-up check compares with the sources (streams/compiled.py).
"""

import importlib.util
import json
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent

# streams/compiled.py is stdlib only: loaded by path, without the package's dependencies
_spec = importlib.util.spec_from_file_location("polymon_compiled", HERE / "streams/compiled.py")
assert _spec is not None and _spec.loader is not None
compiled = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compiled)

native = not compiled.NO_EXTENSIONS
package = HERE / "streams"
extensions = [Extension(
    name, [f"streams/{paths[0]}"], depends=[f"streams/{path}" for path in paths[1:]],
    optional=True, extra_compile_args=["-O2"],
) for name, paths in compiled.EXTENSIONS.items()] if native else []
sources = {name: compiled.source_of(name, package) for name in compiled.MODULES}
digests = {name: compiled.digest(*compiled.sources_of(name, package))
           for name in [*compiled.EXTENSIONS, *compiled.MODULES]}

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


if cythonize is not None and native:
    try:
        extensions += _cythonized(list(sources))
    except Exception:  # one module Cython cannot read stays pure Python
        for name in sources:
            try:
                extensions += _cythonized([name])
            except Exception as exc:
                print(f"warning: {name} runs as pure Python: Cython failed: {exc}")


class BuildExt(build_ext):
    """Builds in parallel, and writes the manifest of the native parts built."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.built: dict[str, str | None] = dict.fromkeys(digests)
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
