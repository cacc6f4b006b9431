#!/bin/bash
# bench/relay.sh - relay throughput: smtp-source -> mailgw -> smtp-sink
# against smtp-source -> Postfix -> smtp-sink, same machine, same run.
#
#   bench/relay.sh [BUILD_DIR]          (default: build; run as root, for
#                                        Postfix's master)
#   SIZES="4096 102400" SESSIONS="1 10 50" COUNT_SMALL=2000 COUNT_LARGE=500
#   REPEAT=1   runs per cell, mailgw and Postfix alternating; with more,
#              each column is the median over the runs (a shared machine
#              is noisy)
#   FLOOR=1    also smtp-source straight into smtp-sink (no relay): the
#              machine's ceiling for each cell, with the CPU per message
#              that smtp-source and smtp-sink take themselves; a relay
#              cannot pass the first, and shares the cores with the second
#   SCAN=1     mailgw also scans every message (scand with the starter
#              bases, the default policy: X-Anti-Virus added, so every
#              message is rewritten; quarantine daemon running); Postfix
#              still only relays, so the ratios then price the scanning
#
# A private Postfix instance lives in a temporary directory (its own
# main.cf/master.cf: smtpd on a loopback port, relayhost = the sink,
# queue_directory in the temp dir, chroot off, maillog_file); mailgw runs
# with qmgr, smtpd, smtp only.  Both relay to the same smtp-sink.  Both
# fsync every queue file before the 250 (Postfix by design; mailgw also
# fsyncs the directory, shared between commits).
#
# Per run: messages/s (from the first connection until the MTA's queue is
# empty again), CPU per message (utime+stime of the MTA's processes,
# including reaped children, from /proc), mean end-to-end delay (the
# delay= of the per-recipient "status=sent" log lines), and the ratios
# mailgw/Postfix.  Never run by `make test`.
set -eu
B=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$ROOT" && cd "$B" && pwd)
SIZES=${SIZES:-"4096 102400"}
SESSIONS=${SESSIONS:-"1 10 50"}
COUNT_SMALL=${COUNT_SMALL:-2000}
COUNT_LARGE=${COUNT_LARGE:-500}
REPEAT=${REPEAT:-1}
HZ=$(getconf CLK_TCK)
T=$(mktemp -d /tmp/relay-bench.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
    [ -n "${MG_PID:-}" ] && "$B/bin/mailgw" -c "$T/mg/mailgw.conf" stop >/dev/null 2>&1 || true
    pf_stop "$T/pf" >/dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

SINK=$(free_port); MGPORT=$(free_port); PFPORT=$(free_port)
/usr/sbin/smtp-sink -u nobody 127.0.0.1:$SINK 1024 & PIDS+=($!)
SINK_PID=$!
wait_port $SINK

# ---- mailgw ----
mkdir -p "$T/mg"; chmod 755 "$T/mg"
cat > "$T/mg/mailgw.conf" <<EOF
[mailgw.network]
ListenOn = 127.0.0.1:$MGPORT
Hostname = gw.example.test
Postmaster = postmaster@example.test
ProtectedDomains = example.test
[mailgw.access]
RelayRule = allow from 127.0.0.0/8 to *
[mailgw.forward]
ForwardRoute = * [127.0.0.1:$SINK]
[mailgw.limits]
IncomingSessions = 200
MaximalIncomingSessionsPerIP = 200
MaximalIncomingMessagesPerSession = 1024
OutgoingSessions = 50
MaximalOutgoingSessionsPerHost = 50
MaximalIncomingMessageSize = 204800
[mailgw.path]
QueuePath = $T/mg/queue
[path]
BasesPath = $ROOT/conf/bases
[mailgw.options]
LogFilename = $T/mg/mailgw.log
User = nobody
EOF
DAEMONS=qmgr,smtpd,smtp
[ "${SCAN:-0}" = 1 ] && DAEMONS=qmgr,smtpd,smtp,scand,quarantine
MAILGW_DAEMONS=$DAEMONS "$B/bin/mailgw" -c "$T/mg/mailgw.conf" start -f >>"$T/mg/mailgw.log" 2>&1 &
MG_PID=$!; PIDS+=($MG_PID)
wait_port $MGPORT
if [ "${SCAN:-0}" = 1 ]; then   # the first scan waits for the bases
    for _ in $(seq 300); do grep -q 'anti-virus bases loaded' "$T/mg/mailgw.log" && break; sleep 0.1; done
fi

# ---- Postfix ---- (the same private instance as bench/intake.sh, relaying)
. "$ROOT/bench/lib/postfix.sh"
. "$ROOT/bench/lib/median.sh"
PF_DEFER_TRANSPORTS= PF_EXTRA_MAIN="default_destination_concurrency_limit = 50
smtp_destination_concurrency_limit = 50
message_size_limit = 204800000
smtp_connection_cache_on_demand = no" pf_start "$T/pf" $PFPORT $SINK || exit 1

# ---- measurement helpers ----
descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
tree_ticks() {          # utime+stime (+ reaped children) of pid and all its descendants
    local root=$1 sum=0 p f
    for p in $root $(descendants "$root"); do
        f=$(cat /proc/$p/stat 2>/dev/null) || continue
        f=${f##*) }
        set -- $f
        sum=$((sum + ${12} + ${13} + ${14} + ${15}))
    done
    echo $sum
}
mg_master() { cat "$T/mg/queue/pid/master.pid" 2>/dev/null | head -1; }
pf_master() { head -1 "$T/pf/queue/pid/master.pid" 2>/dev/null | tr -d ' '; }
mg_queued() { find "$T/mg/queue/incoming" "$T/mg/queue/active" "$T/mg/queue/deferred" -type f 2>/dev/null | wc -l; }
pf_queued() { find "$T/pf/queue/maildrop" "$T/pf/queue/incoming" "$T/pf/queue/active" "$T/pf/queue/deferred" -type f 2>/dev/null | wc -l; }
mean_delay() {          # mean delay= of status=sent lines appended since byte offset $2
    tail -c +$(( $2 + 1 )) "$1" 2>/dev/null | grep 'status=sent' |
        sed -n 's/.* delay=\([0-9.]*\),.*/\1/p' | awk '{s+=$1; n++} END {if (n) printf "%.3f", s/n; else print "n/a"}'
}

run() {                 # run NAME PORT SIZE SESSIONS COUNT -> "msgs/s cpu_ms/msg delay"
    local name=$1 port=$2 size=$3 sess=$4 count=$5 master log off t0 t1 c0 c1
    if [ "$name" = mailgw ]; then master=$(mg_master); log="$T/mg/mailgw.log"; else master=$(pf_master); log="$T/pf/maillog"; fi
    off=$(stat -c %s "$log" 2>/dev/null || echo 0)
    c0=$(tree_ticks "$master"); t0=$(date +%s.%N)
    /usr/sbin/smtp-source -s "$sess" -m "$count" -l "$size" -f bench@example.org \
        -t user@example.test 127.0.0.1:$port >/dev/null 2>&1
    for _ in $(seq 6000); do
        [ "$("${name:0:2}_queued" 2>/dev/null || true)" = 0 ] && break
        sleep 0.05
    done
    t1=$(date +%s.%N); c1=$(tree_ticks "$master")
    sleep 0.3
    awk -v n="$count" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$HZ" -v d="$(mean_delay "$log" "$off")" \
        'BEGIN { printf "%.1f %.3f %s\n", n / (t1 - t0), (c1 - c0) * 1000 / hz / n, d }'
}
direct() {              # direct SIZE SESSIONS COUNT -> "msgs/s load_cpu_ms/msg"
    local size=$1 sess=$2 count=$3 t0 t1 c0 c1 src
    c0=$(tree_ticks "$SINK_PID"); t0=$(date +%s.%N)
    src=$(/usr/bin/time -f '%U %S' /usr/sbin/smtp-source -s "$sess" -m "$count" -l "$size" \
        -f bench@example.org -t user@example.test 127.0.0.1:$SINK 2>&1 >/dev/null | tail -1)
    t1=$(date +%s.%N); c1=$(tree_ticks "$SINK_PID")
    awk -v n="$count" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$HZ" -v src="$src" \
        'BEGIN { split(src, u, " "); printf "%.1f %.3f\n", n / (t1 - t0),
                 ((c1 - c0) / hz + u[1] + u[2]) * 1000 / n }'
}
ma_queued() { mg_queued; }
po_queued() { pf_queued; }

FLOOR=${FLOOR:-0}
printf "%-7s %-5s | %10s %10s %8s | %10s %10s %8s | %7s %7s" size sess \
    "mailgw m/s" "cpu ms/m" "delay s" "postfix m/s" "cpu ms/m" "delay s" "rate x" "cpu /"
[ "$FLOOR" = 1 ] && printf " | %10s %10s %7s" "direct m/s" "load ms/m" "max x"
echo
for size in $SIZES; do
    count=$COUNT_SMALL; [ "$size" -gt 16384 ] && count=$COUNT_LARGE
    for sess in $SESSIONS; do
        ma=""; pa=""; da=""
        for _ in $(seq "$REPEAT"); do          # alternating: the same noise for both
            ma="$ma$(run mailgw $MGPORT "$size" "$sess" "$count")
"
            pa="$pa$(run postfix $PFPORT "$size" "$sess" "$count")
"
            [ "$FLOOR" = 1 ] && da="$da$(direct "$size" "$sess" "$count")
"
        done
        read -r mr mc md < <(printf '%s' "$ma" | median_columns 3)
        read -r pr pc pd < <(printf '%s' "$pa" | median_columns 3)
        printf "%-7s %-5s | %10s %10s %8s | %10s %10s %8s | %7s %7s" "$size" "$sess" \
            "$mr" "$mc" "$md" "$pr" "$pc" "$pd" \
            "$(awk -v a="$mr" -v b="$pr" 'BEGIN { printf "%.2f", a / b }')" \
            "$(awk -v a="$mc" -v b="$pc" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }')"
        if [ "$FLOOR" = 1 ]; then
            read -r dr dc < <(printf '%s' "$da" | median_columns 2)
            printf " | %10s %10s %7s" "$dr" "$dc" "$(awk -v a="$dr" -v b="$pr" 'BEGIN { printf "%.2f", a / b }')"
        fi
        echo
    done
done
echo "rate x = mailgw msgs/s / Postfix msgs/s; cpu / = Postfix CPU per message / mailgw's; median of $REPEAT run(s) per cell"
[ "$FLOOR" = 1 ] && echo "direct = smtp-source straight into smtp-sink; load = their CPU per message; max x = direct / Postfix msgs/s (no relay can beat it here)"
