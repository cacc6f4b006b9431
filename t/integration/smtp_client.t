#!/usr/bin/python3
# smtp_client.t - the outbound smtp daemon against real servers on loopback:
# Postfix's smtp-sink and SMTP servers written here (plain, TLS, hostile).
#
# The daemon runs standalone (no master): this test binds the unix listener
# and hands it over as fd 4, then plays qmgr with t/helpers/smtp_deliver.
# Checks: byte-exact content after canonical CRLF + dot-stuffing, several
# recipients with mixed results, 4xx -> deferred, 5xx -> bounced, a dead
# port -> deferred + unreachable, malformed / over-long / endless replies ->
# deferred and the daemon lives on, PIPELINING batches, SIZE and 8BITMIME
# refusals, DSN pass-through, STARTTLS opportunistic / required / verified.
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.path.abspath(os.environ.get('MAILGW_BUILD') or os.path.join(ROOT, 'build'))
SMTP = os.path.join(BUILD, 'libexec', 'smtp')
DELIVER = os.path.join(BUILD, 't', 'helpers', 'smtp_deliver')
SINK = '/usr/sbin/smtp-sink'
IS_ROOT = os.geteuid() == 0

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from tap import diag, done, is_, ok, skip  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(pred, secs=10.0):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ---- the expected wire form of stored content ----
def wire(msg):
    s = msg.replace(b'\r\n', b'\n').replace(b'\r', b'\n')
    if not s:
        return b'.\r\n'
    lines = s.split(b'\n')
    if s.endswith(b'\n'):
        lines.pop()
    out = [b'.' + l if l.startswith(b'.') else l for l in lines]
    return b'\r\n'.join(out) + b'\r\n.\r\n'


# ---- an SMTP server for tests ----
class Server:
    """A small threaded SMTP server.  features: EHLO keywords; rcpt_reply:
    local part -> reply line; tls: (cert, key) to offer STARTTLS;
    script: raw bytes sent instead of the greeting (hostile mode), then it
    only reads until the client goes; ehlo_raw: raw bytes as EHLO reply."""

    def __init__(self, features=('PIPELINING', '8BITMIME', 'DSN', 'SIZE 10000000'),
                 rcpt_reply=None, tls=None, script=None, ehlo_raw=None, rcpt_raw=None,
                 data_reply=b'250 2.0.0 Ok: queued as FAKE1\r\n', silent=False, hangup=False,
                 data_delay=0):
        self.features = list(features)
        self.rcpt_reply = rcpt_reply or {}
        self.tls = None
        if tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(tls[0], tls[1])
        self.script = script
        self.ehlo_raw = ehlo_raw
        self.rcpt_raw = rcpt_raw
        self.data_reply = data_reply
        self.silent = silent
        self.hangup = hangup
        self.data_delay = data_delay
        self.active = 0
        self.max_active = 0
        self.sessions = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def close(self):
        self.sock.close()

    def messages(self):
        with self.lock:
            return [m for s in self.sessions for m in s['messages']]

    def _serve(self, c):
        sess = {'cmds': [], 'messages': [], 'tls': False, 'pipelined': [], 'closed': False}
        with self.lock:
            self.sessions.append(sess)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        c.settimeout(20)
        try:
            if self.silent:
                self._drain(c)
            elif self.script is not None:
                c.sendall(self.script)
                if not self.hangup:
                    self._drain(c)
            else:
                Conversation(self, c, sess).run()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.active -= 1
            sess['closed'] = True
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def _drain(c):
        while c.recv(65536):
            pass


class Conversation:
    def __init__(self, srv, sock, sess):
        self.srv, self.sock, self.sess = srv, sock, sess
        self.buf = b''

    def readline(self):
        while b'\n' not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise OSError('closed')
            self.buf += d
        line, self.buf = self.buf.split(b'\n', 1)
        return line + b'\n'

    def send(self, b):
        self.sock.sendall(b)

    def ehlo(self):
        if self.srv.ehlo_raw is not None:
            self.send(self.srv.ehlo_raw)
            return
        feats = list(self.srv.features)
        if self.srv.tls and not self.sess['tls']:
            feats.append('STARTTLS')
        lines = ['sink.test'] + feats
        out = ''.join('250-%s\r\n' % l for l in lines[:-1]) + '250 %s\r\n' % lines[-1]
        self.send(out.encode())

    def run(self):
        self.send(b'220 sink.test ESMTP test server\r\n')
        mail = None
        while True:
            line = self.readline()
            self.sess['cmds'].append(line.decode('latin-1').rstrip('\r\n'))
            verb = line.split(b' ', 1)[0].split(b':', 1)[0].strip().upper()
            if verb == b'EHLO':
                self.ehlo()
            elif verb == b'HELO':
                self.send(b'250 sink.test\r\n')
            elif verb == b'STARTTLS' and self.srv.tls:
                self.send(b'220 2.0.0 Ready to start TLS\r\n')
                self.sock = self.srv.tls.wrap_socket(self.sock, server_side=True)
                self.sess['tls'] = True
                self.buf = b''
            elif verb == b'MAIL':
                self.sess['pipelined'].append(len(self.buf) > 0)
                mail = {'mail': line.decode().rstrip('\r\n'), 'rcpts': [], 'accepted': []}
                self.send(b'250 2.1.0 Ok\r\n')
            elif verb == b'RCPT':
                self.rcpt(line, mail)
            elif verb == b'DATA':
                self.data(mail)
                mail = None
            elif verb == b'QUIT':
                self.send(b'221 2.0.0 Bye\r\n')
                return
            else:
                self.send(b'250 2.0.0 Ok\r\n')

    def rcpt(self, line, mail):
        text = line.decode().rstrip('\r\n')
        addr = text[text.index('<') + 1:text.index('>')]
        mail['rcpts'].append(text)
        if self.srv.rcpt_raw is not None:
            self.send(self.srv.rcpt_raw)
            return
        reply = self.srv.rcpt_reply.get(addr.split('@')[0], '250 2.1.5 Ok')
        if reply.startswith('2'):
            mail['accepted'].append(addr)
        self.send(reply.encode() + b'\r\n')

    def data(self, mail):
        if not mail or not mail['accepted']:
            self.send(b'554 5.5.1 Error: no valid recipients\r\n')
            return
        self.send(b'354 End data with <CR><LF>.<CR><LF>\r\n')
        raw = b''
        while True:
            l = self.readline()
            raw += l
            if l == b'.\r\n':
                break
        mail['raw'] = raw
        mail['tls'] = self.sess['tls']
        time.sleep(self.srv.data_delay)
        with self.srv.lock:
            self.sess['messages'].append(mail)
        self.send(self.srv.data_reply)


# ---- the daemon under test ----
class Daemon:
    def __init__(self, tmp, name, extra=''):
        self.dir = os.path.join(tmp, name)
        # private/: smtp chroots there when run as root (lib/server)
        os.makedirs(os.path.join(self.dir, 'queue', 'private'))
        self.conf = os.path.join(self.dir, 'mailgw.conf')
        self.log = os.path.join(self.dir, 'smtp.log')
        self.sockpath = os.path.join(self.dir, 'smtp.sock')
        with open(self.conf, 'w') as f:
            f.write('[mailgw.network]\nHostname=gw.test.example\n'
                    'Postmaster=postmaster@example.test\nProtectedDomains=example.test\n'
                    '[mailgw.path]\nQueuePath=%s/queue\n' % self.dir)
            f.write('[mailgw.timeouts]\n' + ''.join(
                '%s=3\n' % t for t in (
                    'SendingInitialTimeout', 'SendingHelloTimeout', 'SendingMailTimeout',
                    'SendingRcptTimeout', 'SendingDataInitiationTimeout',
                    'SendingDataTerminationTimeout', 'SendingQuitTimeout', 'WriteTimeout')))
            if IS_ROOT:
                f.write('[mailgw.options]\nUser=nobody\n')
            f.write(extra)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(self.sockpath)
        lsock.listen(64)
        lsock.setblocking(False)
        if IS_ROOT:
            os.chmod(self.sockpath, 0o777)
        logf = open(self.log, 'ab')
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.dup2(logf.fileno(), 2)
                if lsock.fileno() != 4:
                    os.dup2(lsock.fileno(), 4)
                os.set_inheritable(4, True)
                os.execv(SMTP, [SMTP, '-c', self.conf, '-f', '-L', '1'])
            finally:
                os._exit(127)
        lsock.close()
        logf.close()

    def alive(self):
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            return pid == 0
        except ChildProcessError:
            return False

    def log_text(self):
        with open(self.log, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def deliver(self, nexthop, rcpts, msg=b'Subject: test\r\n\r\nhello\r\n', args=(),
                timeout=60):
        mf = os.path.join(self.dir, 'msg.in')
        with open(mf, 'wb') as f:
            f.write(msg)
        cmd = [DELIVER, '-s', self.sockpath, '-n', nexthop, '-m', mf, '-t', str(timeout)]
        cmd += list(args) + list(rcpts)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout + 10)
        res = {'rc': p.returncode, 'rcpts': [], 'stderr': p.stderr.decode()}
        for line in p.stdout.decode().splitlines():
            if line.startswith('rcpt='):
                fields = {}
                head, reply = line.split(' reply=', 1)
                for kv in head.split(' '):
                    k, v = kv.split('=', 1)
                    fields[k] = v
                fields['reply'] = reply
                res['rcpts'].append(fields)
            elif '=' in line:
                k, v = line.split('=', 1)
                res[k] = v
        return res

    def stop(self):
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            end = time.time() + 10
            while time.time() < end and self.alive():
                time.sleep(0.05)
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)


def statuses(res):
    return [r.get('status') for r in res['rcpts']]


class Rcpt(dict):
    def __missing__(self, key):
        return ''


def rcpt(res, i):
    """The i-th recipient's result, or empty fields when there is none."""
    return Rcpt(res['rcpts'][i]) if i < len(res['rcpts']) else Rcpt()


class Sink:
    """Postfix's smtp-sink with arguments; -d dumps every message."""

    def __init__(self, tmp, args=()):
        self.port = free_port()
        self.dump = tempfile.mkdtemp(dir=tmp, prefix='dump')
        os.chmod(self.dump, 0o777)
        cmd = [SINK] + (['-u', 'nobody'] if IS_ROOT else []) + list(args)
        cmd += ['-d', self.dump + '/%M.', '127.0.0.1:%d' % self.port, '50']
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, 10)

    def _up(self):
        try:
            socket.create_connection(('127.0.0.1', self.port), 0.5).close()
            return True
        except OSError:
            return False

    def dumps(self):
        out = []
        for n in sorted(os.listdir(self.dump)):
            with open(os.path.join(self.dump, n), 'rb') as f:
                out.append(f.read())
        return out

    def stop(self):
        self.p.kill()
        self.p.wait()


def make_cert(tmp):
    cert, key = os.path.join(tmp, 'cert.pem'), os.path.join(tmp, 'key.pem')
    r = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                        '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
                        '-addext', 'subjectAltName=DNS:localhost'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(cert, 0o644)
    return (cert, key) if r.returncode == 0 else None


# ---------------------------------------------------------------- tests --

def test_sink(tmp, gw):
    sink = Sink(tmp)
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test', 'b@example.test'],
                     args=['-i', 'SINKID001', '-e', 'env+2Did', '-r', 'HDRS'])
    is_(statuses(res), ['sent', 'sent'], 'smtp-sink: two recipients sent')
    is_(res.get('relay'), '127.0.0.1[127.0.0.1]:%d' % sink.port, 'relay NAME[IP]:PORT')
    is_(res.get('unreachable'), '0', 'unreachable=0')
    ok(all(r['dsn'] == '2.0.0' for r in res['rcpts']), 'dsn 2.0.0')
    ok(wait_for(lambda: len(sink.dumps()) == 1, 5), 'smtp-sink got one message')
    d = sink.dumps()[0] if sink.dumps() else b''
    ok(b'X-Rcpt-Args: <a@example.test>' in d and b'X-Rcpt-Args: <b@example.test>' in d,
       'both recipients in one transaction')
    ok(b'RET=HDRS' in d and b'ENVID=env+2Did' in d, 'RET and ENVID passed on (DSN offered)')
    ok('SINKID001: to=<a@example.test>, relay=127.0.0.1[127.0.0.1]:%d, delay=' % sink.port
       in gw.log_text(), 'Postfix-shaped log line')
    ok(', dsn=2.0.0, status=sent (250 2.0.0 Ok' in gw.log_text(), 'log: dsn and status=sent')
    sink.stop()

    sink = Sink(tmp, ['-r', 'RCPT'])
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test'])
    is_(statuses(res), ['deferred'], 'smtp-sink -r RCPT: 4xx -> deferred')
    ok(res['rcpts'] and rcpt(res, 0)['dsn'].startswith('4.') and
       'in reply to RCPT TO command' in rcpt(res, 0)['reply'], 'deferred: 4.x.x and reason')
    sink.stop()

    sink = Sink(tmp, ['-f', 'RCPT'])
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test', 'b@example.test'])
    is_(statuses(res), ['bounced', 'bounced'], 'smtp-sink -f RCPT: 5xx -> bounced')
    ok(res['rcpts'] and rcpt(res, 0)['dsn'].startswith('5.'), 'bounced: 5.x.x')
    ok('status=bounced (host 127.0.0.1[127.0.0.1] said: 500 5.3.0' in gw.log_text(),
       'log: status=bounced with the server reply')
    sink.stop()

    sink = Sink(tmp, ['-r', 'MAIL'])
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test', 'b@example.test'])
    is_(statuses(res), ['deferred', 'deferred'], 'smtp-sink -r MAIL: all deferred')
    sink.stop()

    sink = Sink(tmp, ['-f', '.'])
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test'])
    is_(statuses(res), ['bounced'], 'smtp-sink -f .: 5xx at end of data -> bounced')
    ok(res['rcpts'] and 'end of DATA' in rcpt(res, 0)['reply'], 'reason names end of DATA')
    sink.stop()

    sink = Sink(tmp, ['-8'])
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test'],
                     msg=b'Subject: x\r\n\r\ncaf\xc3\xa9\r\n', args=['-b', '8BITMIME'])
    is_(statuses(res), ['bounced'], 'no 8BITMIME + 8-bit content -> bounced')
    ok(res['rcpts'] and rcpt(res, 0)['dsn'] == '5.6.3' and
       '8BITMIME' in rcpt(res, 0)['reply'], '5.6.3 with a clear reason')
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['a@example.test'],
                     msg=b'Subject: x\r\n\r\nplain\r\n', args=['-b', '8BITMIME'])
    is_(statuses(res), ['sent'], 'BODY=8BITMIME but 7-bit content: sent anyway')
    sink.stop()


def test_content(tmp, gw):
    srv = Server()
    big = b''.join(b'.line %06d with some text to make it longer %s\r\n' % (i, b'x' * (i % 90))
                   for i in range(6000))
    cases = [
        ('dot-stuffing', b'Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nnot.first\r\n. \r\n'),
        ('bare LF and bare CR', b'Subject: bare\r\n\r\na\nb\rc\r\r\nd\n\n.e\r.f\r\n'),
        ('no final CRLF', b'Subject: end\r\n\r\nlast line without end'),
        ('ends with a bare CR', b'Subject: cr\r\n\r\nx\r'),
        ('empty message', b''),
        ('8-bit and NUL bytes', b'Subject: bin\r\n\r\n\x00\xff\xfe.\r\n\x00.\r\n'),
        ('large message (%d bytes)' % len(big), b'Subject: big\r\n\r\n' + big),
    ]
    for i, (name, msg) in enumerate(cases):
        res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['c%d@example.test' % i], msg=msg,
                         args=['-b', '8BITMIME'])
        is_(statuses(res), ['sent'], 'content %s: sent' % name)
        got = [m for m in srv.messages() if m['accepted'] == ['c%d@example.test' % i]]
        raw = got[0]['raw'] if got else None
        ok(raw == wire(msg), 'content %s: byte-exact after CRLF + dot-stuffing' % name)
        if raw != wire(msg):
            diag('got %r...' % (raw[:200] if raw else raw,))
            diag('want %r...' % (wire(msg)[:200],))
    ok(all(b'\r' not in l[:-2] and l.endswith(b'\r\n')
           for m in srv.messages() for l in m['raw'].split(b'\n')[:-1] for l in [l + b'\n']),
       'no bare CR or LF on the wire')
    srv.close()


def test_mixed_and_pipelining(tmp, gw):
    srv = Server(rcpt_reply={'tmp': '452 4.2.2 Mailbox full', 'bad': '550 5.1.1 No such user'})
    res = gw.deliver('[127.0.0.1]:%d' % srv.port,
                     ['ok1@example.test', 'tmp@example.test', 'bad@example.test',
                      'ok2@example.test'],
                     args=['-i', 'MIXED0001'])
    is_(statuses(res), ['sent', 'deferred', 'bounced', 'sent'], 'mixed results in order')
    is_([r['dsn'] for r in res['rcpts']], ['2.0.0', '4.2.2', '5.1.1', '2.0.0'],
        'enhanced codes from the replies')
    ok('said: 550 5.1.1 No such user (in reply to RCPT TO command)' in rcpt(res, 2)['reply'],
       'bounce reason is the server reply')
    msgs = srv.messages()
    ok(len(msgs) == 1 and msgs[0]['accepted'] == ['ok1@example.test', 'ok2@example.test'],
       'one message to the accepted recipients')
    ok(srv.sessions and srv.sessions[-1]['pipelined'] == [True],
       'PIPELINING: RCPTs and DATA came with MAIL')
    log = gw.log_text()
    ok('MIXED0001: to=<tmp@example.test>' in log and 'status=deferred (host 127.0.0.1' in log,
       'log: deferred line')

    # DSN parameters when the server offers DSN
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['n@example.test,6,rfc822;n@example.test'])
    m = srv.messages()[-1]
    ok(m['rcpts'] == ['RCPT TO:<n@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;n@example.test'],
       'NOTIFY and ORCPT passed on')
    is_(rcpt(res, 0)['dsn_passed'], '1', 'rcpt_dsn_passed=1')
    srv.close()

    srv = Server(features=('8BITMIME',))
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['x@example.test,6', 'y@example.test'])
    is_(statuses(res), ['sent', 'sent'], 'no PIPELINING: lock-step delivery works')
    ok(srv.sessions[-1]['pipelined'] == [False], 'no PIPELINING: MAIL sent alone')
    ok(srv.messages()[-1]['rcpts'] == ['RCPT TO:<x@example.test>', 'RCPT TO:<y@example.test>'],
       'no DSN offered: no NOTIFY sent')
    is_(rcpt(res, 0)['dsn_passed'], '0', 'rcpt_dsn_passed=0 without DSN')
    srv.close()

    srv = Server(features=('PIPELINING', 'SIZE 1000'))
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['s@example.test'],
                     msg=b'Subject: big\r\n\r\n' + b'x' * 2000 + b'\r\n')
    is_(statuses(res), ['bounced'], 'SIZE limit lower than the message: bounced')
    ok(rcpt(res, 0)['dsn'] == '5.3.4' and 'exceeds size limit 1000' in rcpt(res, 0)['reply'],
       'SIZE: 5.3.4 and reason')
    ok(not srv.messages(), 'SIZE: nothing sent')
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['s@example.test'], args=['-u'])
    is_(statuses(res), ['bounced'], 'SMTPUTF8 message to a server without it: bounced')
    is_(rcpt(res, 0)['dsn'], '5.6.7', 'SMTPUTF8: 5.6.7')
    srv.close()


def test_failures(tmp, gw):
    port = free_port()
    res = gw.deliver('[127.0.0.1]:%d' % port, ['a@example.test'])
    is_(statuses(res), ['deferred'], 'dead port: deferred')
    is_(res.get('unreachable'), '1', 'dead port: unreachable=1')
    is_(res.get('relay'), 'none', 'dead port: relay=none')
    ok('connect to 127.0.0.1[127.0.0.1]:%d: Connection refused' % port in
       (rcpt(res, 0)['reply'] if res['rcpts'] else ''), 'dead port: connect error text')

    hostile = [
        ('over-long greeting line', b'220 ' + b'x' * 10000 + b'\r\n'),
        ('endless greeting without line end', b'220 ' + b'y' * 200000),
        ('too many greeting lines', b'220-x\r\n' * 1500 + b'220 end\r\n'),
        ('inconsistent codes', b'220-a\r\n221 b\r\n'),
        ('binary garbage', b'\x00\xff\x80garbage\r\n'),
        ('missing separator', b'220x\r\n'),
        ('closes mid-reply', b'220-partial'),
    ]
    for name, script in hostile:
        srv = Server(script=script, hangup=name == 'closes mid-reply')
        res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['h@example.test'])
        is_(statuses(res), ['deferred'], 'hostile %s: deferred' % name)
        reply = rcpt(res, 0)['reply'] if res['rcpts'] else ''
        ok(('malformed reply' in reply or 'lost connection' in reply) and
           rcpt(res, 0)['dsn'].startswith('4.'), 'hostile %s: reason %s' % (name, reply[:80]))
        ok(gw.alive(), 'hostile %s: daemon alive' % name)
        srv.close()

    srv = Server(ehlo_raw=b'250-ok\r\n' + b'250-' + b'z' * 5000 + b'\r\n250 end\r\n')
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['h@example.test'])
    is_(statuses(res), ['deferred'], 'over-long EHLO reply line: deferred')
    srv.close()
    srv = Server(rcpt_raw=b'250-ok\r\n550 mixed\r\n')
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['h@example.test', 'i@example.test'])
    is_(statuses(res), ['deferred', 'deferred'], 'malformed RCPT reply mid-transaction: deferred')
    ok(res['rcpts'] and 'malformed reply (inconsistent reply codes)' in rcpt(res, 0)['reply'],
       'mid-transaction: the reason')
    srv.close()

    srv = Server(silent=True)
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['t@example.test'])
    is_(statuses(res), ['deferred'], 'no greeting: deferred after SendingInitialTimeout')
    ok(res['rcpts'] and 'timed out' in rcpt(res, 0)['reply'], 'timeout reason')
    srv.close()

    srv = Server(script=b'421 4.3.2 go away\r\n')
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['g@example.test'])
    is_(statuses(res), ['deferred'], '421 greeting: deferred')
    ok(res['rcpts'] and 'refused to talk to me: 421 4.3.2 go away' in rcpt(res, 0)['reply'],
       '421 greeting: reason')
    is_(res.get('unreachable'), '0', 'a server that answered is not unreachable')

    sink = Sink(tmp)
    res = gw.deliver('[127.0.0.1]:%d' % sink.port, ['after@example.test'])
    is_(statuses(res), ['sent'], 'after all that the daemon still delivers')
    sink.stop()


def test_concurrency(tmp, gw):
    srv = Server(data_delay=1)
    results = [None] * 20

    def one(i):
        results[i] = gw.deliver('[127.0.0.1]:%d' % srv.port, ['p%d@example.test' % i],
                                args=['-i', 'PAR%04d' % i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ok(all(r and statuses(r) == ['sent'] for r in results), '20 parallel deliveries: all sent')
    is_(len(srv.messages()), 20, '20 parallel deliveries: 20 messages arrived')
    ok(srv.max_active > 1, 'deliveries ran at the same time (max %d sessions)' % srv.max_active)
    srv.close()


def test_tls(tmp, base):
    certs = make_cert(tmp)
    if not certs:
        skip(1, 'openssl could not make a certificate')
        return
    gw = Daemon(tmp, 'tlsmay', '[mailgw.tls]\nClientTLS=may\n')
    srv = Server(tls=certs)
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['tls@example.test'], args=['-i', 'TLSID0001'])
    is_(statuses(res), ['sent'], 'STARTTLS (may): sent')
    ok(srv.messages() and srv.messages()[-1]['tls'], 'STARTTLS (may): message went over TLS')
    ok(wait_for(lambda: 'TLS connection established to 127.0.0.1[127.0.0.1]' in gw.log_text(), 3),
       'STARTTLS logged')
    plain = Server()
    res = gw.deliver('[127.0.0.1]:%d' % plain.port, ['p@example.test'])
    is_(statuses(res), ['sent'], 'may: a server without STARTTLS gets plain text')
    gw.stop()

    gw = Daemon(tmp, 'tlsenc', '[mailgw.tls]\nClientTLS=encrypt\n')
    res = gw.deliver('[127.0.0.1]:%d' % plain.port, ['p@example.test'])
    is_(statuses(res), ['deferred'], 'encrypt: no STARTTLS offered -> deferred')
    ok(res['rcpts'] and 'TLS is required' in rcpt(res, 0)['reply'], 'encrypt: reason')
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['tls2@example.test'])
    is_(statuses(res), ['sent'], 'encrypt: self-signed certificate is fine')
    gw.stop()

    gw = Daemon(tmp, 'tlsver', '[mailgw.tls]\nClientTLS=verify\nCAFile=%s\n' % certs[0])
    res = gw.deliver('[localhost]:%d' % srv.port, ['v@example.test'])
    is_(statuses(res), ['sent'], 'verify: trusted certificate for localhost -> sent')
    res = gw.deliver('[127.0.0.1]:%d' % srv.port, ['v2@example.test'])
    is_(statuses(res), ['deferred'], 'verify: name mismatch -> deferred')
    ok(res['rcpts'] and 'certificate does not match' in rcpt(res, 0)['reply'] and
       rcpt(res, 0)['dsn'] == '4.7.5', 'verify: 4.7.5 and reason')
    gw.stop()

    gw = Daemon(tmp, 'tlsver2', '[mailgw.tls]\nClientTLS=verify\n')
    res = gw.deliver('[localhost]:%d' % srv.port, ['v3@example.test'])
    is_(statuses(res), ['deferred'], 'verify: untrusted (self-signed, system CAs) -> deferred')
    ok(res['rcpts'] and 'untrusted certificate' in rcpt(res, 0)['reply'],
       'verify: untrusted reason')
    gw.stop()
    srv.close()
    plain.close()


def main():
    for p in (SMTP, DELIVER):
        if not os.access(p, os.X_OK):
            print('1..0 # SKIP %s not built' % p)
            return
    tmp = tempfile.mkdtemp(prefix='smtpt')
    os.chmod(tmp, 0o755)
    gw = Daemon(tmp, 'main')
    try:
        if os.access(SINK, os.X_OK):
            test_sink(tmp, gw)
        test_content(tmp, gw)
        test_mixed_and_pipelining(tmp, gw)
        test_failures(tmp, gw)
        test_concurrency(tmp, gw)
        test_tls(tmp, gw)
        ok(gw.alive(), 'daemon alive at the end')
    finally:
        gw.stop()
        if os.environ.get('MAILGW_KEEP'):
            diag('kept ' + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    done()


main()
