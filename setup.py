"""The one compiled part: the Avro decoder of input records (streams/_avrodecode.c).
Optional: without a C compiler the package installs without it and decodes with cavro
(slower). The build records the source's digest, so a build of an older source is
recognised and not used (streams/avrodecode.py)."""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "streams/_avrodecode.c"
DIGEST = hashlib.sha256((Path(__file__).parent / SOURCE).read_bytes()).hexdigest()

setup(ext_modules=[Extension(
    "streams._avrodecode", [SOURCE], optional=True,
    define_macros=[("SOURCE_SHA256", f'"{DIGEST}"')],
    extra_compile_args=["-O2"],
)])
