#!/usr/bin/env bash
# Fuzzes the C extensions (streams/_native/) under AddressSanitizer and UBSan: builds
# them with clang into a directory of their own (never the tree's in-place build), then
# runs each target of tests/fuzz/harness.py (decode_frame per schema, read_batches),
# seeded from tests/samples.py, for a bounded time. Fails on any finding: a sanitizer
# report, a crash, or a result other than the pure twin's (fastavro, aiokafka).
#
#   ops/fuzz/run.sh [TARGET...]          all targets when none is named
#   FUZZ_SECONDS=600 ops/fuzz/run.sh batches     one target, longer
#
# FUZZ_SECONDS: per target (default 20); FUZZ_JOBS: targets run at once (default 2).
# Findings (the input that failed) go to reports/fuzz/<target>/, with the log; replay
# one with: ops/fuzz/run.sh TARGET -- reports/fuzz/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}
python=.venv/bin/python
site=.state/fuzz/site  # atheris, outside the project's virtualenv
ATHERIS=atheris==3.0.0  # the newest with a binary wheel for CPython 3.11

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: no clang (Debian's clang package: .ci/run installs it)" >&2
    exit 2
fi
if [ ! -x "$python" ]; then
    echo "fuzz: no $python yet: run ./dev lint (or any ./dev command) first" >&2
    exit 2
fi
if [ ! -f "$site/.installed-$ATHERIS" ]; then
    rm -rf "$site"
    "$python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
        --target "$site" "$ATHERIS"
    touch "$site/.installed-$ATHERIS"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the tree's build is never loaded: the harness injects the sanitized one
export POLYMON_NO_EXTENSIONS=1 PYTHONPATH="$site"
POLYMON_NO_EXTENSIONS=1 "$python" -m tests.fuzz.build "$work/build" >/dev/null

# atheris' ASan runtime with libFuzzer merged in: the extensions' coverage counters then
# reach libFuzzer (with clang's plain libclang_rt.asan they bind to its no-op stubs, and
# the fuzzing is blind to the C code). Python's allocator off: ASan sees every object.
export LD_PRELOAD="$PWD/$site/asan_with_fuzzer.so" PYTHONMALLOC=malloc
# CPython leaks by design at exit. A huge allocation fails as it does without ASan
# (NULL, so MemoryError): aiokafka's own reader, the harness's reference, tries one for a
# record whose length field is near 2**63; a MemoryError where the reference has none
# is still a finding.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:symbolize=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

replay=()
if [ $# -gt 0 ]; then
    targets=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then shift; replay=("$@"); break; fi
        targets+=("$1"); shift
    done
else
    mapfile -t targets < <("$python" -m tests.fuzz.harness "$work/build" --list)
fi

if [ ${#replay[@]} -gt 0 ]; then  # a finding run again, once
    exec "$python" -m tests.fuzz.harness "$work/build" "${targets[0]}" "${replay[@]}"
fi

run_target() {
    local target=$1 dir
    dir=${target//:/-}
    mkdir -p "reports/fuzz/$dir"
    if "$python" -m tests.fuzz.harness "$work/build" "$target" --corpus "$work/corpus/$dir" \
            -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
            -print_final_stats=1 -artifact_prefix="reports/fuzz/$dir/" \
            >"reports/fuzz/$dir/log" 2>&1; then
        echo "fuzz: $target: $(grep -Eo 'Done [0-9]+ runs' "reports/fuzz/$dir/log" | tail -1), no finding"
    else
        echo "fuzz: $target: FINDING (reports/fuzz/$dir/):" >&2
        grep -vE '^#[0-9]+' "reports/fuzz/$dir/log" | tail -40 >&2
        return 1
    fi
}
export -f run_target
export python work seconds
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time" >&2
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_target "$@"' _ {}
