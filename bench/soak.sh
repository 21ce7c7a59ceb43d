#!/usr/bin/env bash
# Soak test (not for CI): verified SET/GET load through each Proximux mode
# (proxy; fifo async; funnel async, 4 connections; resp codec) for MINUTES
# per mode while the redis-server upstream is killed and restarted on the
# same port every few seconds.  Reports, per mode: requests ok, errors seen
# by clients (expected around restarts), reconnections, mismatched replies
# (must be 0), hangs (must be 0) and Proximux's RSS and fds start/end.
#
#   bash bench/soak.sh [MINUTES]        (default 2 per mode; decimals allowed)
#
# Environment (see bench/README.md, "Soak"):
#   PROXIMUX_BIN         binary to test (default ./proximux, relative to cwd)
#   SOAK_MODES           modes to run (default "proxy fifo funnel")
#   SOAK_CONNS           client connections (default 20)
#   SOAK_RESTART_EVERY   seconds between redis restarts, +-30 % (default 5)
#   BENCH_KEEP=1         keep the temp dir (proximux and redis logs)
set -u

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

case "${1:-}" in -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

PROXIMUX=${PROXIMUX_BIN:-./proximux}
case "$PROXIMUX" in /*) ;; *) PROXIMUX="$PWD/${PROXIMUX#./}" ;; esac
MINUTES=${1:-2}
SECS=$(awk -v m="$MINUTES" 'BEGIN { if (m + 0 > 0) printf "%d", m * 60 + 0.5 }')
if [ -z "$SECS" ] || [ "$SECS" -le 0 ]; then
    die "MINUTES must be a positive number (got '$MINUTES')"
fi
MODES=${SOAK_MODES:-proxy fifo funnel}
CONNS=${SOAK_CONNS:-20}
EVERY=${SOAK_RESTART_EVERY:-5}
case "$CONNS" in ''|*[!0-9]*|0) die "SOAK_CONNS must be a positive integer" ;; esac
awk -v e="$EVERY" 'BEGIN { exit !(e + 0 >= 0.5) }' || die "SOAK_RESTART_EVERY must be >= 0.5 seconds"
for m in $MODES; do
    case "$m" in proxy|fifo|funnel) ;; *) die "unknown mode '$m' (proxy, fifo, funnel)" ;; esac
done

need redis-server python3 || exit 1
[ -x "$PROXIMUX" ] || die "no binary at $PROXIMUX (build it, or set PROXIMUX_BIN)"
bench_init
PIN_SRV=()    # read by lib.sh's start_* helpers: no pinning here
ulimit -n "$(ulimit -Hn)" 2>/dev/null

log "Proximux soak test  $(date -u '+%Y-%m-%d %H:%M UTC')"
log "  host: $(nproc) CPUs, $(uname -r); modes: $MODES; ${SECS}s per mode; $CONNS connections; redis restart every ~${EVERY}s"
log "  proximux: $PROXIMUX ($("$PROXIMUX" -V 2>&1 | head -1)); $(redis-server --version | cut -d' ' -f1-3)"

SUMMARY="$BENCH_TMP/summary.tsv"
: >"$SUMMARY"
rc=0

for mode in $MODES; do
    log ""
    log "== $mode"
    free_ports 2
    PPORT=${PORTS[0]} RPORT=${PORTS[1]}
    # Nothing listens on RPORT yet: soak.py starts (and restarts) redis there.
    tg=(TARGET_HOST_1=127.0.0.1 TARGET_PORT_1="$RPORT")
    case "$mode" in
        proxy)  set -- EXCHANGE_MODE=proxy PROXY_CONNECTIONS_CNT=1 "${tg[@]}" ;;
        fifo)   set -- EXCHANGE_MODE=fifo PROXY_CONNECTIONS_CNT=1 EXCHANGE_CODEC=resp \
                       EXCHANGE_FUNNEL_ASYNC=1 LOCAL_MAX_CONNECTIONS=-1 "${tg[@]}" ;;
        funnel) for i in 2 3 4; do tg+=("TARGET_HOST_$i=127.0.0.1" "TARGET_PORT_$i=$RPORT"); done
                set -- EXCHANGE_MODE=funnel PROXY_CONNECTIONS_CNT=4 EXCHANGE_CODEC=resp \
                       EXCHANGE_FUNNEL_ASYNC=1 LOCAL_MAX_CONNECTIONS=-1 "${tg[@]}" ;;
    esac
    if ! start_proximux "$PPORT" "$@"; then
        log "soak: $mode: $TGT_WHY"; rc=1; continue
    fi
    PMX_PID=$TGT_PID
    out="$BENCH_TMP/soak-$mode.txt"
    # soak.py leads its own process group (so cleanup also stops the
    # redis-server it runs) and runs in the background so that a TERM/INT
    # reaches our trap at once instead of after the run.
    setsid python3 "$BENCH_DIR/soak.py" --port "$PPORT" --pid "$PMX_PID" \
        --redis-port "$RPORT" --dir "$BENCH_TMP" --seconds "$SECS" \
        --conns "$CONNS" --restart-every "$EVERY" --label "$mode" >"$out" 2>&1 </dev/null &
    SOAK_PID=$!
    BENCH_PIDS+=("$SOAK_PID")
    tail -f --pid="$SOAK_PID" -n +1 "$out" 2>/dev/null | grep --line-buffered -v '^SUMMARY' >&2 &
    TAIL_PID=$!
    wait "$SOAK_PID"; st=$?
    wait "$TAIL_PID" 2>/dev/null
    bg_stop "$SOAK_PID"
    grep '^SUMMARY' "$out" | cut -f2- >>"$SUMMARY"
    [ "$st" -eq 0 ] || { log "soak: $mode: FAILED (exit $st)"; rc=1; }
    if ! alive "$PMX_PID"; then
        log "soak: $mode: proximux exited: $(tail -1 "$BENCH_TMP/proximux-$PPORT.log")"; rc=1
    fi
    nerr=$(grep -c ERROR "$BENCH_TMP/proximux-$PPORT.log")
    log "  proximux log: $nerr ERROR lines; most frequent:"
    grep ERROR "$BENCH_TMP/proximux-$PPORT.log" | cut -d' ' -f3- \
        | sed 's/#[0-9]*/#N/g; s/[0-9]* requests/N requests/g; s/client 127[.]0[.]0[.]1:[0-9]*/client C/' \
        | sort | uniq -c | sort -rn | head -4 >&2
    bg_stop "$PMX_PID"
done

log ""
log "| mode | requests ok | req/s | restarts | client errors | reconnections | lost writes | mismatches | hangs | RSS KiB start / end / max | RSS trend KiB | fds base/end/after | final check | proximux |"
log "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
while IFS=$'\t' read -r label ok rps rst err rec lost mis hang growth s e mx fds fin alivep; do
    log "| $label | $ok | $rps | $rst | $err | $rec | $lost | $mis | $hang | $s / $e / $mx | $growth | $fds | $fin | $alivep |"
done <"$SUMMARY"
exit "$rc"
