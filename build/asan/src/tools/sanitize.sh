#!/usr/bin/env bash
# Run the test suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the C core.
#
#   tools/sanitize.sh                 # the whole suite (fuzz run cut to ER_FUZZ_CASES=3000)
#   tools/sanitize.sh tests/test_decoder.py -k prefill    # any pytest arguments
#
# The source tree is copied to build/asan/src (the in-place extension others use is left alone),
# the extension is built there with -fsanitize=address,undefined, and pytest runs in that copy
# with libasan preloaded (CPython itself is not instrumented). Sanitizers log to
# build/asan/logs/ instead of aborting, so one run lists every report; the script fails if
# there is any report, or if pytest fails.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${ER_ASAN_DIR:-$PWD/build/asan}"
SRC="$OUT/src"
LOGS="$OUT/logs"

rm -rf "$SRC" "$LOGS"
mkdir -p "$SRC" "$LOGS"
tar --exclude=./.git --exclude=./build --exclude='*.so' --exclude=./.pytest_cache \
    --exclude=./.hypothesis --exclude=./.benchmarks --exclude='__pycache__' -cf - . | tar -xf - -C "$SRC"

SAN="-fsanitize=address,undefined -fsanitize-recover=all -fno-omit-frame-pointer -g"
(cd "$SRC" && CFLAGS="$SAN" LDFLAGS="$SAN" python setup.py -q build_ext --inplace \
    --build-temp "$OUT/obj" >"$OUT/build.log" 2>&1) || { cat "$OUT/build.log"; exit 1; }

LIBASAN="$(gcc -print-file-name=libasan.so)"
# detect_leaks=0: CPython keeps its arenas to the end by design. halt_on_error=0 + recover: log
# every report and go on. allocator_may_return_null=1: a refused huge allocation returns NULL
# (which the C core checks) as it does without ASan, instead of ending the process.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=0:allocator_may_return_null=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$LOGS/ubsan"
export LD_PRELOAD="$LIBASAN"
export ER_FUZZ_CASES="${ER_FUZZ_CASES:-3000}"
export PYTHONDONTWRITEBYTECODE=1

cd "$SRC"
python - <<'EOF'
import edge_runtime._native as n, os
assert n.__file__.startswith(os.getcwd()), n.__file__   # the sanitized build, not the in-place one
EOF
status=0
# Measured-RSS checks hold for a normal build; ASan's shadow memory and quarantine inflate RSS.
RSS_TESTS="within_10_percent or rss_budget or anon_grows or emulated or opens_fast_and_small or rss_tracker"
if [ $# -eq 0 ]; then set -- tests -k "not ($RSS_TESTS)"; fi
python -m pytest -q -p no:cacheprovider "$@" || status=$?
unset LD_PRELOAD

reports=$(ls "$LOGS" | wc -l)
if [ "$reports" -ne 0 ]; then
    echo "sanitize: $reports report file(s) in $LOGS:" >&2
    grep -h -A12 -E "^(=+ERROR|.*runtime error)" "$LOGS"/* | head -200 >&2
    exit 1
fi
echo "sanitize: 0 sanitizer reports (pytest exit status $status)"
exit "$status"
