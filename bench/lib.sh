# shellcheck shell=bash disable=SC2034
# bench/lib.sh: helpers for bench/run.sh (sourced, bash).  SC2034: the
# variables set here (PORTS, PIN_GEN, TGT_WHY...) are read by run.sh.
#
# Process bookkeeping: every background process goes through bg_start, which
# records its pid; bench_cleanup (installed as the EXIT trap by bench_init)
# stops each recorded pid by id, TERM then KILL, and removes the temp dir.

BENCH_PIDS=()
BENCH_TMP=""

log()  { printf '%s\n' "$*" >&2; }
die()  { log "bench: $*"; exit 1; }

bench_init() {
    BENCH_TMP=$(mktemp -d /tmp/proximux-bench.XXXXXX) || die "mktemp failed"
    trap bench_cleanup EXIT
    trap 'log "bench: interrupted"; exit 130' INT
    trap 'log "bench: terminated"; exit 143' TERM
}

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        [ -n "$pid" ] && kill_group TERM "$pid"
    done
    for pid in "${BENCH_PIDS[@]}"; do
        [ -n "$pid" ] && proc_wait_gone "$pid" 30
    done
    BENCH_PIDS=()
    if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            log "bench: logs kept in $BENCH_TMP"
        else
            rm -rf "$BENCH_TMP"
        fi
    fi
}

# proc_wait_gone PID TENTHS: wait up to TENTHS/10 s, then SIGKILL; reap.
proc_wait_gone() {
    local pid=$1 i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt "$2" ]; do
        sleep 0.1; i=$((i + 1))
    done
    kill_group KILL "$pid"
    wait "$pid" 2>/dev/null
    return 0
}

# kill_group SIG PID: signal the process group led by PID (one we started
# with setsid), and PID itself in case it left the group.
kill_group() {
    kill -"$1" -- -"$2" 2>/dev/null
    kill -"$1" "$2" 2>/dev/null
}

# bg_start LOGFILE CMD...: start CMD in the background (stdout+stderr to
# LOGFILE), record its pid; the pid is left in BG_PID.
bg_start() {
    local logf=$1; shift
    # setsid: the process leads its own process group (pgid == pid, since a
    # background child is never a group leader setsid does not fork), so
    # stopping it also stops any helper it spawned.
    setsid "$@" >"$logf" 2>&1 </dev/null &
    BG_PID=$!
    BENCH_PIDS+=("$BG_PID")
}

# bg_stop PID: stop one process we started and forget it.
bg_stop() {
    local pid=$1 i
    [ -z "$pid" ] && return 0
    kill_group TERM "$pid"
    proc_wait_gone "$pid" 50
    for i in "${!BENCH_PIDS[@]}"; do
        [ "${BENCH_PIDS[$i]}" = "$pid" ] && unset 'BENCH_PIDS[i]'
    done
    return 0
}

alive() { kill -0 "$1" 2>/dev/null; }

# free_ports N: set array PORTS to N free loopback ports.
free_ports() {
    mapfile -t PORTS < <(python3 "$BENCH_DIR/benchtool.py" freeports "$1")
}

# wait_port PORT PID [SECS]: wait until PORT accepts while PID lives.
wait_port() {
    local port=$1 pid=$2 secs=${3:-5} end
    end=$((SECONDS + secs))
    while [ "$SECONDS" -le "$end" ]; do
        alive "$pid" || return 1
        python3 "$BENCH_DIR/benchtool.py" waitport "$port" 0.5 && return 0
    done
    return 1
}

# Pinning (BENCH_PIN=1): servers and proxies on core 1, load generator on
# core 0.  PIN_SRV / PIN_GEN are command prefixes (empty when off).
setup_pinning() {
    PIN_SRV=(); PIN_GEN=()
    if [ "${BENCH_PIN:-0}" = 1 ]; then
        command -v taskset >/dev/null || die "BENCH_PIN=1 needs taskset (util-linux)"
        if [ "$(nproc)" -lt 2 ]; then
            log "bench: BENCH_PIN=1 ignored: fewer than 2 CPUs"
        else
            PIN_SRV=(taskset -c 1); PIN_GEN=(taskset -c 0)
        fi
    fi
}

need() {
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "bench: missing: ${missing[*]}"
    log "bench: install with: apt-get install -y redis-server redis-tools haproxy nutcracker memcached libmemcached-tools"
    return 1
}

# ------------------------------------------------------------- servers

# start_redis PORT -> REDIS_PID
start_redis() {
    bg_start "$BENCH_TMP/redis-$1.log" "${PIN_SRV[@]}" redis-server \
        --port "$1" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --protected-mode no --dir "$BENCH_TMP" --maxclients 10000
    REDIS_PID=$BG_PID
    wait_port "$1" "$REDIS_PID" 10 || { tail -5 "$BENCH_TMP/redis-$1.log" >&2; die "redis-server did not start"; }
}

# start_memcached PORT -> MEMCACHED_PID (one worker thread, like redis)
start_memcached() {
    bg_start "$BENCH_TMP/memcached-$1.log" "${PIN_SRV[@]}" memcached \
        -u root -l 127.0.0.1 -p "$1" -U 0 -t 1 -m 256 -c 10000
    MEMCACHED_PID=$BG_PID
    wait_port "$1" "$MEMCACHED_PID" 10 || { tail -5 "$BENCH_TMP/memcached-$1.log" >&2; die "memcached did not start"; }
}

# start_haproxy LISTEN_PORT BACKEND_PORT -> TGT_PID (tcp mode, one thread)
start_haproxy() {
    local cfg="$BENCH_TMP/haproxy-$1.cfg"
    cat >"$cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode tcp
    maxconn 4096
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend fe
    bind 127.0.0.1:$1
    default_backend be

backend be
    server s1 127.0.0.1:$2 maxconn 4096
EOF
    bg_start "$BENCH_TMP/haproxy-$1.log" "${PIN_SRV[@]}" haproxy -db -f "$cfg"
    TGT_PID=$BG_PID
    wait_port "$1" "$TGT_PID" 10
}

# start_twemproxy LISTEN_PORT STATS_PORT SERVER_PORT redis|memcache -> TGT_PID
start_twemproxy() {
    local cfg="$BENCH_TMP/nutcracker-$1.yml" redis=true
    [ "$4" = memcache ] && redis=false
    cat >"$cfg" <<EOF
bench:
  listen: 127.0.0.1:$1
  hash: fnv1a_64
  distribution: ketama
  redis: $redis
  server_connections: 1
  auto_eject_hosts: false
  preconnect: true
  servers:
    - 127.0.0.1:$3:1
EOF
    bg_start "$BENCH_TMP/nutcracker-$1.log" "${PIN_SRV[@]}" nutcracker \
        -c "$cfg" -s "$2" -a 127.0.0.1 -v 1 -o "$BENCH_TMP/nutcracker-$1.out" \
        -p "$BENCH_TMP/nutcracker-$1.pid"
    TGT_PID=$BG_PID
    wait_port "$1" "$TGT_PID" 10
}

# start_proximux LISTEN_PORT NAME=VALUE... -> TGT_PID
# Runs with a clean environment holding only the given settings.
start_proximux() {
    local port=$1; shift
    TGT_PID=""
    if [ ! -x "$PROXIMUX" ]; then
        TGT_WHY="no binary at $PROXIMUX"
        return 1
    fi
    # BENCH_ADMIN=1: the admin listener on, /metrics scraped every second
    # (the cost of statistics and of being watched).
    local admin=()
    if [ "${PMX_ADMIN:-${BENCH_ADMIN:-0}}" = 1 ]; then
        free_ports 1
        admin=(ADMIN_LISTEN="127.0.0.1:${PORTS[0]}")
    fi
    bg_start "$BENCH_TMP/proximux-$port.log" env -i PATH="$PATH" \
        LOCAL_HOST=127.0.0.1 LOCAL_PORT="$port" LOG_LEVEL=1 "${admin[@]}" ${PMX_ENV[@]+"${PMX_ENV[@]}"} "$@" \
        "${PIN_SRV[@]}" "$PROXIMUX" ${PMX_ARGS[@]+"${PMX_ARGS[@]}"}
    TGT_PID=$BG_PID
    if [ "${#admin[@]}" -gt 0 ]; then
        bg_start "$BENCH_TMP/scraper-$port.log" bash -c \
            'while kill -0 "$1" 2>/dev/null; do python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2).read()" "$2" || true; sleep 1; done' \
            scraper "$TGT_PID" "http://${admin[0]#ADMIN_LISTEN=}/metrics"
    fi
    if ! wait_port "$port" "$TGT_PID" 10; then
        if alive "$TGT_PID"; then
            TGT_WHY="did not listen on $port within 10 s"
        else
            TGT_WHY="exited: $(head -c 200 "$BENCH_TMP/proximux-$port.log" | head -1)"
        fi
        return 1
    fi
}
