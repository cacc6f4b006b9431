#!/usr/bin/python3
"""av_bombs_e2e.t - the archive-bomb set through the real daemons (issue 5,
"Done when" bullet 2): smtplib -> smtpd -> qmgr -> scand -> smtp -> the
aiosmtpd sink t/integration/relay_sink.py.  Each bomb is a base64
attachment of a message to a recipient of its own; none may be delivered
as clean: the recipient ends "status=blocked" (shipped default policy) or
the message is still deferred ("scan deferred"), never "status=sent";
scand's av-scanned line is not status=clean; and the sink never gets the
original (its X-E2E-Case header) or the bomb for that recipient.
  recursive zip   a zip nested 25 deep (MaxRecursion 17), each level
                  r.zip inside r.zip (a true zip quine is not built here)
  nesting         zip and tar alternating, 24 levels (MaxRecursion 17)
  overlapping     50 entries whose stored data hold the next entry
                  (the overlap of Fifield's non-recursive bombs)
  many entries    20,000 entries (MaxFiles 10000)
  encrypted       zip -P (skipped without zip)
A clean control message sent last must be delivered, so an empty sink
means "blocked", not "the gateway delivers nothing".
Environment: MAILGW_BUILD (build dir), MAILGW_KEEP=1 keeps the directory.
"""
import io
import os
import re
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'helpers'))
import ave2e as T  # noqa: E402

T.need_built()


def zip_bytes(entries, method=zipfile.ZIP_STORED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return b.getvalue()


def deep_zip(depth):
    data, name = b'innermost\n', 'level.txt'
    for i in range(depth):
        data, name = zip_bytes([(name, data)]), 'r.zip'
    return data


def mixed_nest(depth):
    data, name = b'innermost\n', 'level.txt'
    for i in range(depth):
        if i % 2:
            data, name = zip_bytes([(name, data)]), 'l%02d.zip' % i
        else:
            b = io.BytesIO()
            with tarfile.open(fileobj=b, mode='w') as t:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            data, name = b.getvalue(), 'l%02d.tar' % i
    return data


def overlap_zip(n=50):
    def lh(name, data):
        crc = zlib.crc32(data) & 0xffffffff
        return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0, crc, len(data),
                           len(data), len(name), 0) + name

    def ch(name, data, off):
        crc = zlib.crc32(data) & 0xffffffff
        return struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0, crc,
                           len(data), len(data), len(name), 0, 0, 0, 0, 0, off) + name
    names = [b'f%03d.bin' % i for i in range(n)]
    datas = [None] * n
    datas[n - 1] = b'kernel' * 100
    blob = lh(names[n - 1], datas[n - 1]) + datas[n - 1]
    for i in range(n - 2, -1, -1):
        datas[i] = blob
        blob = lh(names[i], blob) + blob
    offs, o = [], 0
    for i in range(n):
        offs.append(o)
        o += 30 + len(names[i])
    cd = b''.join(ch(names[i], datas[i], offs[i]) for i in range(n))
    return blob + cd + struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, len(cd), len(blob), 0)


gw, sink = T.gateway()
bombs = []
bombs.append(('recursive', 'r.zip', deep_zip(25)))
bombs.append(('nesting', 'n.zip', mixed_nest(24)))
bombs.append(('overlap', 'overlap.zip', overlap_zip()))
bombs.append(('many', 'many.zip', zip_bytes([('f%05d.txt' % i, 'x') for i in range(20000)])))
if T.have('zip'):
    work = os.path.join(gw.dir(), 'enc')
    os.mkdir(work)
    with open(os.path.join(work, 'plain.txt'), 'w') as f:
        f.write('secret content\n' * 10)
    if subprocess.call('cd %s && zip -q -P s3cret enc.zip plain.txt' % work, shell=True) != 0:
        T.bail('zip -P failed')
    with open(os.path.join(work, 'enc.zip'), 'rb') as f:
        bombs.append(('encrypted', 'enc.zip', f.read()))

ids = {}
for case, fname, data in bombs:
    ids[case] = T.send(gw, ['b-%s@example.test' % case],
                       T.mail(case, parts=[T.attach_b64(fname, data, 'application/zip')]))
ids['control'] = T.send(gw, ['control@example.test'], T.mail('control', body=b'clean\r\n'))
T.ok(all(ids.values()), 'every message accepted with 250 (%d)' % len(ids))

deadline = time.time() + 90


def final(qid, rcpt):
    """blocked / delivered / bounced, or 'deferred' once a scan was
    deferred and no verdict came (judged at the deadline)."""
    return T.outcome(gw, qid, rcpt)


for case, fname, data in bombs:
    qid, rcpt = ids[case], 'b-%s@example.test' % case
    if not qid:
        T.ok(False, '%s: accepted' % case)
        continue
    res = T.wait_for(lambda: final(qid, rcpt), max(1, deadline - time.time()))
    if not res and re.search(r'%s: scan deferred' % qid, gw.log_text()):
        res = 'deferred'
    T.ok(res in ('blocked', 'deferred'), '%s: blocked or deferred, not delivered (%s)'
         % (case, res)) or T.diag('\n'.join(l for l in gw.log_text().splitlines() if qid in l))
    line = T.av_line(gw, qid)
    T.ok('status=clean' not in line, '%s: not scanned clean' % case) or T.diag(line)
    T.diag('%s: %s' % (case, line or 'no verdict (deferred)'))

res = T.wait_outcome(gw, ids['control'], max(1, deadline - time.time()), 'control@example.test') \
    if ids['control'] else None
T.ok(res == 'delivered', 'the clean control message is delivered (%s)' % res)
T.ok(T.wait_for(lambda: T.sink_for(sink, 'control@example.test'), 20), 'and is in the sink')
for case, fname, data in bombs:
    good, why = T.not_delivered_with(sink, 'b-%s@example.test' % case, case, [data])
    T.ok(good, '%s: the bomb never reached the sink' % case) or T.diag(why)
if not T.have('zip'):
    T.skip(3, 'zip not installed (encrypted zip)')
gw.close()
T.done()
