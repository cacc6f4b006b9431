#!/bin/bash
# scan.sh - anti-virus scanning benchmark: scand (through its socket, with
# t/helpers/scan_client) against clamscan on the same files, in the same
# run, plus the memory a worker costs with a large signature set.
#
# Usage: bench/scan.sh               (from anywhere; never run by make test)
# Environment:
#   MAILGW_BUILD  build directory (default <repo>/build)
#   COUNT_4K COUNT_100K COUNT_5M   messages per cell (default 2000 400 40)
#   WORKERS       worker counts to measure (default "1 2")
#   BIG_SIGS      entries of the generated .hdb for the memory test
#                 (default 1000000)
#
# Messages: 4 KB of text; 100 KB with a zip attachment (random data,
# stored, base64); 5 MB with a random binary attachment (base64).  Bases:
# conf/bases (the starter set), so the numbers are about the pipeline
# (queue file, MIME parse, decode, libclamav) more than about signature
# matching.  scand: W parallel scan_client processes each send COUNT/W
# requests (one connection per message, as qmgr does) to a pool of W
# workers; messages/s = COUNT / wall time.  clamscan: one process per W
# share scanning COUNT/W copies of the file in one invocation (so its
# database load is paid once per process), same options as scand's raw
# pass (mail parsing, archives, heuristic alerts, exceeds-max alerts).
#
# Caveat: every request of a cell carries the same message, and both
# libclamav users keep its clean-file cache (scand: per worker), so
# repeated objects hit the cache on both sides; the numbers compare the
# per-message pipeline more than raw matching speed.
#
# Memory: the bases plus a generated .hdb of BIG_SIGS random MD5s; two
# workers each scan a message, then PSS and RSS (from
# /proc/PID/smaps_rollup) of the parent and of each worker are printed:
# PSS far below RSS shows the engine pages are shared copy-on-write.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${MAILGW_BUILD:-$ROOT/build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
MAILGW=$B/bin/mailgw
CLIENT=$B/t/helpers/scan_client
for f in "$MAILGW" "$B/libexec/master" "$B/libexec/scand" "$CLIENT"; do
    [ -x "$f" ] || { echo "scan.sh: $f not built (make B=... all)" >&2; exit 1; }
done
COUNT_4K=${COUNT_4K:-2000}
COUNT_100K=${COUNT_100K:-400}
COUNT_5M=${COUNT_5M:-40}
WORKERS=${WORKERS:-1 2}
BIG_SIGS=${BIG_SIGS:-1000000}

W=$(mktemp -d /tmp/mailgw-bench-scan.XXXXXX)
chmod 755 "$W"
GWPID=
cleanup() {
    [ -n "$GWPID" ] && "$MAILGW" -c "$W/mailgw.conf" stop >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT

make_messages() {
    python3 - "$W" <<'EOF'
import sys, os, base64, io, zipfile, random
d = sys.argv[1]
random.seed(1)
hdr = 'From: a@example.test\nTo: b@example.test\nSubject: %s\nMIME-Version: 1.0\n'
def mixed(subject, name, data):
    b = 'bench-boundary'
    return (hdr % subject + 'Content-Type: multipart/mixed; boundary="%s"\n\n--%s\n'
            'Content-Type: text/plain\n\nsee attachment\n--%s\nContent-Type: '
            'application/octet-stream; name="%s"\nContent-Transfer-Encoding: base64\n\n%s--%s--\n'
            % (b, b, b, name, base64.encodebytes(data).decode(), b))
words = 'the quick brown fox jumps over the lazy dog mail gateway scanning'.split()
text = ''
while len(text) < 4000:
    text += ' '.join(random.choice(words) for _ in range(12)) + '\n'
open(os.path.join(d, 'm4k.eml'), 'w').write(hdr % 'text' + '\n' + text)
z = io.BytesIO()
with zipfile.ZipFile(z, 'w', zipfile.ZIP_STORED) as zf:
    zf.writestr('data.bin', os.urandom(70 * 1024))
open(os.path.join(d, 'm100k.eml'), 'w').write(mixed('zip', 'data.zip', z.getvalue()))
open(os.path.join(d, 'm5m.eml'), 'w').write(mixed('big', 'big.bin', os.urandom(int(3.6 * 1024 * 1024))))
EOF
}

start_gw() {   # start_gw BASES WORKERS
    mkdir -p "$W/q"
    cat > "$W/mailgw.conf" <<EOF
[mailgw.network]
ListenOn=127.0.0.1:1
Hostname=bench.example.test
Postmaster=postmaster@example.test
ProtectedDomains=example.test
[mailgw.path]
QueuePath=$W/q
[mailgw.options]
LogFilename=$W/mailgw.log
LogLevel=3
$( [ "$(id -u)" = 0 ] && echo User=nobody )
[mailgw.ave]
MinWorkers=$2
MaxWorkers=$2
MaxMessagesPerProcess=1000000
[path]
BasesPath=$1
EOF
    : > "$W/mailgw.log"
    MAILGW_DAEMONS=scand setsid "$MAILGW" -c "$W/mailgw.conf" start -f >>"$W/mailgw.log" 2>&1 &
    GWPID=$!
    for _ in $(seq 1 600); do
        [ "$(grep -c 'worker .* started\|pool: ' "$W/mailgw.log" || true)" -ge 1 ] \
            && [ -S "$W/q/private/scand" ] && break
        sleep 0.1
    done
    # the pool is up when a request is answered
    "$CLIENT" -t 120 "$W/q/private/scand" "$W/m4k.eml" >/dev/null
}

stop_gw() {
    "$MAILGW" -c "$W/mailgw.conf" stop >/dev/null 2>&1 || true
    wait "$GWPID" 2>/dev/null || true
    GWPID=
    rm -rf "$W/q"
}

now() { date +%s.%N; }

bench_scand() {   # bench_scand FILE COUNT WORKERS -> msg/s
    local file=$1 count=$2 workers=$3 per=$(( $2 / $3 )) t0 t1
    t0=$(now)
    for _ in $(seq 1 "$workers"); do
        "$CLIENT" -t 300 -n "$per" "$W/q/private/scand" "$file" >/dev/null 2>&1 &
    done
    wait $(jobs -p | grep -v "^$GWPID\$") 2>/dev/null || true
    t1=$(now)
    echo "$count $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }'
}

bench_clamscan() {   # bench_clamscan FILE COUNT WORKERS -> msg/s
    local file=$1 count=$2 workers=$3 per=$(( $2 / $3 )) t0 t1 i
    for i in $(seq 1 "$workers"); do
        mkdir -p "$W/cs$i"
        for j in $(seq 1 "$per"); do ln -f "$file" "$W/cs$i/$j.eml"; done
    done
    t0=$(now)
    for i in $(seq 1 "$workers"); do
        clamscan --no-summary --infected -d "$ROOT/conf/bases" --heuristic-alerts=yes \
            --alert-exceeds-max=yes --alert-encrypted=yes --alert-broken=yes \
            --scan-mail=yes --scan-archive=yes -r "$W/cs$i" >/dev/null 2>&1 &
    done
    wait $(jobs -p | grep -v "^$GWPID\$") 2>/dev/null || true
    t1=$(now)
    rm -rf "$W"/cs*
    echo "$count $t0 $t1" | awk '{ printf "%.1f", $1 / ($3 - $2) }'
}

make_messages
HAVE_CLAMSCAN=yes
command -v clamscan >/dev/null || HAVE_CLAMSCAN=no
echo "scan.sh: $(nproc) CPUs, $(clamscan --version 2>/dev/null || echo 'no clamscan'), bases conf/bases"
printf '%-8s %-8s %8s %12s %12s\n' size workers count scand_msg/s clamscan_msg/s
for w in $WORKERS; do
    start_gw "$ROOT/conf/bases" "$w"
    for cell in "4k $W/m4k.eml $COUNT_4K" "100k $W/m100k.eml $COUNT_100K" "5m $W/m5m.eml $COUNT_5M"; do
        set -- $cell
        s=$(bench_scand "$2" "$3" "$w")
        c=n/a
        [ $HAVE_CLAMSCAN = yes ] && c=$(bench_clamscan "$2" "$3" "$w")
        printf '%-8s %-8s %8s %12s %12s\n' "$1" "$w" "$3" "$s" "$c"
    done
    stop_gw
done
[ $HAVE_CLAMSCAN = yes ] || echo "scan.sh: clamscan not installed (apt-get install clamav): no comparison"

# --- memory with a large signature set ------------------------------------------
mkdir -p "$W/big"
cp "$ROOT/conf/bases/"*.ndb "$ROOT/conf/bases/"*.hdb "$W/big/"
python3 - "$W/big/generated.hdb" "$BIG_SIGS" <<'EOF'
import sys, os, binascii
out, n = sys.argv[1], int(sys.argv[2])
with open(out, 'w') as f:
    for i in range(n):
        f.write('%s:%d:Bench.Generated.%d\n' % (binascii.hexlify(os.urandom(16)).decode(),
                                               1000 + i % 100000, i))
EOF
chmod -R a+rX "$W/big"
t0=$(now)
start_gw "$W/big" 2
t1=$(now)
"$CLIENT" -t 120 "$W/q/private/scand" "$W/m100k.eml" >/dev/null &
"$CLIENT" -t 120 "$W/q/private/scand" "$W/m100k.eml" >/dev/null &
wait $(jobs -p | grep -v "^$GWPID\$") 2>/dev/null || true
sigs=$(grep -o 'bases loaded from [^:]*: [0-9]* signatures' "$W/mailgw.log" | grep -o '[0-9]* signatures')
echo "memory: $sigs, start to first verdict $(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }') s"
parent=$(pgrep -f "libexec/scand -c $W/mailgw.conf" | while read -r p; do
    [ "$(awk '{print $4}' /proc/$p/stat)" != "$(pgrep -f "libexec/master -c $W/mailgw.conf" | head -1)" ] || echo "$p"; done | head -1)
for p in $parent $(pgrep -P "$parent"); do
    role=worker; [ "$p" = "$parent" ] && role=parent
    awk -v p="$p" -v r="$role" '/^Rss:/ { rss = $2 } /^Pss:/ { pss = $2 }
        END { printf "memory: %-6s pid %-7s RSS %7.1f MB  PSS %7.1f MB\n", r, p, rss / 1024, pss / 1024 }' \
        "/proc/$p/smaps_rollup"
done
stop_gw
