#!/usr/bin/env bash
# Connection-scale test: 10,000 concurrent clients held through Proximux
# FIFO mode (resp codec, pipelined, one upstream connection) in front of a
# real redis-server, with a trickle of verified SET/GET requests; reports
# Proximux's RSS (base, idle clients, during the trickle) and bytes per
# client connection.  Then the same for twemproxy (one server connection).
#
#   bash bench/load10k.sh
#
# Environment (see bench/README.md, "Connection scale"):
#   PROXIMUX_BIN    binary to test (default ./proximux, relative to cwd)
#   LOAD_CLIENTS    client connections (default 10000)
#   LOAD_SECONDS    length of the trickle phase (default 60)
#   LOAD_INTERVAL   seconds between one client's SET+GET cycles (default 5)
#   LOAD_PROCS      client processes (default 2)
#   LOAD_TARGETS    "proximux twemproxy" (default both; twemproxy skipped if absent)
#   BENCH_KEEP=1    keep the temp dir with every log
set -u

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

case "${1:-}" in -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

PROXIMUX=${PROXIMUX_BIN:-./proximux}
case "$PROXIMUX" in /*) ;; *) PROXIMUX="$PWD/${PROXIMUX#./}" ;; esac
CLIENTS=${LOAD_CLIENTS:-10000}
SECS=${LOAD_SECONDS:-60}
INTERVAL=${LOAD_INTERVAL:-5}
PROCS=${LOAD_PROCS:-2}
TARGETS=${LOAD_TARGETS:-proximux twemproxy}
for v in "$CLIENTS" "$SECS" "$PROCS"; do
    case "$v" in ''|*[!0-9]*|0) die "LOAD_CLIENTS, LOAD_SECONDS and LOAD_PROCS must be positive integers" ;; esac
done
awk -v i="$INTERVAL" 'BEGIN { exit !(i + 0 > 0) }' || die "LOAD_INTERVAL must be a positive number of seconds"

need redis-server python3 || exit 1
bench_init
PIN_SRV=()    # read by lib.sh's start_* helpers: no pinning here

# File descriptors: the proxy holds one per client plus a few; each client
# process holds its share.  Raise the soft limit to the hard one (inherited
# by everything started below; Proximux also raises its own).
hard=$(ulimit -Hn)
ulimit -n "$hard" 2>/dev/null || die "cannot raise ulimit -n to $hard"
if [ "$hard" != unlimited ] && [ "$hard" -lt $((CLIENTS + 64)) ]; then
    die "hard open-files limit $hard is below LOAD_CLIENTS + 64 = $((CLIENTS + 64)) (the proxy holds every client in one process)"
fi
per_proc=$(( (CLIENTS + PROCS - 1) / PROCS ))
if [ "$hard" != unlimited ] && [ "$hard" -lt $((per_proc + 64)) ]; then
    die "hard open-files limit $hard is too low for $per_proc clients per process: raise LOAD_PROCS"
fi
read -r plo phi </proc/sys/net/ipv4/ip_local_port_range
if [ $((phi - plo)) -lt "$CLIENTS" ]; then
    log "load10k: WARNING: only $((phi - plo)) ephemeral ports for $CLIENTS clients"
fi

log "Proximux connection-scale test  $(date -u '+%Y-%m-%d %H:%M UTC')"
log "  host: $(nproc) CPUs, $(uname -r); open files: soft $(ulimit -n) hard $hard"
log "  clients=$CLIENTS procs=$PROCS trickle=${SECS}s interval=${INTERVAL}s (~$(awk -v c="$CLIENTS" -v i="$INTERVAL" 'BEGIN { printf "%d", 2 * c / i }') req/s)"
log "  proximux: $PROXIMUX ($("$PROXIMUX" -V 2>&1 | head -1)); $(redis-server --version | cut -d' ' -f1-3)"

free_ports 1
RPORT=${PORTS[0]}
start_redis "$RPORT"
SUMMARY="$BENCH_TMP/summary.tsv"
: >"$SUMMARY"
rc=0

run_one() {    # run_one LABEL PORT PID
    local out="$BENCH_TMP/load-$1.txt"
    python3 "$BENCH_DIR/load10k.py" --port "$2" --pid "$3" --label "$1" \
        --clients "$CLIENTS" --procs "$PROCS" --seconds "$SECS" \
        --interval "$INTERVAL" | tee "$out" | grep -v '^SUMMARY' >&2
    local st=${PIPESTATUS[0]}
    grep '^SUMMARY' "$out" | cut -f2- >>"$SUMMARY"
    alive "$3" || { log "load10k: $1 exited during the run"; st=1; }
    return "$st"
}

for tgt in $TARGETS; do
    log ""
    free_ports 2
    case "$tgt" in
        proximux)
            [ -x "$PROXIMUX" ] || { log "load10k: no binary at $PROXIMUX"; rc=1; continue; }
            if ! start_proximux "${PORTS[0]}" EXCHANGE_MODE=fifo PROXY_CONNECTIONS_CNT=1 \
                    EXCHANGE_CODEC=resp EXCHANGE_FUNNEL_ASYNC=1 LOCAL_MAX_CONNECTIONS=-1 \
                    TARGET_HOST_1=127.0.0.1 TARGET_PORT_1="$RPORT"; then
                log "load10k: proximux: $TGT_WHY"; rc=1; continue
            fi ;;
        twemproxy)
            command -v nutcracker >/dev/null || { log "load10k: nutcracker not installed; skipped"; continue; }
            start_twemproxy "${PORTS[0]}" "${PORTS[1]}" "$RPORT" resp || {
                log "load10k: twemproxy did not start"; continue; } ;;
        *) die "unknown target $tgt (proximux, twemproxy)" ;;
    esac
    if ! python3 "$BENCH_DIR/benchtool.py" check-resp "${PORTS[0]}"; then
        log "load10k: $tgt failed the SET/GET/PING check"; rc=1
    elif ! run_one "$tgt" "${PORTS[0]}" "$TGT_PID"; then
        log "load10k: $tgt: FAILED (see above)"; rc=1
    fi
    if [ "$tgt" = proximux ] && [ -s "$BENCH_TMP/proximux-${PORTS[0]}.log" ]; then
        log "load10k: proximux log (last 5 lines):"
        tail -5 "$BENCH_TMP/proximux-${PORTS[0]}.log" >&2
    fi
    bg_stop "$TGT_PID"
done

log ""
python3 - "$SUMMARY" "$CLIENTS" >&2 <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def mib(v):
    return "n/a" if v in ("n/a", "None") else "%.1f" % (int(v) / 1024)
def per(v, base, n):
    return "n/a" if v in ("n/a", "None") or base in ("n/a", "None") or n == 0 \
        else "%.0f" % ((int(v) - int(base)) * 1024 / n)
print("| proxy | clients | RSS base MiB | RSS idle MiB | RSS trickle avg/max MiB | B/idle client | B/client trickle (avg) | B/client idle after use | requests | correct | incorrect | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (label, n, base, idle, tavg, tmax, used, end, ok, bad, err, reqs, held) in rows:
    n = int(n)
    print("| %s | %d | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s |" % (
        label, n, mib(base), mib(idle), mib(tavg), mib(tmax), per(idle, base, n),
        per(tavg, base, n), per(used, base, n), reqs, ok, bad, err))
EOF
exit "$rc"
