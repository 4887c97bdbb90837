"""polymon's tests. The stale-build guard of the hot path's compiled modules goes in
first (streams.compiled): a test runs the build of the current source, or the source."""

from streams import compiled

compiled.install()
