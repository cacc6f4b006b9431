#!/bin/bash
# intake.sh - intake benchmark: smtp-source -> mailgw against smtp-source
# -> Postfix's smtpd+cleanup, on this machine, in the same run.
#
# Usage: bench/intake.sh            (from anywhere; never run by make test)
# Environment:
#   MAILGW_BUILD   build directory with bin/mailgw and libexec/ (default
#                  <repo>/build)
#   COUNT_4K       messages per 4 KB cell (default 2000)
#   COUNT_100K     messages per 100 KB cell (default 500)
#   SESSIONS       smtp-source -s values (default "1 10 50")
#   SIZES          smtp-source -l values in bytes (default "4096 102400")
#   REPEAT         runs per cell (default 1); with more, each column is
#                  the median over the runs (a shared machine is noisy)
#   SYSTEMS        default "mailgw postfix postfix-hold" (Postfix needs root)
#   PF_EXTRA_MAIN  extra Postfix main.cf lines (see bench/lib/postfix.sh)
#   MAILGW_DAEMONS the daemons master spawns (default "qmgr,smtpd,smtp":
#                  no scand/quarantine, scanning is not intake)
#
# Two Postfix variants: "postfix" is the one the issue names
# (defer_transports = smtp: qmgr moves each message to deferred/ through
# the error(8) agent, which writes a defer log: part of the CPU is not
# intake); "postfix-hold" adds "smtpd_data_restrictions =
# check_client_access static:HOLD" so cleanup writes every message to
# hold/ and nothing else runs: smtpd+cleanup only, the strict intake
# comparison.
#
# Each cell (system, size, sessions) gets a fresh instance in a temporary
# directory: start, a warm-up of 2 x sessions messages (not measured, so
# Postfix's smtpd processes exist), wait until the CPU use of the process
# tree settles, then `smtp-source -s N -m COUNT -l SIZE`, wait until it
# settles again, count what was queued, stop.  Delivery is out of the
# picture: mailgw's next hop is a dead loopback port (and `mailgw
# send-off` is tried), Postfix has defer_transports = smtp and a dead
# relayhost.
#
# Measured: messages/s = COUNT / wall time of smtp-source; CPU per message
# = the growth of utime+stime+cutime+cstime (/proc/PID/stat) summed over
# the master process and all its descendants (children that exit are
# counted through the master's cutime/cstime once reaped) / COUNT.  The
# client's own CPU is not counted.  Output: one line per cell, then a
# table with both systems side by side and the mailgw/Postfix ratios
# (msg/s ratio > 1: mailgw faster; CPU ratio < 1: mailgw cheaper).
# Diagnostics: "intake.sh: ..." on stderr; the work directory is removed
# at exit unless BENCH_KEEP=1.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${MAILGW_BUILD:-$ROOT/build}" 2>/dev/null && pwd) || {
    echo "intake.sh: no build directory ${MAILGW_BUILD:-$ROOT/build}" >&2; exit 1; }
COUNT_4K=${COUNT_4K:-2000}
COUNT_100K=${COUNT_100K:-500}
SESSIONS=${SESSIONS:-"1 10 50"}
SIZES=${SIZES:-"4096 102400"}
SYSTEMS=${SYSTEMS:-"mailgw postfix postfix-hold"}
REPEAT=${REPEAT:-1}
PF_HOLD_LINE="smtpd_data_restrictions = check_client_access static:HOLD"
SMTP_SOURCE=/usr/sbin/smtp-source
HZ=$(getconf CLK_TCK)
export MAILGW_DAEMONS=${MAILGW_DAEMONS:-qmgr,smtpd,smtp}

. "$ROOT/bench/lib/postfix.sh"
. "$ROOT/bench/lib/median.sh"

log() { echo "intake.sh: $*" >&2; }

WORK=$(mktemp -d /tmp/mailgw-bench-XXXXXX) || exit 1
chmod 0755 "$WORK"
CUR_SYS="" CUR_DIR=""
cleanup() {
    [ -n "$CUR_SYS" ] && sys_stop "$CUR_SYS" "$CUR_DIR"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Clock ticks used so far by PID and every live descendant.
tree_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
        { pid = $1 + 0; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
          ppid[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15]; pids[pid] = 1 }
        END { sum = 0; want[root] = 1; changed = 1
              while (changed) { changed = 0
                  for (p in pids) if (!(p in want) && (ppid[p] in want)) { want[p] = 1; changed = 1 } }
              for (p in want) if (p in t) sum += t[p]
              print sum }'
}

# Wait (bounded: 15 s) until the tree uses at most 2 ticks in 0.5 s.
settle() {
    local a b i
    for i in $(seq 30); do
        a=$(tree_ticks "$1"); sleep 0.5; b=$(tree_ticks "$1")
        [ $((b - a)) -le 2 ] && return 0
    done
    log "process tree $1 did not settle"
}

wait_banner() {
    local i line
    for i in $(seq 100); do
        if exec 9<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null; then
            line=""
            read -r -t 2 line <&9
            exec 9>&-
            case "$line" in 220*) return 0 ;; esac
        fi
        sleep 0.1
    done
    return 1
}

# ---- mailgw ----
mg_start() {
    local dir=$1 port=$2 dead=$3
    mkdir -p "$dir" && chmod 0755 "$dir"
    {
        echo "[mailgw.network]"
        echo "ListenOn=127.0.0.1:$port"
        echo "Hostname=gw.bench.test"
        echo "Postmaster=postmaster@example.test"
        echo "ProtectedDomains=example.test"
        echo "[mailgw.access]"
        echo "RelayRule=allow from 127.0.0.0/8 to *"
        echo "[mailgw.forward]"
        echo "ForwardRoute=* [127.0.0.1:$dead]"
        echo "[mailgw.limits]"
        echo "IncomingSessions=200"
        echo "MaximalIncomingSessionsPerIP=200"
        echo "MaximalIncomingMessagesPerSession=1000"
        echo "[mailgw.path]"
        echo "QueuePath=$dir/queue"
        echo "[mailgw.options]"
        echo "LogFilename=$dir/mailgw.log"
        [ "$(id -u)" = 0 ] && echo "User=nobody"
    } >"$dir/mailgw.conf"
    "$BUILD/bin/mailgw" -c "$dir/mailgw.conf" start >"$dir/start.out" 2>&1 || {
        log "mailgw start failed:"; cat "$dir/start.out" >&2; return 1; }
    wait_banner "$port" || { log "mailgw: no SMTP banner on $port"; return 1; }
    "$BUILD/bin/mailgw" -c "$dir/mailgw.conf" send-off >"$dir/send-off.out" 2>&1 ||
        log "mailgw send-off not supported ($(head -c 200 "$dir/send-off.out")): next hop is dead"
    return 0
}

mg_pid() { tr -dc 0-9 <"$1/queue/pid/master.pid" 2>/dev/null; }

mg_stop() {
    local dir=$1 pid i
    pid=$(mg_pid "$dir")
    "$BUILD/bin/mailgw" -c "$dir/mailgw.conf" stop >/dev/null 2>&1
    for i in $(seq 200); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "mailgw master $pid did not stop: SIGKILL"
    kill -9 "$pid"
}

mg_queued() {
    find "$1/queue/incoming" "$1/queue/active" "$1/queue/deferred" -type f 2>/dev/null | wc -l
}

# ---- Postfix ----
pf_queued() {
    find "$1/queue/incoming" "$1/queue/active" "$1/queue/deferred" "$1/queue/hold" \
        -type f 2>/dev/null | wc -l
}

# ---- one system, dispatched ----
sys_start() {
    case $1 in
    mailgw) mg_start "$2" "$3" "$4" ;;
    postfix) pf_start "$2" "$3" "$4" ;;
    postfix-hold) PF_EXTRA_MAIN="${PF_EXTRA_MAIN:-}
$PF_HOLD_LINE" pf_start "$2" "$3" "$4" ;;
    *) log "unknown system $1"; return 1 ;;
    esac
}
sys_stop() { case $1 in mailgw) mg_stop "$2" ;; postfix*) pf_stop "$2" ;; esac; }
sys_pid() { case $1 in mailgw) mg_pid "$2" ;; postfix*) pf_pid "$2" ;; esac; }
sys_queued() { case $1 in mailgw) mg_queued "$2" ;; postfix*) pf_queued "$2" ;; esac; }

# run_cell SYSTEM SIZE SESSIONS COUNT -> "msg/s cpu_ms/msg queued" on stdout
run_cell() {
    local sys=$1 size=$2 sess=$3 count=$4 dir port dead pid t0 t1 c0 c1 warm rc
    dir=$WORK/$sys-$size-$sess
    port=$(free_port) dead=$(free_port)
    CUR_SYS=$sys CUR_DIR=$dir
    mkdir -p "$dir" && chmod 0755 "$dir"
    sys_start "$sys" "$dir" "$port" "$dead" || { sys_stop "$sys" "$dir"; CUR_SYS=""; return 1; }
    pid=$(sys_pid "$sys" "$dir")
    warm=$((sess * 2))
    "$SMTP_SOURCE" -s "$sess" -m "$warm" -l "$size" -f warm@client.test \
        -t rcpt@example.test "127.0.0.1:$port" >/dev/null 2>&1
    settle "$pid"
    c0=$(tree_ticks "$pid")
    t0=$(date +%s.%N)
    "$SMTP_SOURCE" -s "$sess" -m "$count" -l "$size" -f bench@client.test \
        -t rcpt@example.test "127.0.0.1:$port" >"$dir/smtp-source.out" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    settle "$pid"
    c1=$(tree_ticks "$pid")
    [ $rc -eq 0 ] || log "$sys size=$size s=$sess: smtp-source exit $rc: $(tail -n 2 "$dir/smtp-source.out")"
    local queued
    queued=$(sys_queued "$sys" "$dir")
    sys_stop "$sys" "$dir"
    CUR_SYS=""
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$dir"
    awk -v n="$count" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v hz="$HZ" \
        -v q="$((queued - warm))" \
        'BEGIN { printf "%.1f %.3f %d\n", n / (t1 - t0), c * 1000 / hz / n, q }'
}

# run_median SYSTEM SIZE SESSIONS COUNT: REPEAT runs, the median of each
# column (the lower middle one for an even count).
run_median() {
    local i out all=""
    for i in $(seq "$REPEAT"); do
        out=$(run_cell "$@") || return 1
        all="$all$out
"
    done
    printf '%s' "$all" | median_columns 3
}

main() {
    local sys size sess count out have_pf=1
    [ -x "$SMTP_SOURCE" ] || { log "$SMTP_SOURCE missing (postfix package)"; exit 1; }
    [ -x "$BUILD/bin/mailgw" ] || { log "$BUILD/bin/mailgw missing: make first"; exit 1; }
    case " $SYSTEMS " in *" postfix"*) pf_available || have_pf=0 ;; esac
    echo "# intake benchmark $(date -u +%FT%TZ) on $(uname -n): $(nproc) CPUs," \
        "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "# mailgw build $BUILD, daemons $MAILGW_DAEMONS; Postfix $(postconf -d mail_version 2>/dev/null | sed 's/.* = //'); median of $REPEAT run(s) per cell"
    printf '%-12s %7s %5s %6s %10s %12s %7s\n' system size sess msgs msg/s cpu_ms/msg queued
    declare -gA R
    for size in $SIZES; do
        count=$COUNT_4K
        [ "$size" -gt 16384 ] && count=$COUNT_100K
        for sess in $SESSIONS; do
            for sys in $SYSTEMS; do
                case $sys in postfix*) [ $have_pf = 0 ] && continue ;; esac
                out=$(run_median "$sys" "$size" "$sess" "$count") || { log "$sys $size $sess failed"; continue; }
                R[$sys,$size,$sess]=$out
                set -- $out
                printf '%-12s %7s %5s %6s %10s %12s %7s\n' "$sys" "$size" "$sess" "$count" "$1" "$2" "$3"
            done
        done
    done
    for sys in $SYSTEMS; do
        case $sys in postfix*) [ $have_pf = 1 ] && summary "$sys" ;; esac
    done
}

# summary POSTFIX-VARIANT: mailgw against it, ratios mailgw / Postfix.
summary() {
    local size sess m p
    echo
    echo "mailgw vs $1:"
    echo "| size | sessions | mailgw msg/s | $1 msg/s | msg/s ratio | mailgw CPU ms/msg | $1 CPU ms/msg | CPU ratio |"
    echo "|---|---|---|---|---|---|---|---|"
    for size in $SIZES; do
        for sess in $SESSIONS; do
            m=${R[mailgw,$size,$sess]:-"- - -"}
            p=${R[$1,$size,$sess]:-"- - -"}
            # shellcheck disable=SC2086
            awk -v size="$size" -v sess="$sess" -v m="$m" -v p="$p" 'BEGIN {
                split(m, a, " "); split(p, b, " ")
                r1 = (a[1] != "-" && b[1] != "-" && b[1] > 0) ? sprintf("%.2f", a[1] / b[1]) : "-"
                r2 = (a[2] != "-" && b[2] != "-" && b[2] > 0) ? sprintf("%.2f", a[2] / b[2]) : "-"
                printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
                    (size >= 1024 ? int(size / 1024) " KB" : size " B"), sess,
                    a[1], b[1], r1, a[2], b[2], r2 }'
        done
    done
}

main "$@"
