"""ave2e - shared code of the end-to-end anti-virus tests
(t/integration/av_e2e.t, av_bombs_e2e.t, av_crash.t): TAP output, the
gateway with scand (t/lib/mailgwtest.py) in front of the aiosmtpd sink
t/integration/relay_sink.py, SMTP submission with smtplib, MIME message
building and the checks on what reached the sink.

    sys.path.insert(0, <repo>/t/helpers); import ave2e as T
    gw, sink = T.gateway(**{'mailgw.ave.MaxWorkers': 2})
    qid = T.send(gw, ['rcpt@example.test'], T.mail('subject', body=...))
    T.wait_outcome(gw, qid, 60) -> 'blocked' | 'delivered' | None

The tests never look at the queue files; they judge by the log lines of
qmgr and scand and by what the sink stored (DIR/messages.jsonl, one JSON
line per message, the data as latin-1).  Every wait is bounded.
Processes started here (the sink) are killed by pid at exit.
"""
import atexit
import base64
import email
import email.policy
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 't', 'lib'))
import mailgwtest  # noqa: E402
from tap import bail, diag, done, ok, skip, skip_all  # noqa: E402,F401

PYTHON = '/usr/bin/python3'
SINK = os.path.join(ROOT, 't', 'integration', 'relay_sink.py')
BASES = os.path.join(ROOT, 'conf', 'bases')
TESTFILES = '/usr/share/clamav-testfiles'

# The EICAR test string, assembled at run time (no file of ours is a test virus).
EICAR = bytes.fromhex(
    '58354f2150254041505b345c505a58353428505e2937434329377d24'
    '45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a')


def need_built():
    """skip_all unless the daemons, mailgw and the sink's aiosmtpd exist."""
    for p in [mailgwtest.bin('mailgw')] + [mailgwtest.libexec(d) for d in
                                           ('master', 'qmgr', 'smtpd', 'smtp', 'scand')]:
        if not os.access(p, os.X_OK):
            skip_all('%s not built' % p)
    if subprocess.call([PYTHON, '-c', 'import aiosmtpd'],
                       stderr=subprocess.DEVNULL) != 0:
        skip_all('aiosmtpd missing (python3-aiosmtpd)')
    if not os.path.exists(os.path.join(BASES, 'mailgw-eicar.ndb')):
        skip_all('conf/bases/mailgw-eicar.ndb missing')


def have(tool):
    return any(os.access(os.path.join(d, tool), os.X_OK)
               for d in os.environ.get('PATH', '').split(':') + ['/usr/bin', '/bin'])


def wait_for(cond, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    return cond()


# ---- the gateway and its sink ----
_pids = []


def _cleanup():
    for p in _pids:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


atexit.register(_cleanup)


class Sink:
    """relay_sink.py on the gateway's next-hop port, storing into DIR."""

    def __init__(self, port, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(d, 'sink.log'), 'ab')
        self.proc = subprocess.Popen([PYTHON, SINK, str(port), d], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _pids.append(self.proc)
        if not wait_for(lambda: os.path.exists(os.path.join(d, 'ready')), 20):
            bail('relay_sink.py did not start')

    def messages(self):
        """[{from, rcpts, data (bytes)}] stored so far."""
        out = []
        try:
            with open(os.path.join(self.dir, 'messages.jsonl')) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue        # a line being written
                    r['data'] = r['data'].encode('latin-1')
                    out.append(r)
        except OSError:
            pass
        return out

    def for_rcpt(self, rcpt):
        return [m for m in self.messages() if rcpt in m['rcpts']]


def gateway(**overrides):
    """A started gateway (qmgr, smtpd, smtp, scand; the starter bases of
    conf/bases) and its sink; bails out when it does not come up."""
    kw = {'mailgw.ave.MinWorkers': 1, 'mailgw.ave.MaxWorkers': 2}
    kw.update(overrides)
    gw = mailgwtest.MailgwTest(daemons='qmgr,smtpd,smtp,scand', overrides=kw,
                               raw='[path]\nBasesPath=%s\n' % BASES)
    sink = Sink(gw.sink_port(), os.path.join(gw.dir(), 'sink'))
    atexit.register(gw.close)       # runs before the sink is killed
    if not gw.start():
        bail('mailgw did not start')
    if not (gw.wait_log(r'scanning enabled', 20) and gw.wait_log(r'scand\[\d+\]: pool: ', 20)):
        diag(gw.log_text())
        bail('no scanning: qmgr or scand did not come up')
    if not re.search(r'anti-virus bases loaded from ', gw.log_text()):
        diag(gw.log_text())
        bail('scand did not load the starter bases')
    return gw, sink


# ---- submission ----
def send(gw, rcpts, msg, sender='sender@example.org', eightbit=False):
    """Submit msg (bytes with CRLF) by SMTP; the queue ID of the 250, or
    None (with a diag)."""
    try:
        with smtplib.SMTP('127.0.0.1', gw.port(), timeout=60) as s:
            s.ehlo('client.example.org')
            opts = ['BODY=8BITMIME'] if eightbit else []
            code, resp = s.mail(sender, opts)
            if code != 250:
                diag('MAIL: %d %s' % (code, resp))
                return None
            for r in rcpts:
                code, resp = s.rcpt(r)
                if code not in (250, 251):
                    diag('RCPT %s: %d %s' % (r, code, resp))
                    return None
            code, resp = s.data(msg)
            resp = resp.decode(errors='replace')
            m = re.search(r'queued as ([0-9A-Za-z]+)', resp)
            if code != 250 or not m:
                diag('DATA: %d %s' % (code, resp))
                return None
            return m.group(1)
    except (OSError, smtplib.SMTPException) as e:
        diag('send: %s' % e)
        return None


def outcome(gw, qid, rcpt=None):
    """'blocked', 'delivered', 'bounced' or None (not final yet) for a
    recipient of qid (any recipient when rcpt is None), from qmgr's log."""
    text = gw.log_text()
    who = r'<%s>' % re.escape(rcpt) if rcpt else r'<[^>]*>'
    if re.search(r'%s: to=%s, .*status=blocked' % (qid, who), text):
        return 'blocked'
    if re.search(r'%s: to=%s, .*status=sent' % (qid, who), text):
        return 'delivered'
    if re.search(r'%s: to=%s, .*status=bounced' % (qid, who), text):
        return 'bounced'
    return None


def wait_outcome(gw, qid, seconds, rcpt=None):
    return wait_for(lambda: outcome(gw, qid, rcpt), seconds)


def av_line(gw, qid):
    """The (last) "ID: av-scanned ..." line of qid, or ''."""
    lines = re.findall(r'%s: av-scanned [^\n]*' % qid, gw.log_text())
    return lines[-1] if lines else ''


# ---- messages ----
BOUNDARY = '=-=ave2e-boundary-%d=-='
_seq = [0]


def _headers(subject, extra=''):
    _seq[0] += 1
    return ('From: Sender <sender@example.org>\r\nTo: rcpt@example.test\r\n'
            'Subject: %s\r\nMessage-ID: <ave2e.%d.%d.%s@example.org>\r\n'
            'Date: Thu, 27 Nov 2025 12:00:00 +0000\r\nX-E2E-Case: %s\r\n'
            'MIME-Version: 1.0\r\n%s' % (subject, os.getpid(), _seq[0], subject.replace(' ', '-'),
                                         subject, extra)).encode()


def mail(subject, body=b'', parts=None, extra_headers=''):
    """A message (bytes, CRLF).  Without parts: a text/plain body (bytes,
    lines joined with CRLF as given).  With parts: multipart/mixed of a
    short text part and each (headers str, body bytes) part."""
    if not parts:
        return _headers(subject, extra_headers) + b'\r\n' + body
    b = BOUNDARY % _seq[0]
    m = _headers(subject, extra_headers + 'Content-Type: multipart/mixed; boundary="%s"\r\n' % b)
    m += b'\r\nThis is a MIME message.\r\n'
    m += ('--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n'
          'case %s: see the attachment.\r\n' % (b, subject)).encode()
    for h, body_ in parts:
        m += ('--%s\r\n' % b).encode() + h.encode() + b'\r\n' + body_
        if not body_.endswith(b'\r\n'):
            m += b'\r\n'
    return m + ('--%s--\r\n' % b).encode()


def crlf(data):
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def attach_b64(name, data, ctype='application/octet-stream'):
    return ('Content-Type: %s; name="%s"\r\nContent-Disposition: attachment; filename="%s"\r\n'
            'Content-Transfer-Encoding: base64\r\n' % (ctype, name, name),
            crlf(base64.encodebytes(data)))


def split_message(data):
    """(header bytes, body bytes) of a stored message (CRLF)."""
    i = data.find(b'\r\n\r\n')
    if i < 0:
        return data, b''
    return data[:i + 2], data[i + 4:]


def header_lines(hdr, drop=('received', 'x-anti-virus')):
    """Header fields (with their continuation lines) as a list of bytes,
    without the fields named in drop (lower case)."""
    fields = []
    for line in hdr.split(b'\r\n'):
        if not line:
            continue
        if line[:1] in (b' ', b'\t') and fields:
            fields[-1] += b'\r\n' + line
        else:
            fields.append(line)
    return [f for f in fields if f.split(b':', 1)[0].strip().lower().decode('latin-1') not in drop]


def decoded_parts(data):
    """Every decoded leaf payload (bytes) of a message, nested message/rfc822
    included, for checking that a payload did not get through."""
    out = []
    try:
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
    except Exception:
        return out
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            p = part.get_payload(decode=True)
        except Exception:
            p = None
        if p:
            out.append(p)
    return out


def carries(data, payloads):
    """True when a stored message holds one of payloads, raw or decoded."""
    blobs = [data] + decoded_parts(data)
    return any(p in b for p in payloads for b in blobs)


def not_delivered_with(sink, rcpt, case, payloads):
    """(ok, why): nothing reached rcpt that is our original (X-E2E-Case)
    or that carries one of payloads (a notice to the recipient may)."""
    for m in sink.for_rcpt(rcpt):
        hdr, _ = split_message(m['data'])
        if re.search(rb'(?im)^X-E2E-Case: ' + re.escape(case.encode()) + rb'\r?$', hdr):
            return False, 'the original reached the sink'
        if carries(m['data'], payloads):
            return False, 'a message to %s carries the payload' % rcpt
    return True, ''


def sink_for(sink, rcpt):
    return sink.for_rcpt(rcpt)


QDIRS = ('incoming', 'active', 'deferred', 'hold')


def queue_listing(gw):
    out = []
    for d in QDIRS:
        try:
            names = sorted(n for n in os.listdir(os.path.join(gw.queue_dir(), d))
                           if not n.startswith('.'))
        except OSError:
            names = []
        out.extend('%s/%s' % (d, n) for n in names)
    return '\n'.join(out)


def queue_empty(gw):
    return queue_listing(gw) == ''


def pids_children(ppid):
    """Pids whose parent is ppid (from /proc)."""
    try:
        with open('/proc/%d/task/%d/children' % (ppid, ppid)) as f:
            return sorted(int(x) for x in f.read().split())
    except (OSError, ValueError):
        pass
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(')') + 2:].split()
        if len(rest) > 1 and rest[1] == str(ppid) and rest[0] not in ('Z', 'X'):
            out.append(int(d))
    return sorted(out)


def fd_targets(pid):
    """The paths the open fds of pid point at ([] when unreadable)."""
    out = []
    try:
        for fd in os.listdir('/proc/%d/fd' % pid):
            try:
                out.append(os.readlink('/proc/%d/fd/%s' % (pid, fd)))
            except OSError:
                pass
    except OSError:
        pass
    return out
