#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and runs each one for
# FUZZ_SECONDS over its seed corpus. Exits non-zero if any harness crashes,
# leaks or fails a check. See tests/fuzz/README.md.
#
#   tests/fuzz/run.sh                  build, then fuzz every harness
#   tests/fuzz/run.sh fuzz_codec ...   build, then fuzz these
#   tests/fuzz/run.sh --build          build only
#   tests/fuzz/run.sh --regress        build, then run each corpus once
#
# Environment: FUZZ_SECONDS (30), BUILD_FUZZ (build/fuzz), FUZZ_CC (clang),
# FUZZ_JOBS (parallel compiles: nproc), FUZZ_ARGS (more libFuzzer flags),
# FUZZ_WORK (keep the inputs found in FUZZ_WORK/<harness> instead of a
# scratch directory removed afterwards). fuzz_exchange also reads
# FUZZ_EXCHANGE_SKIP (violation names its adversarial mode steps over) and
# FUZZ_EXCHANGE_TRACE=1 (log and script on stderr, to replay one input).
set -euo pipefail
cd "$(dirname "$0")/../.."

CC=${FUZZ_CC:-clang}
OUT=${BUILD_FUZZ:-build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-$(nproc)}
ALL="fuzz_codec fuzz_config_yaml fuzz_config_env fuzz_exchange fuzz_systemd fuzz_proxy_protocol fuzz_upgrade fuzz_admin fuzz_request_log fuzz_mysql fuzz_cidr fuzz_route"

mode=fuzz
harnesses=()
for arg in "$@"; do
    case $arg in
    --build) mode=build ;;
    --regress) mode=regress ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    fuzz_*) harnesses+=("$arg") ;;
    *) echo "run.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
[ ${#harnesses[@]} -gt 0 ] || read -r -a harnesses <<< "$ALL"

if ! command -v "$CC" >/dev/null; then
    echo "run.sh: $CC not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# -pthread: the resolver's helper thread (src/core/resolver.c).
BASE="-std=gnu11 -O1 -g -D_GNU_SOURCE -pthread -Iinclude $SAN"
# The project's warnings; -Werror only for the harnesses, so that a warning
# new in clang does not stop fuzzing of code owned elsewhere.
WARN="-Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
-Wformat=2 -Wundef -Wvla -Wwrite-strings -Wno-unused-parameter"
YAML_LIBS=$(pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml)

mkdir -p "$OUT/obj" "$OUT/artifacts"

# ---- build ------------------------------------------------------------------
# Every module but main.c, instrumented for coverage. reactor.c is built a
# second time with its clock redirected, for fuzz_exchange (deterministic
# timeouts; see the comment in fuzz_exchange.c).
compile() {     # src out extra-flags...
    local src=$1 out=$2
    shift 2
    # Written aside and renamed: two runs at once never link half an object.
    "$CC" $BASE $WARN -fsanitize=fuzzer-no-link "$@" -c -o "$out.$$" "$src" && mv -f "$out.$$" "$out"
}
export -f compile
export CC BASE WARN

# The Makefile's one source list: every module but main.c.
mapfile -t srcs < <(make -s --no-print-directory print-src)
{
    for f in "${srcs[@]}"; do
        printf '%s\0%s\0' "$f" "$OUT/obj/$(basename "${f%.c}").o"
    done
} | xargs -0 -n 2 -P "$JOBS" bash -c 'compile "$0" "$1"'
compile src/core/reactor.c "$OUT/obj/reactor_fakeclock.o" -Dclock_gettime=fuzz_clock_gettime

objs_default=()
objs_fakeclock=()
for f in "${srcs[@]}"; do
    o="$OUT/obj/$(basename "${f%.c}").o"
    objs_default+=("$o")
    if [ "$f" = src/core/reactor.c ]; then
        objs_fakeclock+=("$OUT/obj/reactor_fakeclock.o")
    else
        objs_fakeclock+=("$o")
    fi
done

for h in "${harnesses[@]}"; do
    [ -f "tests/fuzz/$h.c" ] || { echo "run.sh: no harness tests/fuzz/$h.c" >&2; exit 2; }
    objs=("${objs_default[@]}")
    extra=()
    case $h in
    fuzz_config_*) extra=(-Wl,--wrap=getaddrinfo) ;;
    fuzz_exchange) objs=("${objs_fakeclock[@]}") ;;
    esac
    "$CC" $BASE $WARN -Werror -Itests/fuzz -fsanitize=fuzzer -o "$OUT/$h" \
        "tests/fuzz/$h.c" "${objs[@]}" "${extra[@]}" $YAML_LIBS
done
echo "run.sh: built ${harnesses[*]} in $OUT"
[ "$mode" != build ] || exit 0

# ---- run --------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
summary=()
for h in "${harnesses[@]}"; do
    corpus="tests/fuzz/corpus/$h"
    mkdir -p "$corpus"
    log="$OUT/$h.log"
    if [ "$mode" = regress ]; then
        # Every committed input once: the regression cases of past crashes.
        set +e
        "$OUT/$h" -runs=0 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$h-" \
            ${FUZZ_ARGS:-} "$corpus" > "$log" 2>&1
        rc=$?
        set -e
    else
        # New inputs go to a scratch directory (listed first), so the
        # committed corpus is only read.
        if [ -n "${FUZZ_WORK:-}" ]; then
            work="$FUZZ_WORK/$h"
            mkdir -p "$work"
        else
            work=$(mktemp -d "${TMPDIR:-/tmp}/pmx-$h.XXXXXX")
        fi
        set +e
        "$OUT/$h" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$h-" \
            ${FUZZ_ARGS:-} "$work" "$corpus" > "$log" 2>&1
        rc=$?
        set -e
        [ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    if [ $rc -ne 0 ]; then
        status=1
        summary+=("$h: FAILED (exit $rc, ${execs:-?} executions); log $log")
        echo "---- $h failed; the end of $log:" >&2
        tail -n 60 "$log" >&2
        ls "$OUT/artifacts/$h-"* 2>/dev/null | sed 's/^/crash input: /' >&2 || true
    else
        summary+=("$h: ok, ${execs:-?} executions${cov:+, $cov}")
    fi
done
printf '%s\n' "${summary[@]}"
exit $status
