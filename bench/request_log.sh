#!/usr/bin/env bash
# The request log's cost on throughput, in one run: redis-benchmark
# (-c 50, SET and GET, -P 1 and -P 16) through Proximux fifo (resp, one
# pipelined connection) with the request log off, on (JSON lines to a file
# in the temp dir) and on with sample 0.1, each point repeated
# BENCH_REPEAT times (3) in alternation, so that the machine's drift hits
# every variant alike. Prints requests/s per row and the ratio to "off".
#
#   bash bench/request_log.sh         BENCH_N (200000) requests per point
#   BENCH_PIN=1 bash bench/request_log.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
PROXIMUX=${PROXIMUX:-$BENCH_DIR/../proximux}
N=${BENCH_N:-200000}
REPEAT=${BENCH_REPEAT:-3}

need redis-server redis-benchmark || exit 2
bench_init
setup_pinning
free_ports 2
RPORT=${PORTS[0]}
PPORT=${PORTS[1]}
start_redis "$RPORT"

# point VARIANT PIPELINE -> prints "SET_RPS GET_RPS"
point() {
    local variant=$1 pipeline=$2 log=()
    case $variant in
    off) ;;
    on) log=(REQUEST_LOG_FILE="$BENCH_TMP/requests.log") ;;
    sample) log=(REQUEST_LOG_FILE="$BENCH_TMP/requests.log" REQUEST_LOG_SAMPLE=0.1) ;;
    esac
    start_proximux "$PPORT" EXCHANGE_MODE=fifo PROXY_CONNECTIONS_CNT=1 EXCHANGE_CODEC=resp \
        EXCHANGE_FUNNEL_ASYNC=1 TARGET_HOST_1=127.0.0.1 TARGET_PORT_1="$RPORT" "${log[@]}" || die "$TGT_WHY"
    "${PIN_GEN[@]}" redis-benchmark -p "$PPORT" -c 50 -n "$N" -t set,get -P "$pipeline" -q 2>/dev/null |
        tr '\r' '\n' | awk '/^SET:/ { s = $2 } /^GET:/ { g = $2 } END { print s, g }'
    if grep -q "lines dropped" "$BENCH_TMP/proximux-$PPORT.log"; then
        log "bench: $variant -P $pipeline: $(grep -c "lines dropped" "$BENCH_TMP/proximux-$PPORT.log") drop reports"
    fi
    bg_stop "$TGT_PID"
    rm -f "$BENCH_TMP/requests.log"
}

printf '%-8s %4s %12s %12s %8s %8s\n' variant P set/s get/s set% get%
for pipeline in 1 16; do
    declare -A set_sum=() get_sum=()
    for _ in $(seq "$REPEAT"); do
        for variant in off on sample; do
            read -r s g < <(point "$variant" "$pipeline")
            set_sum[$variant]=$(awk -v a="${set_sum[$variant]:-0}" -v b="$s" 'BEGIN { print a + b }')
            get_sum[$variant]=$(awk -v a="${get_sum[$variant]:-0}" -v b="$g" 'BEGIN { print a + b }')
        done
    done
    for variant in off on sample; do
        awk -v v="$variant" -v p="$pipeline" -v r="$REPEAT" -v s="${set_sum[$variant]}" -v g="${get_sum[$variant]}" \
            -v s0="${set_sum[off]}" -v g0="${get_sum[off]}" \
            'BEGIN { printf "%-8s %4d %12.0f %12.0f %7.1f%% %7.1f%%\n", v, p, s / r, g / r, 100 * s / s0, 100 * g / g0 }'
    done
    unset set_sum get_sum
done
