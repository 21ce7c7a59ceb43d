#!/bin/sh
# Runs integration tests with every proximux under valgrind memcheck.
#
#   tests/integration/valgrind.sh [run.py arguments...]
#   tests/integration/valgrind.sh -k hardening          # a subset
#   tests/integration/valgrind.sh test_mux_redis.py -x  # one file
#   tests/integration/valgrind.sh                        # everything
#
# PROXIMUX_BIN names the binary to check (default: ./proximux, built by
# `make`; a -O1/-O0 build gives better stacks). Tests start a wrapper
# script in its place that execs
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
# so a run with a memory error or a definite leak exits 99, which fails the
# test that stops it expecting 0. Each process writes its own report
# (vg.<pid>.log in a temporary directory, since the harness gives proximux
# a clean environment and a log of its own); at the end every report with
# errors is printed and the script exits non-zero if there was any, even
# if the tests passed. PMX_IT_TIME_FACTOR (default 10) is exported for tests
# that scale their time bounds (test_hardening.py does), and PMX_IT_VALGRIND=1
# for tests that cannot run under valgrind (e.g. prlimit on the process).
# VALGRIND_KEEP=1 keeps the report directory.
set -u

here=$(cd "$(dirname "$0")" && pwd)
bin=${PROXIMUX_BIN:-$here/../../proximux}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
if [ ! -x "$bin" ]; then
    echo "valgrind.sh: no executable proximux at $bin (set PROXIMUX_BIN or run make)" >&2
    exit 2
fi
command -v valgrind >/dev/null 2>&1 || { echo "valgrind.sh: valgrind not installed" >&2; exit 2; }

dir=$(mktemp -d /tmp/pmx-valgrind.XXXXXX)
cleanup() { [ "${VALGRIND_KEEP:-0}" = 1 ] || rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The harness passes only PATH (and the sanitizer options) through to
# proximux, so the wrapper carries the real binary and the log directory.
cat >"$dir/proximux" <<EOF
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \\
    --show-leak-kinds=definite --num-callers=30 --log-file="$dir/vg.%p.log" "$bin" "\$@"
EOF
chmod +x "$dir/proximux"

echo "valgrind.sh: checking $bin; reports in $dir"
start=$(date +%s)
PROXIMUX_BIN="$dir/proximux" PMX_IT_VALGRIND=1 PMX_IT_TIME_FACTOR=${PMX_IT_TIME_FACTOR:-10} \
    python3 "$here/run.py" "$@"
status=$?
secs=$(( $(date +%s) - start ))

runs=$(find "$dir" -name 'vg.*.log' | wc -l)
bad=0
for f in "$dir"/vg.*.log; do
    [ -e "$f" ] || continue
    # -q leaves a report empty unless something was found.
    if [ -s "$f" ]; then
        bad=$((bad + 1))
        echo "=== valgrind report $(basename "$f") ==="
        cat "$f"
    fi
done
echo "valgrind.sh: $runs proximux processes, $bad with valgrind reports, tests exit $status, ${secs}s"
if [ "$bad" -gt 0 ]; then
    VALGRIND_KEEP=1
    echo "valgrind.sh: reports kept in $dir"
    exit 99
fi
exit "$status"
