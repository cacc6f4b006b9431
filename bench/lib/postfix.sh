#!/bin/bash
# postfix.sh - a private Postfix instance for the intake benchmark: its
# own config directory, queue and data directory under DIR, smtpd on
# 127.0.0.1:PORT, everything for the network deferred (defer_transports
# = smtp, relayhost a dead loopback port), no local delivery.  Its queue
# just fills, so smtp-source -> smtpd -> cleanup -> queue is measured.
#
# Usage (sourced: functions; executed: the same as commands):
#   postfix.sh start DIR PORT SINKPORT   write DIR/etc/main.cf + master.cf
#                                        (queue: DIR/queue, data: DIR/data,
#                                        log: DIR/maillog), start, wait
#                                        (bounded) for the port
#   postfix.sh stop DIR                  postfix -c DIR/etc stop (bounded),
#                                        then SIGKILL the master if needed
#   postfix.sh pid DIR                   the master's pid
#   postfix.sh available                 exit 0 when an instance can run
#
# PF_DEFER_TRANSPORTS (environment): defer_transports, default "smtp" (the
# queue just fills); empty for a relaying instance (bench/relay.sh).
# PF_EXTRA_MAIN (environment): extra main.cf lines, e.g.
# "smtpd_data_restrictions = check_client_access static:HOLD" to put every
# message on hold (cleanup writes it to hold/, qmgr never touches it).
# Needs root (postfix(1) and master(8) refuse anyone else) and the
# postfix user (mail_owner) and postdrop group from the postfix package.
# Security: DIR must be a fresh private directory (mktemp -d); nothing
# outside it is written, /etc/postfix is only read (meta_directory).
# Diagnostics: DIR/maillog (postlogd), "postfix.sh: ..." on stderr.

pf_log() { echo "postfix.sh: $*" >&2; }

pf_available() {
    [ "$(id -u)" = 0 ] || { pf_log "not root: postfix(1) needs root"; return 1; }
    [ -x /usr/sbin/postfix ] || { pf_log "/usr/sbin/postfix missing"; return 1; }
    getent passwd postfix >/dev/null || { pf_log "no postfix user"; return 1; }
    getent group postdrop >/dev/null || { pf_log "no postdrop group"; return 1; }
    return 0
}

pf_write_config() {
    dir=$1 port=$2 sink=$3
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data" || return 1
    chown root "$dir/queue" && chmod 0755 "$dir/queue" || return 1
    chown postfix "$dir/data" && chmod 0700 "$dir/data" || return 1
    cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = pf.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
relayhost = [127.0.0.1]:$sink
default_transport = smtp
relay_transport = smtp
defer_transports = ${PF_DEFER_TRANSPORTS-smtp}
local_transport = error:local delivery disabled
alias_maps =
alias_database =
biff = no
smtp_dns_support_level = disabled
message_size_limit = 20480000
${PF_EXTRA_MAIN:-}
EOF
    cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

pf_wait_port() {
    port=$1
    i=0
    while [ $i -lt 100 ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

pf_start() {
    dir=$1 port=$2 sink=$3
    pf_available || return 1
    pf_write_config "$dir" "$port" "$sink" || { pf_log "cannot write $dir"; return 1; }
    # postfix(1) reports on stderr only when it is a terminal: script(1)
    # gives it one, so a failure is explained in start.out.
    if command -v script >/dev/null 2>&1; then
        script -qec "/usr/sbin/postfix -c '$dir/etc' start" /dev/null >"$dir/start.out" 2>&1
    else
        /usr/sbin/postfix -c "$dir/etc" start >"$dir/start.out" 2>&1
    fi
    if [ $? -ne 0 ]; then
        pf_log "postfix -c $dir/etc start failed:"; cat "$dir/start.out" >&2
        return 1
    fi
    pf_wait_port "$port" || { pf_log "no smtpd on 127.0.0.1:$port"; return 1; }
}

pf_pid() {
    pid=$(tr -dc 0-9 <"$1/queue/pid/master.pid" 2>/dev/null)
    [ -n "$pid" ] && echo "$pid"
}

pf_stop() {
    dir=$1
    pid=$(pf_pid "$dir")
    /usr/sbin/postfix -c "$dir/etc" stop >/dev/null 2>&1
    i=0
    while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        pf_log "master $pid did not stop: SIGKILL"
        kill -9 "$pid"
    fi
    return 0
}

# Executed rather than sourced: dispatch.
case "$0" in
*postfix.sh)
    cmd=$1
    [ $# -gt 0 ] && shift
    case "$cmd" in
    start) pf_start "$@" ;;
    stop) pf_stop "$@" ;;
    pid) pf_pid "$@" ;;
    available) pf_available ;;
    *) echo "usage: $0 start DIR PORT SINKPORT | stop DIR | pid DIR | available" >&2; exit 2 ;;
    esac
    ;;
esac
