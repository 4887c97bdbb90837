"""Builds streams._avro and streams._batches with clang, AddressSanitizer, UBSan and
libFuzzer's coverage instrumentation into a directory of their own (never the tree's
in-place build, which the worker and the tests load).

    python -m tests.fuzz.build OUT_DIR
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from streams import compiled

ROOT = Path(__file__).resolve().parents[2]
FLAGS = [
    "-fsanitize=address,undefined,fuzzer-no-link",
    # any UB report is a finding: abort rather than log and go on
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer", "-g", "-O1", "-shared", "-fPIC",
    "-Wall", "-Werror",
]


def build(out: Path) -> dict[str, Path]:
    """The sanitized build of each C extension: module name -> its shared object."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    built = {}
    for name, sources in compiled.EXTENSIONS.items():
        target = out.joinpath(*name.split(".")).with_name(name.rpartition(".")[2] + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = ROOT / "streams" / sources[0]
        subprocess.run(["clang", *FLAGS, f"-I{include}", str(source), "-o", str(target)],
                       check=True)
        built[name] = target
    return built


if __name__ == "__main__":
    for module, path in build(Path(sys.argv[1])).items():
        print(f"{module}: {path}")
