#!/usr/bin/python3
"""crash_intake - issue 3 crash test: no acknowledged message is lost,
duplicated or damaged when smtpd and qmgr die by SIGKILL under load.

Load: WORKERS Python smtplib clients (threads, 1..4 messages per
session, 1..3 recipients, 0.2..24 KB bodies with dot-stuffed lines, a
unique Message-ID each, never a retry of the same message) until
CRASH_MESSAGES (default 2000) messages got "250 ... queued as ID", plus
Postfix's smtp-source -v in a loop beside them (its "queued as" lines
give the queue IDs it was promised).  Meanwhile smtpd, then qmgr, are
SIGKILLed KILLS times each at random points of the load (acknowledged
counts chosen at random, seed CRASH_SEED or the time, printed); master
restarts them.  Afterwards the gateway is stopped, a fake leftover is
planted in tmp/, the gateway is started again (qmgr must clean tmp/) and
stopped, and the queue is checked with t/helpers/smtpd_qdump:

- every message that got a 250 is in incoming/active/deferred exactly
  once, under the promised queue ID, with its envelope (sender, recipients
  in order) and its content (sha256 after our Received: header) intact;
- no queue ID is in two directories; corrupt/ and hold/ are empty;
- no queue file holds a message nobody sent; no Message-ID twice;
- tmp/ is empty after the stop and after the restart.
Messages that got no 250 may or may not be queued: counted as a diag.

Daemons: qmgr, smtpd, smtp (no scand).  Delivery keeps the messages: the
next hop is a bound but never listening port (connection refused:
deferred, never bounced), so qmgr moves them incoming -> active ->
deferred while it is being killed.
Environment: MAILGW_BUILD (build dir), CRASH_SEED, CRASH_MESSAGES,
MAILGW_KEEP=1 keeps the directory.  Every wait is bounded; pass/fail
does not depend on timing.
"""
import glob
import hashlib
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import mailgwtest  # noqa: E402
from tap import bail, diag, failures, ok  # noqa: E402

TARGET = int(os.environ.get('CRASH_MESSAGES', '2000'))
MAX_ATTEMPTS = TARGET * 4          # bound on the Python load
WORKERS = 8
KILLS = 3                          # per daemon (master throttles at 5 in 60 s)
LOAD_DEADLINE = 150                # seconds; a safety net, not an assertion
SMTP_SOURCE = '/usr/sbin/smtp-source'
SS_SENDER = 'ss@source.test'
SS_RCPT = 'ssr@example.test'
SS_SIZE = 3000
QDIRS = ('incoming', 'active', 'deferred')

# ---- the load ----
class Load:
    """Shared state of the clients: attempts, counters, a stop flag."""

    def __init__(self, port, seed):
        self.port = port
        self.seed = seed
        self.lock = threading.Lock()
        self.attempts = []          # dicts: msgid sender rcpts sha code qid
        self.acked = 0
        self.next_n = 0
        self.stop = threading.Event()
        self.errors = {}            # exception class -> count
        self.ss_attempts = 0
        self.ss_acked = []          # queue IDs promised to smtp-source
        self.ss_runs = 0

    def take(self):
        with self.lock:
            if self.stop.is_set() or self.acked >= TARGET or self.next_n >= MAX_ATTEMPTS:
                return None
            self.next_n += 1
            return self.next_n

    def done(self):
        with self.lock:
            return self.stop.is_set() or self.acked >= TARGET or self.next_n >= MAX_ATTEMPTS

    def record(self, att):
        with self.lock:
            self.attempts.append(att)
            if att['code'] == 250:
                self.acked += 1

    def error(self, e):
        with self.lock:
            k = type(e).__name__
            self.errors[k] = self.errors.get(k, 0) + 1


def make_message(seed, n):
    """(msgid, sender, rcpts, content bytes) of message n, reproducible."""
    r = random.Random('%s-%d' % (seed, n))
    msgid = '<crash-%s-%d@client.test>' % (seed, n)
    sender = 'w%d-%d@client.test' % (n % WORKERS, n)
    rcpts = ['r%d-%d@example.test' % (n, k) for k in range(r.randint(1, 3))]
    lines = ['Message-ID: %s' % msgid, 'From: <%s>' % sender,
             'To: %s' % ', '.join('<%s>' % a for a in rcpts),
             'Subject: crash test message %d' % n, '']
    size = r.choice([200, 1000, 4000, 4000, 24000])
    body, total = [], 0
    while total < size:
        kind = r.random()
        if kind < 0.05:
            line = '.'                          # a lone dot inside the body
        elif kind < 0.15:
            line = '..dotted %d' % r.randint(0, 10 ** 6)
        else:
            line = ''.join(r.choice('abcdefghijklmnopqrstuvwxyz0123456789 ')
                           for _ in range(r.randint(0, 76)))
        body.append(line)
        total += len(line) + 2
    content = '\r\n'.join(lines + body) + '\r\n'
    return msgid, sender, rcpts, content.encode()


def send_one(s, load, n):
    msgid, sender, rcpts, content = make_message(load.seed, n)
    att = {'n': n, 'msgid': msgid, 'sender': sender, 'rcpts': rcpts,
           'sha': hashlib.sha256(content).hexdigest(), 'code': None, 'qid': None}
    try:
        code, _ = s.mail(sender)
        if code != 250:
            att['code'] = code
            return att, code >= 500 or code == 421
        for a in rcpts:
            code, _ = s.rcpt(a)
            if code != 250:
                att['code'] = code
                return att, code == 421
        code, text = s.data(content)
        att['code'] = code
        m = re.search(rb'queued as (\S+)', text)
        att['qid'] = m.group(1).decode() if m and code == 250 else None
        return att, code == 421
    except smtplib.SMTPResponseException as e:
        att['code'] = e.smtp_code
        return att, True
    except (OSError, smtplib.SMTPException) as e:
        load.error(e)
        return att, True
    finally:
        load.record(att)


def worker(load, wid):
    r = random.Random('%s-worker-%d' % (load.seed, wid))
    while not load.stop.is_set():
        s = None
        try:
            s = smtplib.SMTP('127.0.0.1', load.port, 'client%d.test' % wid, timeout=30)
            s.ehlo()
        except (OSError, smtplib.SMTPException) as e:
            load.error(e)
            if s:
                s.close()
            time.sleep(0.1)
            continue
        broken = False
        for _ in range(r.randint(1, 4)):
            n = load.take()
            if n is None:
                break
            att, broken = send_one(s, load, n)
            if broken:
                break
            if att['code'] != 250:
                time.sleep(0.05)     # a 4xx: back off like a real client
                try:
                    s.rset()
                except (OSError, smtplib.SMTPException):
                    broken = True
                    break
        try:
            if not broken:
                s.quit()
        except (OSError, smtplib.SMTPException):
            pass
        s.close()
        if load.done():
            break


def smtp_source_loop(load, py_threads):
    """Run smtp-source -v batches until the Python clients are done."""
    while any(t.is_alive() for t in py_threads) and not load.stop.is_set():
        cmd = [SMTP_SOURCE, '-v', '-s', '3', '-m', '30', '-l', str(SS_SIZE),
               '-f', SS_SENDER, '-t', SS_RCPT, '127.0.0.1:%d' % load.port]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=60)
            out = p.stdout.decode(errors='replace')
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b'').decode(errors='replace')
        with load.lock:
            load.ss_runs += 1
            load.ss_attempts += len(re.findall(r': MAIL FROM:', out))
            load.ss_acked += re.findall(r'<<< 250 \S+ Ok: queued as (\S+)', out)


# ---- the killer ----
def daemon_pid(gw, name):
    st = gw.status() or {}
    d = st.get(name)
    return d['pid'] if d and d['state'] == 'running' else 0


def wait_restart(gw, name, old, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        pid = daemon_pid(gw, name)
        if pid and pid != old and mailgwtest.alive(pid):
            return pid
        time.sleep(0.1)
    return 0


def kill_plan(r):
    """KILLS (smtpd, qmgr) pairs at random acknowledged counts."""
    points = sorted(r.sample(range(TARGET // 20, TARGET * 9 // 10), 2 * KILLS))
    return [(p, 'smtpd' if i % 2 == 0 else 'qmgr') for i, p in enumerate(points)]


def run_kills(gw, load, r):
    done = []
    for point, name in kill_plan(r):
        deadline = time.time() + LOAD_DEADLINE
        while load.acked < point and time.time() < deadline and not load.done():
            time.sleep(0.005)
        time.sleep(r.uniform(0, 0.05))
        pid = daemon_pid(gw, name)
        if not pid:
            diag('no running %s to kill at %d acknowledged' % (name, load.acked))
            continue
        os.kill(pid, signal.SIGKILL)
        new = wait_restart(gw, name, pid)
        done.append((name, pid, new, load.acked))
    return done


# ---- the queue ----
def qdump(path):
    """(envelope dict, content bytes) through smtpd_qdump, or (None, why)."""
    p = subprocess.run([mailgwtest.helper('smtpd_qdump'), path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        return None, p.stderr.decode(errors='replace').strip()
    head, sep, content = p.stdout.partition(b'content:\n')
    if not sep:
        return None, 'no content marker'
    env = {'rcpts': []}
    for line in head.decode(errors='replace').splitlines():
        k, _, v = line.partition('=')
        if k == 'rcpt':
            env['rcpts'].append(v.split(' ')[0])
        else:
            env[k] = v
    return env, content


def split_received(content):
    """(first Received: header, rest) or (None, content)."""
    if not content.startswith(b'Received:'):
        return None, content
    pos = 0
    while True:
        end = content.find(b'\r\n', pos)
        if end < 0:
            return None, content
        pos = end + 2
        if content[pos:pos + 1] not in (b' ', b'\t'):
            return content[:pos], content[pos:]


def header(content, name):
    head = content.split(b'\r\n\r\n', 1)[0]
    m = re.search(rb'(?im)^' + name.encode() + rb':[ \t]*(.*)$', head)
    return m.group(1).strip().decode(errors='replace') if m else None


def scan_queue(qdir):
    """{qid: [entries]}: entry = dict(dir, env, rest, received, msgid)."""
    files = {}
    for d in QDIRS:
        for path in glob.glob(os.path.join(qdir, d, '*')):
            qid = os.path.basename(path)
            env, content = qdump(path)
            e = {'dir': d, 'env': env, 'why': content if env is None else None}
            if env is not None:
                e['received'], e['rest'] = split_received(content)
                e['msgid'] = header(e['rest'], 'Message-ID')
            files.setdefault(qid, []).append(e)
    return files


def received_ok(e, qid):
    rec = e['received'] or b''
    return b'(mailgw)' in rec and (b' id ' + qid.encode()) in rec


def check_python(load, files):
    by_msgid = {}
    for qid, es in files.items():
        for e in es:
            if e['env'] is not None and e['msgid']:
                by_msgid.setdefault(e['msgid'], []).append((qid, e))
    bad, unacked_queued, unacked_damaged = [], 0, 0
    for a in load.attempts:
        found = by_msgid.get(a['msgid'], [])
        if a['code'] != 250:
            if found:
                unacked_queued += 1
                if len(found) > 1 or not intact(a, *found[0]):
                    unacked_damaged += 1
            continue
        if len(found) != 1:
            bad.append('%s (250 as %s): %d queue files' % (a['msgid'], a['qid'], len(found)))
        elif found[0][0] != a['qid']:
            bad.append('%s: promised %s, queued as %s' % (a['msgid'], a['qid'], found[0][0]))
        elif not intact(a, *found[0]):
            bad.append('%s (%s): envelope or content differ' % (a['msgid'], a['qid']))
    return by_msgid, bad, unacked_queued, unacked_damaged


def intact(a, qid, e):
    return (e['env'].get('sender') == a['sender'] and e['env']['rcpts'] == a['rcpts']
            and hashlib.sha256(e['rest']).hexdigest() == a['sha'] and received_ok(e, qid))


def ss_shape(e, ref_body):
    """An smtp-source message: its envelope, its four headers, the body."""
    if e['env'].get('sender') != SS_SENDER or e['env']['rcpts'] != [SS_RCPT]:
        return False
    head, sep, body = e['rest'].partition(b'\r\n\r\n')
    names = [ln.split(b':', 1)[0].lower() for ln in head.split(b'\r\n')]
    return bool(sep) and names == [b'from', b'to', b'date', b'message-id'] and body == ref_body


def check_smtp_source(load, files, ref_body):
    bad = []
    for qid in load.ss_acked:
        es = files.get(qid, [])
        if len(es) != 1 or es[0]['env'] is None:
            bad.append('smtp-source %s: %d queue files' % (qid, len(es)))
        elif not (ss_shape(es[0], ref_body) and received_ok(es[0], qid)):
            bad.append('smtp-source %s: envelope or content differ' % qid)
    return bad


def ls(qdir, d):
    try:
        return sorted(os.listdir(os.path.join(qdir, d)))
    except OSError:
        return []


def handed_out(gw):
    """qmgr's in_progress: tmp/ files it handed out and still tracks."""
    rc, out = gw.mailgw('stats')[:2]
    m = re.search(r'^qmgr: in_progress=(\d+)$', out or '', re.M)
    return int(m.group(1)) if m else -1


def wait_idle(gw, seconds=30):
    """Bounded: both daemons running and every tmp/ file one that qmgr
    handed out and tracks (smtpd fetches a few ahead: at most 8), none
    left behind by the kills."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if daemon_pid(gw, 'smtpd') and daemon_pid(gw, 'qmgr'):
            tmp = len(ls(gw.queue_dir(), 'tmp'))
            if tmp == 0 or (tmp <= 8 and tmp == handed_out(gw)):
                return True
        time.sleep(0.2)
    return False


# ---- main ----
def reference_body(gw):
    """The body smtp-source sends with -l SS_SIZE (one message, no kills)."""
    p = subprocess.run([SMTP_SOURCE, '-v', '-m', '1', '-l', str(SS_SIZE), '-f', SS_SENDER,
                        '-t', SS_RCPT, '127.0.0.1:%d' % gw.port()],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    m = re.search(rb'queued as (\S+)', p.stdout)
    if not m:
        return None, None
    qid = m.group(1).decode()
    for d in QDIRS:
        env, content = qdump(os.path.join(gw.queue_dir(), d, qid))
        if env is not None:
            return qid, split_received(content)[1].partition(b'\r\n\r\n')[2]
    return qid, None


def start_load(load, use_ss):
    threads = [threading.Thread(target=worker, args=(load, i), daemon=True)
               for i in range(WORKERS)]
    for t in threads:
        t.start()
    extra = []
    if use_ss:
        extra.append(threading.Thread(target=smtp_source_loop, args=(load, threads), daemon=True))
        extra[0].start()
    return threads, extra


def join_load(load, threads, extra):
    deadline = time.time() + LOAD_DEADLINE
    for t in threads + extra:
        t.join(max(0.1, deadline - time.time()))
    if any(t.is_alive() for t in threads + extra):
        load.stop.set()
        diag('load deadline reached: stopping the clients')
        for t in threads + extra:
            t.join(60)


def main():
    if not os.access(mailgwtest.libexec('smtpd'), os.X_OK) or \
            not os.access(mailgwtest.libexec('qmgr'), os.X_OK) or \
            not os.access(mailgwtest.helper('smtpd_qdump'), os.X_OK):
        print('1..0 # SKIP smtpd, qmgr or smtpd_qdump not built')
        return 0
    use_ss = os.access(SMTP_SOURCE, os.X_OK)
    seed = os.environ.get('CRASH_SEED') or str(int(time.time() * 1000) % 10 ** 9)
    r = random.Random(seed)
    print('1..12', flush=True)
    diag('seed %s (CRASH_SEED=%s reproduces the kill points and messages)' % (seed, seed))

    # A next hop that refuses connections: bound, never listening.
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(('127.0.0.1', 0))
    # The intake and delivery daemons only: no scand (without anti-virus
    # bases it tempfails every message), so qmgr moves messages on to
    # delivery, and deferral, while it is being killed.
    gw = mailgwtest.MailgwTest(daemons='qmgr,smtpd,smtp', **{
        'mailgw.forward.ForwardRoute': '* [127.0.0.1:%d]' % dead.getsockname()[1],
        'mailgw.limits.MaximalIncomingSessionsPerIP': 200,
        'mailgw.limits.IncomingSessions': 200,
    })
    try:
        return run(gw, r, seed, use_ss)
    finally:
        gw.close()
        dead.close()


def run(gw, r, seed, use_ss):
    if not gw.start():
        bail('mailgw did not start:\n' + gw.log_text()[-3000:])
    qdir = gw.queue_dir()
    ss_ref_qid, ref_body = reference_body(gw) if use_ss else (None, None)
    if use_ss and ref_body is None:
        diag('smtp-source reference message not queued: smtp-source part skipped')
        use_ss = False

    load = Load(gw.port(), seed)
    threads, extra = start_load(load, use_ss)
    kills = run_kills(gw, load, r)
    join_load(load, threads, extra)
    for name, old, new, at in kills:
        diag('killed %s pid %d at %d acknowledged: %s' %
             (name, old, at, 'restarted as %d' % new if new else 'NOT restarted'))
    ok(len(kills) == 2 * KILLS and all(k[2] for k in kills),
       'smtpd and qmgr killed %d times each, master restarted them every time' % KILLS)
    ss_acked = len(load.ss_acked)
    diag('python: %d attempts, %d acknowledged; smtp-source: %d runs, %d attempts, %d '
         'acknowledged; client errors %s' % (len(load.attempts), load.acked, load.ss_runs,
                                            load.ss_attempts, ss_acked, load.errors))
    ok(load.acked + ss_acked >= TARGET, 'at least %d messages acknowledged under load (%d)'
       % (TARGET, load.acked + ss_acked))

    ok(wait_idle(gw), 'gateway idle after the load: daemons running, tmp/ holds only files handed out')
    gw.stop()
    ok(not ls(qdir, 'tmp'), 'tmp/ empty after the stop: %s' % ls(qdir, 'tmp')[:5])

    # A leftover as a crash leaves it: a partial file in tmp/.
    left = os.path.join(qdir, 'tmp', 'LEFTOVER%s' % seed)
    with open(left, 'wb') as f:
        f.write(b'\x01\x00\x00\x00\x04\x00\x00\x00\x01\x02\x00')
    if not gw.start():
        bail('mailgw did not start again:\n' + gw.log_text()[-3000:])
    ok(wait_idle(gw), 'restart: qmgr removed the tmp/ leftover')
    gw.stop()
    ok(not ls(qdir, 'tmp'), 'tmp/ empty after the restart and stop')

    files = scan_queue(qdir)
    verify(load, files, qdir, ref_body, ss_ref_qid)
    return 0 if failures() == 0 else 1


def verify(load, files, qdir, ref_body, ss_ref_qid):
    multi = sorted(q for q, es in files.items() if len(es) > 1)
    ok(not multi, 'no queue ID in two queue directories %s' % multi[:5])
    unreadable = sorted(q for q, es in files.items() if any(e['env'] is None for e in es))
    ok(not unreadable, 'every queue file reads back %s' % [
        (q, files[q][0]['why']) for q in unreadable[:5]])
    ok(not ls(qdir, 'corrupt') and not ls(qdir, 'hold'),
       'corrupt/ and hold/ are empty %s %s' % (ls(qdir, 'corrupt')[:5], ls(qdir, 'hold')[:5]))

    by_msgid, bad, unacked_queued, unacked_damaged = check_python(load, files)
    if bad:
        diag('\n'.join(bad[:20]))
    ok(not bad, 'all %d acknowledged smtplib messages queued exactly once, intact, under '
       'the promised ID' % load.acked)
    diag('unacknowledged but queued: %d (of them damaged or twice: %d)'
         % (unacked_queued, unacked_damaged))

    ss_bad = check_smtp_source(load, files, ref_body) if ref_body is not None else []
    if ss_bad:
        diag('\n'.join(ss_bad[:20]))
    ok(not ss_bad, 'all %d acknowledged smtp-source messages queued exactly once, intact'
       % len(load.ss_acked))

    sent = {a['msgid'] for a in load.attempts}
    foreign, twice, ss_files = [], [], 0
    for qid, es in files.items():
        e = es[0]
        if e['env'] is None:
            continue
        if e['env'].get('sender') == SS_SENDER and ref_body is not None and ss_shape(e, ref_body):
            ss_files += 1
            continue
        if e['msgid'] not in sent:
            foreign.append(qid)
    twice = sorted(m for m, l in by_msgid.items() if len(l) > 1 and m in sent)
    per_dir = {d: sum(1 for es in files.values() for e in es if e['dir'] == d) for d in QDIRS}
    diag('queue: %d files %s (%d smtp-source-shaped incl. the reference %s)'
         % (len(files), per_dir, ss_files, ss_ref_qid))
    ok(not foreign and not twice, 'no queue file nobody sent %s, no Message-ID twice %s'
       % (foreign[:5], twice[:5]))


if __name__ == '__main__':
    sys.exit(main())
