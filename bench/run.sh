#!/usr/bin/env bash
# Proximux benchmarks: Proximux vs a direct connection, HAProxy and
# twemproxy (nutcracker), all on loopback, in the same run.
#
#   bash bench/run.sh [proxy|mux|memcache|features|all]     (default: all)
#
# Environment (see bench/README.md):
#   PROXIMUX_BIN     binary to test (default ./proximux, relative to cwd)
#   BENCH_REPEAT     runs per data point, the median is kept (default 1)
#   BENCH_QUICK=1    short runs for a smoke test (~1 s each)
#   BENCH_SECONDS    target duration of one run (default 5; quick: 1)
#   BENCH_REQUESTS   fixed redis-benchmark -n (skips the calibration run)
#   BENCH_CLIENTS    concurrent client connections (default 50)
#   BENCH_PIPELINES  redis-benchmark -P values (default "1 16")
#   BENCH_PIN=1      taskset: servers+proxies on CPU 1, load generator on CPU 0
#   BENCH_OUT=FILE   also write the raw results (TSV) to FILE
#   BENCH_ADMIN=1    Proximux with its admin listener on, /metrics scraped every second
#   BENCH_KEEP=1     keep the temp dir with every log and config
set -u

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

SECTION=${1:-all}
case "$SECTION" in
    proxy|mux|memcache|features|all) ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown section '$SECTION' (proxy, mux, memcache or nothing for all)" ;;
esac

PROXIMUX=${PROXIMUX_BIN:-./proximux}
case "$PROXIMUX" in /*) ;; *) PROXIMUX="$PWD/${PROXIMUX#./}" ;; esac

REPEAT=${BENCH_REPEAT:-1}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    SECS=${BENCH_SECONDS:-1}; CAL=1000
else
    SECS=${BENCH_SECONDS:-5}; CAL=5000
fi
CLIENTS=${BENCH_CLIENTS:-50}
PIPELINES=${BENCH_PIPELINES:-1 16}
for v in "$REPEAT" "$SECS" "$CLIENTS"; do
    case "$v" in ''|*[!0-9]*|0) die "BENCH_REPEAT, BENCH_SECONDS and BENCH_CLIENTS must be positive integers" ;; esac
done

bench_init
setup_pinning
ulimit -n "$(ulimit -Hn)" 2>/dev/null
RESULTS="$BENCH_TMP/results.tsv"
: >"$RESULTS"

# ------------------------------------------------------------ targets
#
# start_target NAME BACKEND_PORT CODEC -> T_PORT, T_PID (empty for direct),
# T_WHY on failure.  Every non-direct target is started fresh for each data
# point and stopped after it, so a crash only costs that point.

start_target() {
    local name=$1 be=$2 codec=$3
    T_PID=""; T_WHY=""; TGT_PID=""; TGT_WHY=""
    # NAME+FEATURE: the same Proximux with a feature on (section features).
    PMX_ADMIN=${BENCH_ADMIN:-0}
    PMX_ARGS=()
    PMX_ENV=()
    case "$name" in
        *+admin) PMX_ADMIN=1 ;;
        *+reqlog) PMX_ENV=(REQUEST_LOG_FILE="$BENCH_TMP/requests-$$.log") ;;
        *+lua)
            # An on_request hook that looks at every request and passes it.
            printf '%s\n' 'function on_request(req)' \
                '  if req.command == "DEBUG" then return { reply = "-ERR not here\r\n" } end' \
                'end' >"$BENCH_TMP/hook.lua"
            printf 'script: %s\n' "$BENCH_TMP/hook.lua" >"$BENCH_TMP/hook.yaml"
            PMX_ARGS=(-c "$BENCH_TMP/hook.yaml") ;;
    esac
    name=${name%%+*}
    if [ "$name" = direct ]; then
        T_PORT=$be
        return 0
    fi
    free_ports 2
    T_PORT=${PORTS[0]}
    local rc=0 t4=(TARGET_HOST_1=127.0.0.1 TARGET_PORT_1="$be")
    case "$name" in
        haproxy)
            start_haproxy "$T_PORT" "$be" || rc=1 ;;
        twemproxy)
            start_twemproxy "$T_PORT" "${PORTS[1]}" "$be" "$codec" || rc=1 ;;
        proximux)
            start_proximux "$T_PORT" EXCHANGE_MODE=proxy PROXY_CONNECTIONS_CNT=1 \
                "${t4[@]}" || rc=1 ;;
        proximux-orig64)
            # Proxy mode as the original Proximux configures it: mode auto
            # with LOCAL_MAX_CONNECTIONS = PROXY_CONNECTIONS_CNT = 64 and 64
            # targets; redis-benchmark's 50 clients reconnect between phases
            # while the previous sessions drain.
            local i t64=()
            for i in $(seq 1 64); do t64+=("TARGET_HOST_$i=127.0.0.1" "TARGET_PORT_$i=$be"); done
            start_proximux "$T_PORT" LOCAL_MAX_CONNECTIONS=64 PROXY_CONNECTIONS_CNT=64 \
                "${t64[@]}" || rc=1 ;;
        proximux-fifo|proximux-fifo-async)
            local async=0; [ "$name" = proximux-fifo-async ] && async=1
            start_proximux "$T_PORT" EXCHANGE_MODE=fifo PROXY_CONNECTIONS_CNT=1 \
                LOCAL_MAX_CONNECTIONS=-1 EXCHANGE_CODEC="$codec" \
                EXCHANGE_FUNNEL_ASYNC=$async "${t4[@]}" || rc=1 ;;
        proximux-funnel|proximux-funnel-async)
            local async=0 i; [ "$name" = proximux-funnel-async ] && async=1
            for i in 2 3 4; do t4+=("TARGET_HOST_$i=127.0.0.1" "TARGET_PORT_$i=$be"); done
            start_proximux "$T_PORT" EXCHANGE_MODE=funnel PROXY_CONNECTIONS_CNT=4 \
                LOCAL_MAX_CONNECTIONS=-1 EXCHANGE_CODEC="$codec" \
                EXCHANGE_FUNNEL_ASYNC=$async "${t4[@]}" || rc=1 ;;
        *) die "unknown target $name" ;;
    esac
    T_PID=$TGT_PID
    if [ $rc -ne 0 ]; then
        T_WHY=${TGT_WHY:-"$name did not start (see logs: BENCH_KEEP=1)"}
        [ -n "$T_PID" ] && bg_stop "$T_PID"
        T_PID=""
        return 1
    fi
    # A target that listens but does not answer correctly is reported n/a,
    # not benchmarked (error replies would look like very fast requests).
    if ! python3 "$BENCH_DIR/benchtool.py" "check-$codec" "$T_PORT" 2>"$BENCH_TMP/check.err"; then
        T_WHY="round-trip check failed: $(head -1 "$BENCH_TMP/check.err")"
        bg_stop "$T_PID"; T_PID=""
        return 1
    fi
}

stop_target() { [ -n "$T_PID" ] && bg_stop "$T_PID"; T_PID=""; }

# record SECTION TARGET PIPELINE TEST REP RPS P50 P99 CPU_US_PER_REQ
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

progress() {
    # progress SECTION TARGET P TEST RPS P50 P99 CPU [NOTE]
    printf '  %-8s %-22s P=%-3s %-4s %12s rps  p50 %7s ms  p99 %7s ms  cpu %6s us/req %s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:-}" >&2
}

# cpu_ticks PID: user+system clock ticks used so far by PID ("" if none).
cpu_ticks() {
    local st
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 0
    st=$(<"/proc/$1/stat")
    st=${st##*) }                       # drop "pid (comm) "
    # shellcheck disable=SC2086
    set -- $st                          # $12 = utime, $13 = stime
    echo $(( ${12} + ${13} ))
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# cpu_us_per_req TICKS_BEFORE TICKS_AFTER REQUESTS: the target's CPU
# microseconds per request, "n/a" for direct (no proxy process).
cpu_us_per_req() {
    if [ -z "$1" ] || [ -z "$2" ] || [ "${3:-0}" -le 0 ]; then echo n/a; return; fi
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }'
}

# ------------------------------------------------------- redis runs

# rb_requests PORT P: -n for about SECS seconds, from a short calibration run
# (which doubles as warm-up).  Echoes the count; fails if calibration fails.
rb_requests() {
    local port=$1 p=$2 rps n
    if [ -n "${BENCH_REQUESTS:-}" ]; then echo "$BENCH_REQUESTS"; return 0; fi
    timeout 60 "${PIN_GEN[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" \
        -n $((CAL * p)) -P "$p" -t set --csv >"$BENCH_TMP/cal.csv" 2>"$BENCH_TMP/cal.err" || return 1
    grep -q "Error from server" "$BENCH_TMP/cal.err" && return 1
    rps=$(python3 "$BENCH_DIR/benchtool.py" rbcsv "$BENCH_TMP/cal.csv" | awk 'NR==1{print int($2)}')
    [ -n "$rps" ] || return 1
    n=$((rps * SECS))
    [ "$n" -lt $((1000 * p)) ] && n=$((1000 * p))
    [ "$n" -gt 20000000 ] && n=20000000
    echo "$n"
}

# bench_redis SECTION TARGET BACKEND_PORT P REP
# SET and GET run as two redis-benchmark invocations so that the target's
# CPU time (from /proc) can be charged to each test separately.
bench_redis() {
    local sec=$1 tgt=$2 be=$3 p=$4 rep=$5 n="" why="" t rps p50 p99 out c0 cpu
    local -a done_tests=() rows=()
    if start_target "$tgt" "$be" resp; then
        if ! n=$(rb_requests "$T_PORT" "$p"); then
            why="calibration run failed"
        fi
        for t in SET GET; do
            [ -n "$why" ] && break
            out="$BENCH_TMP/rb-$sec-$tgt-$p-$rep-$t"
            c0=$(cpu_ticks "$T_PID")
            if ! timeout $((SECS * 4 + 60)) "${PIN_GEN[@]}" redis-benchmark \
                    -h 127.0.0.1 -p "$T_PORT" -c "$CLIENTS" -n "$n" -P "$p" \
                    -t "${t,,}" --csv >"$out.csv" 2>"$out.err"; then
                why="redis-benchmark $t failed or timed out"
            elif grep -q "Error from server" "$out.err"; then
                why="server errors: $(grep -m1 'Error from server' "$out.err")"
            elif [ -n "$T_PID" ] && ! alive "$T_PID"; then
                why="$tgt exited during the run"
            elif ! python3 "$BENCH_DIR/benchtool.py" rbcsv "$out.csv" >"$out.parsed"; then
                why="no results parsed"
            else
                cpu=$(cpu_us_per_req "$c0" "$(cpu_ticks "$T_PID")" "$n")
                read -r _ rps p50 p99 <"$out.parsed"
                rows+=("$t $rps $p50 $p99 $cpu")
                done_tests+=("$t")
            fi
        done
    else
        why=$T_WHY
    fi
    stop_target
    local row
    for row in "${rows[@]}"; do
        read -r t rps p50 p99 cpu <<<"$row"
        record "$sec" "$tgt" "$p" "$t" "$rep" "$rps" "$p50" "$p99" "$cpu"
        progress "$sec" "$tgt" "$p" "$t" "$rps" "$p50" "$p99" "$cpu" "(n=$n)"
    done
    for t in SET GET; do
        case " ${done_tests[*]} " in *" $t "*) continue ;; esac
        record "$sec" "$tgt" "$p" "$t" "$rep" n/a n/a n/a n/a
        progress "$sec" "$tgt" "$p" "$t" n/a n/a n/a n/a "(${why:-not run})"
    done
}

# ------------------------------------------------------ sections

section_proxy() {
    log ""
    log "== proxy: direct redis vs HAProxy (tcp, 1 thread) vs Proximux proxy mode"
    free_ports 1
    local rport=${PORTS[0]} rep p tgt
    start_redis "$rport"
    for rep in $(seq 1 "$REPEAT"); do
        for p in $PIPELINES; do
            for tgt in direct haproxy proximux proximux-orig64; do
                bench_redis proxy "$tgt" "$rport" "$p" "$rep"
            done
        done
    done
    bg_stop "$REDIS_PID"
}

# The cost of features that may stay on, against the same Proximux without
# them, in one run: the admin listener scraped every second (statistics
# are always counted), the request log (JSON lines to a file, every
# request), a Lua on_request hook that looks at every request.
section_features() {
    log ""
    log "== features: Proximux fifo async, each feature on vs off (same redis, same run)"
    free_ports 1
    local rport=${PORTS[0]} rep p tgt
    start_redis "$rport"
    for rep in $(seq 1 "$REPEAT"); do
        for p in $PIPELINES; do
            for tgt in proximux-fifo-async proximux-fifo-async+admin \
                       proximux-fifo-async+reqlog proximux-fifo-async+lua; do
                bench_redis features "$tgt" "$rport" "$p" "$rep"
            done
        done
    done
    bg_stop "$REDIS_PID"
}

section_mux() {
    log ""
    log "== mux: direct redis vs twemproxy (1 server connection) vs Proximux fifo/funnel"
    free_ports 1
    local rport=${PORTS[0]} rep p tgt
    start_redis "$rport"
    for rep in $(seq 1 "$REPEAT"); do
        for p in $PIPELINES; do
            for tgt in direct twemproxy proximux-fifo proximux-fifo-async \
                       proximux-funnel proximux-funnel-async; do
                bench_redis mux "$tgt" "$rport" "$p" "$rep"
            done
        done
    done
    bg_stop "$REDIS_PID"
}

MEMASLAP=$(command -v memcaslap || command -v memaslap || true)

# bench_memcache TARGET BACKEND_PORT REP  (memaslap: 50% set / 50% get,
# reported as one "MIX" row: total ops/s, latency over all operations)
bench_memcache() {
    local tgt=$1 be=$2 rep=$3 why="" out t rps p50 p99 c0="" c1="" ops cpu
    out="$BENCH_TMP/ms-$tgt-$rep"
    if start_target "$tgt" "$be" memcache; then
        c0=$(cpu_ticks "$T_PID")
        if ! timeout $((SECS + 30)) "${PIN_GEN[@]}" "$MEMASLAP" -s "127.0.0.1:$T_PORT" \
                -T 1 -c "$CLIENTS" -t "${SECS}s" -S "${SECS}s" -F "$BENCH_TMP/memaslap.cfg" \
                >"$out.txt" 2>&1; then
            why="memaslap failed or timed out"
        elif [ -n "$T_PID" ] && ! alive "$T_PID"; then
            why="$tgt exited during the run"
        else
            c1=$(cpu_ticks "$T_PID")
        fi
    else
        why=$T_WHY
    fi
    stop_target
    if [ -z "$why" ] && python3 "$BENCH_DIR/benchtool.py" memaslap "$out.txt" >"$out.parsed"; then
        # memaslap mixes set and get: CPU per operation over the whole run
        ops=$(grep -o 'Ops: [0-9]*' "$out.txt" | tail -1 | awk '{print $2}')
        cpu=$(cpu_us_per_req "$c0" "$c1" "${ops:-0}")
        while read -r t rps p50 p99; do
            record memcache "$tgt" 1 "$t" "$rep" "$rps" "$p50" "$p99" "$cpu"
            progress memcache "$tgt" 1 "$t" "$rps" "$p50" "$p99" "$cpu"
        done <"$out.parsed"
    else
        [ -z "$why" ] && why="no results parsed"
        record memcache "$tgt" 1 MIX "$rep" n/a n/a n/a n/a
        progress memcache "$tgt" 1 - n/a n/a n/a n/a "($why)"
    fi
}

section_memcache() {
    log ""
    log "== memcache: direct memcached vs twemproxy vs Proximux fifo (1 conn) and funnel (4 conns), memcache codec, async"
    if [ -z "$MEMASLAP" ]; then
        log "bench: memaslap/memcaslap not found (apt-get install libmemcached-tools); skipping"
        return 0
    fi
    cat >"$BENCH_TMP/memaslap.cfg" <<'EOF'
key
16 16 1
value
64 64 1
cmd
0 0.5
1 0.5
EOF
    free_ports 1
    local mport=${PORTS[0]} rep tgt
    start_memcached "$mport"
    for rep in $(seq 1 "$REPEAT"); do
        for tgt in direct twemproxy proximux-fifo-async proximux-funnel-async; do
            bench_memcache "$tgt" "$mport" "$rep"
        done
    done
    bg_stop "$MEMCACHED_PID"
}

# ---------------------------------------------------------- main

case "$SECTION" in
    proxy)    need redis-server redis-benchmark haproxy || exit 1 ;;
    mux)      need redis-server redis-benchmark nutcracker || exit 1 ;;
    memcache) need memcached nutcracker || exit 1 ;;
    features) need redis-server redis-benchmark || exit 1 ;;
    all)      need redis-server redis-benchmark haproxy nutcracker memcached || exit 1 ;;
esac

pmx_version="absent"
if [ -x "$PROXIMUX" ]; then
    pmx_version=$("$PROXIMUX" -V 2>&1 | head -1)
    [ -n "$pmx_version" ] || pmx_version="present"
fi
log "Proximux benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
log "  host: $(nproc) CPUs, $(uname -r); pin=${BENCH_PIN:-0} repeat=$REPEAT seconds/run=$SECS clients=$CLIENTS pipelines=[$PIPELINES]"
log "  proximux: $PROXIMUX ($pmx_version)"
log "  $(redis-server --version | cut -d' ' -f1-3); $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3); $(nutcracker -V 2>&1 | head -1 | sed 's/This is //'); memcached $(memcached -V 2>/dev/null | awk '{print $2}')"

LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$LOAD_START" 'BEGIN { exit !(l > 0.5) }'; then
    log "  WARNING: load average $LOAD_START before starting: something else is using the CPUs;"
    log "           throughput and latency will be noisy (the CPU us/req column much less so)"
fi

case "$SECTION" in
    proxy)    section_proxy ;;
    mux)      section_mux ;;
    memcache) section_memcache ;;
    features) section_features ;;
    all)      section_proxy; section_mux; section_memcache; section_features ;;
esac

[ -n "${BENCH_OUT:-}" ] && cp "$RESULTS" "$BENCH_OUT"
pin_desc="no CPU pinning"
[ ${#PIN_SRV[@]} -gt 0 ] && pin_desc="servers+proxies pinned to CPU 1, load generator to CPU 0"
BENCH_META="_$(date -u +%Y-%m-%d), $(nproc) CPUs, loopback, $CLIENTS client connections, \
median of $REPEAT run(s) of ~${SECS}s each, $pin_desc, load average at start $LOAD_START; \
proximux: $pmx_version._" \
    python3 "$BENCH_DIR/benchtool.py" report "$RESULTS"

# A phase that printed no result is an error, not a zero: the run fails.
incomplete=$(awk -F'\t' '$6 == "n/a" { print $2 " P=" $3 " " $4 }' "$RESULTS" | sort -u)
if [ -n "$incomplete" ]; then
    log ""
    log "ERROR: these benchmark phases did not complete (reasons above):"
    printf '%s\n' "$incomplete" | sed 's/^/  /' >&2
    exit 1
fi
