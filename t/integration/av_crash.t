#!/usr/bin/python3
"""av_crash.t - a scanning worker dies mid-scan (issue 5, "Done when"
bullet 3): the message is retried and ends with the right verdict, and
nothing accepted is lost.  Real daemons: smtplib -> smtpd -> qmgr ->
scand -> smtp -> the aiosmtpd sink t/integration/relay_sink.py.

A worker is "mid-scan" when it holds the message's queue file
(queue/incoming/ID among its /proc/PID/fd links; workers are the children
of the scand parent).  Large attachments (20 MB of random bytes) keep
the scan busy long enough to be caught; the worker is SIGSTOPped first,
so the kill lands while it still holds the file.
  1. kill -9: an EICAR message with a 20 MB attachment; the worker
     scanning it is killed; qmgr logs "ID: scan deferred", the retry
     blocks it (status=blocked, av-scanned status=infected) and the sink
     never gets it.
  2. the watchdog: a clean message with a 20 MB attachment; the worker
     scanning it is SIGSTOPped and left hanging; scand's watchdog kills
     it after ScanTimeout (8 s) + its margin ("killed by the watchdog"),
     the message is deferred, retried and delivered with its body byte
     for byte.
  3. nothing lost: 30 small messages (every third with EICAR) sent by
     three clients at once while busy workers are killed (-9) three
     times; at the end every message that got a 250 is either in the sink
     (clean ones, once) or logged blocked (EICAR ones) and absent from
     the sink; the queue is empty; scand replaced the dead workers.
Environment: MAILGW_BUILD (build dir), MAILGW_KEEP=1 keeps the directory.
"""
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'helpers'))
import ave2e as T  # noqa: E402

T.need_built()
gw, sink = T.gateway(**{'mailgw.ave.MinWorkers': 1, 'mailgw.ave.MaxWorkers': 2,
                        'mailgw.ave.ScanTimeout': 8,
                        'mailgw.limits.MaximalIncomingMessageSize': '40M',
                        'mailgw.limits.MaximalIncomingSessionSize': 81920})
st = gw.status() or {}
scand = (st.get('scand') or {}).get('pid')
if not scand:
    T.bail('no scand pid in mailgw status')
INCOMING = os.path.join(gw.queue_dir(), 'incoming') + '/'


def busy_workers():
    """{worker pid: queue ID} of the workers holding a queue file now."""
    out = {}
    for pid in T.pids_children(scand):
        for target in T.fd_targets(pid):
            if target.startswith(INCOMING):
                out[pid] = os.path.basename(target)
    return out


def catch_busy(seconds, skip=()):
    """(pid, ID) of a worker caught mid-scan and stopped, or (None, None)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for pid, qid in busy_workers().items():
            if qid in skip:
                continue
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                continue
            if busy_workers().get(pid) == qid:
                return pid, qid
            os.kill(pid, signal.SIGCONT)        # finished meanwhile
        time.sleep(0.005)
    return None, None


def send_async(rcpts, msg, box):
    def run():
        box.append(T.send(gw, rcpts, msg))
    t = threading.Thread(target=run)
    t.start()
    return t


# ---- 1. kill -9 mid-scan of an infected message ----
big1 = os.urandom(20 * 1024 * 1024)
m1 = T.mail('crash-infected', parts=[T.attach_b64('big.bin', big1),
                                     T.attach_b64('eicar.com', T.EICAR)])
box = []
t = send_async(['k-infected@example.test'], m1, box)
pid, qid = catch_busy(60)
if pid:
    os.kill(pid, signal.SIGKILL)
t.join(120)
T.ok(pid is not None, 'infected: a worker was caught mid-scan and killed (-9)')
id1 = box[0] if box else None
T.ok(id1 and id1 == qid, 'infected: accepted (250) and the killed worker held it (%s)' % id1)
T.ok(gw.wait_log(r'worker %d killed by signal 9' % (pid or 0), 20), 'scand logged the dead worker')
T.ok(id1 and gw.wait_log(r'%s: scan deferred' % id1, 20), 'infected: "scan deferred"')
res = T.wait_outcome(gw, id1, 60, 'k-infected@example.test') if id1 else None
T.ok(res == 'blocked', 'infected: retried and blocked (%s)' % res) or T.diag(
    '\n'.join(l for l in gw.log_text().splitlines() if id1 and id1 in l))
T.ok(re.search(r'status=infected names="[^"]*Mailgw\.Test\.EICAR', T.av_line(gw, id1 or 'x')),
     'infected: av-scanned status=infected with the name')

# ---- 2. the watchdog kills a stopped worker ----
big2 = os.urandom(20 * 1024 * 1024)
m2 = T.mail('crash-clean', parts=[T.attach_b64('big.bin', big2)])
box = []
t = send_async(['k-clean@example.test'], m2, box)
pid2, qid2 = catch_busy(60, skip={id1})
t.join(120)
id2 = box[0] if box else None
T.ok(pid2 is not None and id2 == qid2, 'clean: a worker was caught mid-scan and stopped (%s)' % id2)
T.ok(gw.wait_log(r'worker %d busy for \d+ s \(ScanTimeout 8 s\): killed by the watchdog'
                 % (pid2 or 0), 40), 'the watchdog killed the hanging worker')
T.ok(id2 and gw.wait_log(r'%s: scan deferred' % id2, 20), 'clean: "scan deferred"')
res = T.wait_outcome(gw, id2, 60, 'k-clean@example.test') if id2 else None
T.ok(res == 'delivered', 'clean: retried and delivered (%s)' % res) or T.diag(
    '\n'.join(l for l in gw.log_text().splitlines() if id2 and id2 in l))
got = T.wait_for(lambda: T.sink_for(sink, 'k-clean@example.test'), 20)
T.ok(got and len(got) == 1, 'clean: in the sink once')
T.ok(got and T.split_message(got[0]['data'])[1] == T.split_message(m2)[1],
     'clean: body byte for byte after the retry')

# ---- 3. nothing lost under repeated kills ----
N = 30
expect = {}                  # rcpt -> 'blocked' | 'delivered'
msgs = []
for i in range(N):
    bad = i % 3 == 0
    rcpt = 'n%02d@example.test' % i
    expect[rcpt] = 'blocked' if bad else 'delivered'
    pad = [T.attach_b64('pad.bin', os.urandom(1024 * 1024))]
    parts = pad + ([T.attach_b64('eicar.com', T.EICAR)] if bad else [])
    msgs.append((rcpt, T.mail('lost-%02d' % i, parts=parts)))
accepted = {}                # rcpt -> ID
lock = threading.Lock()


def client(chunk):
    for rcpt, msg in chunk:
        qid_ = T.send(gw, [rcpt], msg)
        if qid_:
            with lock:
                accepted[rcpt] = qid_


threads = [threading.Thread(target=client, args=(msgs[k::3],)) for k in range(3)]
for th in threads:
    th.start()
kills = 0
killed = {id1, id2}          # each message is killed at most once
deadline = time.time() + 60
while kills < 3 and time.time() < deadline:
    p, q = catch_busy(5, skip=killed)
    if p:
        os.kill(p, signal.SIGKILL)
        killed.add(q)
        kills += 1
for th in threads:
    th.join(120)
T.ok(kills == 3, 'three busy workers killed (-9) during the load (%d)' % kills)
T.ok(len(accepted) == N, 'every message accepted with 250 (%d of %d)' % (len(accepted), N))
T.ok(T.wait_for(lambda: len(re.findall(r'killed by signal 9', gw.log_text())) >= 1 + kills, 10),
     'scand logged every killed worker')

deadline = time.time() + 90
results = {}
for rcpt, qid_ in sorted(accepted.items()):
    results[rcpt] = T.wait_for(lambda: T.outcome(gw, qid_, rcpt),
                               max(1, deadline - time.time()))
wrong = ['%s %s: %s, want %s' % (rcpt, accepted[rcpt], results[rcpt], expect[rcpt])
         for rcpt in sorted(accepted) if results[rcpt] != expect[rcpt]]
T.ok(not wrong, 'every accepted message ends with the right verdict') or T.diag('\n'.join(wrong))
T.ok(T.wait_for(lambda: T.queue_empty(gw), 30), 'queue empty at the end') or \
    T.diag(T.queue_listing(gw))
problems = []
for rcpt in sorted(accepted):
    copies = [m for m in sink.for_rcpt(rcpt)
              if re.search(rb'(?m)^X-E2E-Case: lost-', m['data'])]
    if expect[rcpt] == 'delivered' and len(copies) != 1:
        problems.append('%s: %d copies in the sink' % (rcpt, len(copies)))
    if expect[rcpt] == 'blocked' and (copies or any(T.carries(m['data'], [T.EICAR])
                                                    for m in sink.for_rcpt(rcpt))):
        problems.append('%s: infected message reached the sink' % rcpt)
T.ok(not problems, 'clean ones in the sink exactly once, infected ones never') or \
    T.diag('\n'.join(problems))
deferred = sum(1 for rcpt in accepted
               if re.search(r'%s: scan deferred' % accepted[rcpt], gw.log_text()))
T.ok(deferred >= 1, 'the killed scans were deferred and retried (%d messages)' % deferred)
T.ok(T.wait_for(lambda: T.pids_children(scand), 10), 'scand still has workers')
T.ok(T.mailgwtest.alive(scand), 'the scand parent survived')
gw.close()
T.done()
