"""polymon's tests. The native parts are readied first (streams.compiled.install): the
tests run a build of the current sources (a stale one stops the run, saying what to do),
or with POLYMON_NO_EXTENSIONS=1 the pure twins."""

from streams import compiled

compiled.install()
