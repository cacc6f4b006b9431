"""mailgwtest - the Python twin of t/lib/MailgwTest.pm (same names).

    import sys; sys.path.insert(0, 't/lib')
    import mailgwtest
    gw = mailgwtest.MailgwTest(**{'mailgw.limits.IncomingSessions': 5})
    assert gw.start()
    ... smtplib.SMTP('127.0.0.1', gw.port()) ...
    assert gw.wait_log(r'status=sent', 10)
    rc, out = gw.mailgw('status')
    gw.stop()

Keyword arguments with a dot are config overrides 'section.Name' (value
None removes a default, a list gives repeated lines); options: raw (text
appended), env (dict), testd (dict name->mode or list of names: run
t/helpers/testd under those names), daemons (MAILGW_DAEMONS).  Python
keywords cannot hold dots directly: pass them with **{...} or as the
overrides dict: MailgwTest(overrides={'limits.X': 1}).
The build directory is $MAILGW_BUILD, else <repo>/build.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.path.abspath(os.environ['MAILGW_BUILD']) if os.environ.get('MAILGW_BUILD') \
    else os.path.join(ROOT, 'build')

SECTION_ORDER = ['mailgw.network', 'mailgw.access', 'mailgw.forward', 'mailgw.path',
                 'mailgw.options']


def bin(name):
    return os.path.join(BUILD, 'bin', name)


def libexec(name):
    return os.path.join(BUILD, 'libexec', name)


def helper(name):
    return os.path.join(BUILD, 't', 'helpers', name)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(')') + 2:][:1]
    return state not in ('Z', 'X', '')


def _section_name(sec):
    return sec if re.match(r'^(mailgw|smtpgw|updater)\.', sec) else 'mailgw.' + sec


class MailgwTest:
    def __init__(self, overrides=None, raw='', env=None, testd=None, daemons=None, **kw):
        self._dir = tempfile.mkdtemp(prefix='mailgw-test-')
        if os.geteuid() == 0:
            os.chmod(self._dir, 0o755)
        self._port = free_port()
        self._sink_port = free_port()
        self.raw = raw
        self.env = dict(env or {})
        self.overrides = {}
        self.order = []
        self.fg = None
        self.started = False
        if testd is not None:
            self._setup_testd(testd)
        if daemons is not None:
            self.env['MAILGW_DAEMONS'] = daemons
        self._defaults()
        self.set(**dict(overrides or {}, **kw))
        self.write_config()

    def _defaults(self):
        d = self._dir
        self.set(**{
            'mailgw.network.ListenOn': '127.0.0.1:%d' % self._port,
            'mailgw.network.Hostname': 'gw.example.test',
            'mailgw.network.Postmaster': 'postmaster@example.test',
            'mailgw.network.ProtectedDomains': 'example.test',
            'mailgw.access.RelayRule': 'allow from 127.0.0.0/8 to *',
            'mailgw.forward.ForwardRoute': '* [127.0.0.1:%d]' % self._sink_port,
            'mailgw.path.QueuePath': d + '/queue',
            'mailgw.options.LogFilename': d + '/mailgw.log',
        })
        if os.geteuid() == 0:
            self.set(**{'mailgw.options.User': 'nobody'})

    def _setup_testd(self, spec):
        modes = dict(spec) if isinstance(spec, dict) else {n: 'run' for n in spec}
        names = sorted(modes) if isinstance(spec, dict) else list(spec)
        lx = os.path.join(self._dir, 'libexec')
        os.mkdir(lx, 0o755)
        for n in names:
            os.symlink(helper('testd'), os.path.join(lx, n))
            if modes[n] != 'run':
                self.env['TESTD_MODE_' + n] = modes[n]
        self.env['MAILGW_LIBEXEC'] = lx
        self.env['MAILGW_DAEMONS'] = ','.join(names)

    def set(self, **kv):
        for k in sorted(kv):
            sec, _, name = k.rpartition('.')
            if not sec:
                raise ValueError("override %r is not section.Name" % k)
            sec = _section_name(sec)
            if sec not in self.order:
                self.order.append(sec)
            self.overrides.setdefault(sec, {})[name] = kv[k]
        return self

    def config_text(self):
        secs = list(dict.fromkeys(SECTION_ORDER + self.order))
        text = '# written by mailgwtest\n'
        for sec in secs:
            params = self.overrides.get(sec)
            if not params:
                continue
            lines = []
            for name in sorted(params):
                v = params[name]
                if v is None:
                    continue
                for item in (v if isinstance(v, (list, tuple)) else [v]):
                    lines.append('%s=%s\n' % (name, item))
            if lines:
                text += '[%s]\n' % sec + ''.join(lines)
        return text + (self.raw + '\n' if self.raw else '')

    def write_config(self, text=None):
        path = self.conf_path()
        with open(path + '.tmp', 'w') as f:
            f.write(self.config_text() if text is None else text)
        os.rename(path + '.tmp', path)
        return path

    def dir(self):
        return self._dir

    def port(self):
        return self._port

    def sink_port(self):
        return self._sink_port

    def conf_path(self):
        return os.path.join(self._dir, 'mailgw.conf')

    def log_path(self):
        return os.path.join(self._dir, 'mailgw.log')

    def queue_dir(self):
        return os.path.join(self._dir, 'queue')

    def pid_path(self):
        return os.path.join(self._dir, 'queue', 'pid', 'master.pid')

    def log_text(self):
        try:
            with open(self.log_path(), errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def wait_log(self, pattern, seconds=10):
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.time() + seconds
        while True:
            if rx.search(self.log_text()):
                return True
            if time.time() > deadline:
                return False
            time.sleep(0.1)

    def _env(self):
        e = dict(os.environ)
        e.pop('MAILGW_CONF', None)
        e.update(self.env)
        return e

    def mailgw(self, *args, timeout=60):
        p = subprocess.run([bin('mailgw'), '-c', self.conf_path()] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=self._env(), timeout=timeout)
        return p.returncode, p.stdout.decode(errors='replace')

    def master_pid(self):
        try:
            with open(self.pid_path()) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def start(self, foreground=True, wait=None):
        if foreground:
            log = open(self.log_path(), 'ab')
            self.fg = subprocess.Popen(
                [bin('mailgw'), '-c', self.conf_path(), 'start', '-f'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env(), start_new_session=True)
            log.close()
        else:
            rc, out = self.mailgw('start')
            if rc != 0:
                print('# mailgw start failed (%d): %s' % (rc, out))
                return False
        self.started = True
        if wait is None:
            wait = 'smtp' if self._runs_smtpd() else 'status'
        if wait == 'none':
            return True
        ok = self._wait_smtp(20) if wait == 'smtp' else self._wait_status(20)
        if not ok:
            print('# mailgw did not come up; log:\n# ' + self.log_text().replace('\n', '\n# '))
        return ok

    def _runs_smtpd(self):
        names = re.split(r'[, ]+', self.env.get('MAILGW_DAEMONS', 'qmgr,smtpd,smtp'))
        d = self.env.get('MAILGW_LIBEXEC', os.path.join(BUILD, 'libexec'))
        return 'smtpd' in names and os.access(os.path.join(d, 'smtpd'), os.X_OK)

    def _fg_alive(self):
        return self.fg is None or self.fg.poll() is None

    def banner(self):
        try:
            with socket.create_connection(('127.0.0.1', self._port), timeout=2) as s:
                s.settimeout(8)     # greeting waits for the client's rDNS
                line = s.recv(512).decode(errors='replace')
                s.sendall(b'QUIT\r\n')
                return line
        except OSError:
            return ''

    def _wait_smtp(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if not self._fg_alive():
                return False
            if self.banner().startswith('220'):
                return True
            time.sleep(0.2)
        return False

    def _wait_status(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if not self._fg_alive():
                return False
            rc, out = self.mailgw('status')
            if rc == 0 and 'waiting' not in out:
                return True
            time.sleep(0.2)
        return False

    def status(self):
        """Parsed `mailgw status`: {'master': pid, NAME: {pid, uptime,
        restarts, state}}, or None when not running."""
        rc, out = self.mailgw('status')
        if rc != 0:
            return None
        st = {}
        m = re.search(r'master pid (\d+)', out)
        st['master'] = int(m.group(1)) if m else 0
        for line in out.splitlines():
            m = re.match(r'^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)', line)
            if m:
                st[m.group(1)] = {'pid': int(m.group(2)), 'uptime': int(m.group(3)),
                                  'restarts': int(m.group(4)), 'state': m.group(5)}
        return st

    def stop(self):
        if not self.started:
            return None
        self.started = False
        mpid = self.master_pid()
        rc, _ = self.mailgw('stop')
        deadline = time.time() + 20
        if self.fg is not None:
            try:
                self.fg.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(self.fg.pid, signal.SIGKILL)
                self.fg.wait()
            self.fg = None
        elif alive(mpid):
            while time.time() < deadline and alive(mpid):
                time.sleep(0.1)
            if alive(mpid):
                os.kill(mpid, signal.SIGKILL)
        return rc

    def close(self):
        self.stop()
        if self._dir and not os.environ.get('MAILGW_KEEP'):
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
