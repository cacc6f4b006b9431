#!/usr/bin/python3
"""av_e2e.t - anti-virus end to end through the real daemons (issue 5,
"Done when" bullet 1): smtplib -> smtpd -> qmgr -> scand (libclamav, the
starter bases of conf/bases) -> smtp -> the aiosmtpd sink
t/integration/relay_sink.py.

Infected, each to a recipient of its own; with the shipped default policy
(reference 1.13) every one must end "ID: to=<rcpt>, status=blocked", with
"ID: av-scanned ... status=infected names=..." naming the signature, and
nothing may reach the sink for that recipient that is the original (its
X-E2E-Case header) or carries the payload (raw or decoded: a notice to
the recipient is allowed, the virus in it is not):
  EICAR as the body; as a base64, a quoted-printable (every byte =XX
  encoded, so only decoding finds it) and a uuencoded attachment; inside
  zip, gzip, bzip2, tar and 7z archives (made at test time with the
  tools, each skipped when its tool is missing); inside an attachment of a
  nested message/rfc822; every file of /usr/share/clamav-testfiles as a
  base64 attachment (skipped when the package is absent), named
  Mailgw.Test.File.*.
Clean, delivered: a 5 MB attachment of random bytes (base64) and an 8-bit
text mail (UTF-8 and Latin-1 bytes, a leading-dot line, a "From " line);
the sink gets the body byte for byte and the sent header fields in order
(the gateway may add Received: and X-Anti-Virus:).
At the end the queue must be empty (nothing stuck, nothing lost).
Environment: MAILGW_BUILD (build dir), MAILGW_KEEP=1 keeps the directory.
"""
import binascii
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'helpers'))
import ave2e as T  # noqa: E402

T.need_built()
EICAR = T.EICAR
NAME = r'Mailgw\.Test\.EICAR'


def qp_all(data):
    """Quoted-printable with every byte as =XX, soft breaks every 25 bytes."""
    lines = []
    for i in range(0, len(data), 25):
        lines.append(''.join('=%02X' % c for c in data[i:i + 25]))
    return ('=\r\n'.join(lines) + '\r\n').encode()


def uuencode(name, data):
    out = 'begin 644 %s\r\n' % name
    for i in range(0, len(data), 45):
        out += binascii.b2a_uu(data[i:i + 45]).decode().rstrip('\n') + '\r\n'
    return (out + '`\r\nend\r\n').encode()


def slurp(path):
    with open(path, 'rb') as f:
        return f.read()


gw, sink = T.gateway(**{'mailgw.ave.MaxWorkers': 3})
work = tempfile.mkdtemp(prefix='av-e2e-', dir=gw.dir())

# ---- the infected cases: (case, rcpt, message, payloads, name regex) ----
cases = []


def infected(case, msg, payloads, name=NAME):
    cases.append((case, 'v-%s@example.test' % case, msg, payloads, name))


infected('body', T.mail('body', body=EICAR + b'\r\n'), [EICAR])
infected('base64', T.mail('base64', parts=[T.attach_b64('eicar.com', EICAR)]), [EICAR])
infected('qp', T.mail('qp', parts=[(
    'Content-Type: application/octet-stream; name="eicar.txt"\r\n'
    'Content-Disposition: attachment; filename="eicar.txt"\r\n'
    'Content-Transfer-Encoding: quoted-printable\r\n', qp_all(EICAR))]), [EICAR])
infected('uuencode', T.mail('uuencode', body=b'Here it is:\r\n\r\n' + uuencode('eicar.com', EICAR)),
         [EICAR])

with open(os.path.join(work, 'eicar.com'), 'wb') as f:
    f.write(EICAR)
ARCHIVES = [
    ('zip', 'zip', 'cd %s && zip -q e.zip eicar.com', 'e.zip'),
    ('gzip', 'gzip', 'cd %s && gzip -c eicar.com > e.gz', 'e.gz'),
    ('bzip2', 'bzip2', 'cd %s && bzip2 -c eicar.com > e.bz2', 'e.bz2'),
    ('tar', 'tar', 'cd %s && tar cf e.tar eicar.com', 'e.tar'),
    ('7z', '7z', 'cd %s && 7z a -bd e.7z eicar.com >/dev/null', 'e.7z'),
]
skipped = []
for kind, tool, cmd, fname in ARCHIVES:
    if not T.have(tool):
        skipped.append((kind, tool))
        continue
    if subprocess.call(cmd % work, shell=True) != 0:
        T.bail('%s failed' % (cmd % work))
    data = slurp(os.path.join(work, fname))
    infected(kind, T.mail(kind, parts=[T.attach_b64(fname, data)]), [EICAR, data])

inner = T.mail('inner', parts=[T.attach_b64('eicar.com', EICAR)])
infected('rfc822', T.mail('rfc822', parts=[(
    'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"\r\n',
    inner)]), [EICAR])

testfiles = []
if os.path.isdir(T.TESTFILES):
    testfiles = sorted(f for f in os.listdir(T.TESTFILES)
                       if os.path.isfile(os.path.join(T.TESTFILES, f)))
for i, f in enumerate(testfiles):
    data = slurp(os.path.join(T.TESTFILES, f))
    infected('tf%02d' % i, T.mail('tf%02d' % i, parts=[T.attach_b64(f, data)]), [data],
             r'Mailgw\.Test\.File\.')

# ---- the clean cases ----
big = os.urandom(5 * 1024 * 1024)
clean_big = T.mail('clean-big', parts=[T.attach_b64('random.bin', big)])
text8 = ('Grüße aus Köln – naïve café, 5 €, ✓ done.\r\n'
         '.a line that starts with a dot\r\n'
         'From the start of a line\r\n'
         '..two dots\r\n').encode('utf-8') + b'Latin-1 bytes: \xe9\xe8\xe0\xfc\xdf\r\n' + \
    b''.join(b'line %04d \xc3\xa9\xc3\xa0 ' % i + b'x' * 60 + b'\r\n' for i in range(200)) + \
    b'.\r\n' + b'last line without CRLF? no, with.\r\n'
clean_8bit = T.mail('clean-8bit', body=text8,
                    extra_headers='Content-Type: text/plain; charset=utf-8\r\n'
                                  'Content-Transfer-Encoding: 8bit\r\n')
clean = [('clean-big', 'c-big@example.test', clean_big, False),
         ('clean-8bit', 'c-8bit@example.test', clean_8bit, True)]

# ---- submit everything, then judge ----
ids = {}
for case, rcpt, msg, payloads, name in cases:
    ids[case] = T.send(gw, [rcpt], msg)
for case, rcpt, msg, eightbit in clean:
    ids[case] = T.send(gw, [rcpt], msg, eightbit=eightbit)
T.ok(all(ids.values()), 'every message accepted with 250 (%d)' % len(ids))

deadline = time.time() + 90


def left():
    return max(1, deadline - time.time())


for case, rcpt, msg, payloads, name in cases:
    qid = ids[case]
    what = 'EICAR %s' % case if not case.startswith('tf') else \
        'clamav-testfiles %s' % testfiles[int(case[2:])]
    if not qid:
        T.ok(False, '%s: accepted' % what)
        continue
    res = T.wait_outcome(gw, qid, left(), rcpt)
    T.ok(res == 'blocked', '%s: blocked (%s)' % (what, res)) or T.diag(
        '\n'.join(l for l in gw.log_text().splitlines() if qid in l))
    line = T.av_line(gw, qid)
    T.ok(re.search(r'status=infected names="[^"]*%s' % name, line),
         '%s: av-scanned status=infected with the name' % what) or T.diag(line or 'no av-scanned line')

for case, rcpt, msg, eightbit in clean:
    qid = ids[case]
    res = T.wait_outcome(gw, qid, left(), rcpt) if qid else None
    T.ok(res == 'delivered', '%s: delivered (%s)' % (case, res)) or T.diag(
        '\n'.join(l for l in gw.log_text().splitlines() if qid and qid in l))
    T.ok(re.search(r'status=clean', T.av_line(gw, qid or 'none')), '%s: scanned clean' % case)
    got = T.wait_for(lambda: T.sink_for(sink, rcpt), 20) if res else None
    if not got:
        T.ok(False, '%s: in the sink' % case)
        T.skip(1, 'not delivered')
        continue
    if not T.ok(len(got) == 1, '%s: in the sink once' % case):
        T.diag('%d copies' % len(got))
    hs, bs = T.split_message(msg)
    hr, br = T.split_message(got[0]['data'])
    T.ok(br == bs, '%s: body byte for byte (%d bytes)' % (case, len(bs))) or T.diag(
        'sent %d bytes, got %d' % (len(bs), len(br)))
    T.ok(T.header_lines(hr) == T.header_lines(hs),
         '%s: header fields kept (only Received:/X-Anti-Virus: added)' % case) or T.diag(
        hr.decode('latin-1'))

# after every verdict: nothing with a payload reached a blocked recipient
# (notices to recipients, if any, are out of the queue by now)
T.ok(T.wait_for(lambda: T.queue_empty(gw), left()), 'queue empty at the end (nothing stuck)') or \
    T.diag(T.queue_listing(gw))
for case, rcpt, msg, payloads, name in cases:
    good, why = T.not_delivered_with(sink, rcpt, case, payloads)
    T.ok(good, '%s: nothing with the virus reached %s' % (case, rcpt)) or T.diag(why)
for kind, tool in skipped:
    T.skip(3, '%s not installed (%s)' % (tool, kind))
if not testfiles:
    T.skip(1, '%s absent (apt-get install clamav-testfiles)' % T.TESTFILES)
T.ok(not re.search(r'\b(panic|fatal):', gw.log_text()), 'no fatal errors in the log')
gw.close()
T.done()
