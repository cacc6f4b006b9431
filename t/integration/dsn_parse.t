#!/usr/bin/python3
# dsn_parse.t - delivery status notifications built by lib/dsn (through
# t/helpers/dsn_make, which writes the original as a real queue file and
# reads it back as qmgr does) parsed with Python's email package: the
# multipart/report structure, the message/delivery-status fields, RET,
# ENVID, ORCPT, SMTPUTF8, limits, and hostile input.
import os
import re
import subprocess
import sys
import tempfile
from email import message_from_bytes, policy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("B", "build")
HELPER = os.path.join(ROOT, BUILD, "t", "helpers", "dsn_make")

sys.path.insert(0, os.path.join(ROOT, "t", "lib"))
from tap import diag, done, ok  # noqa: E402


ORIGINAL = (b"From: Alice <alice@example.org>\r\n"
            b"To: bob@example.test\r\n"
            b"Subject: quarterly numbers\r\n"
            b"Message-ID: <orig-1@example.org>\r\n"
            b"\r\n"
            b"Hello Bob,\r\n"
            b"the numbers are attached.\r\n")


def make(args, original=ORIGINAL, expect_rc=0):
    p = subprocess.run([HELPER, "-T", "1700000100"] + args, input=original,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != expect_rc:
        diag("dsn_make %r: rc %d: %s" % (args, p.returncode, p.stderr.decode("utf-8", "replace")))
    return p


def parse(raw):
    return message_from_bytes(raw, policy=policy.default)


def wire_ok(raw, name):
    """CRLF only, no line over 998 octets, no NUL, headers ASCII-safe."""
    lines = raw.split(b"\r\n")
    ok(raw.endswith(b"\r\n"), name + ": ends with CRLF")
    ok(all(b"\n" not in l and b"\r" not in l for l in lines), name + ": no bare CR or LF")
    longest = max(len(l) for l in lines)
    ok(longest <= 998, name + ": longest line %d <= 998" % longest)


def parts_of(msg):
    ok(msg.is_multipart(), "is multipart")
    ok(msg.get_content_type() == "multipart/report", "multipart/report")
    ok(msg.get_param("report-type") == "delivery-status", "report-type=delivery-status")
    parts = list(msg.iter_parts())
    ok(len(parts) == 3, "three parts (got %d)" % len(parts))
    ok(parts[0].get_content_type() == "text/plain", "part 1 text/plain")
    ok(parts[1].get_content_type() == "message/delivery-status", "part 2 delivery-status")
    return parts


def status_blocks(part):
    blocks = part.get_payload()
    return blocks[0], blocks[1:]


def fail_report():
    p = make(["-Q", "-e", "env+2Bid-42",
              "-R", "failed", "-a", "bob@example.test", "-o", "rfc822;Bob+2Bx@example.test",
              "-S", "5.1.1", "-m", "mx.example.test[192.0.2.5]:25",
              "-d", "550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown",
              "-R", "failed", "-a", "carol@example.test", "-S", "5.7.1",
              "-m", "unknown[192.0.2.6]:25", "-d", "554 5.7.1 Relay access denied"])
    if not ok(p.returncode == 0, "failure report built"):
        return
    raw = p.stdout
    wire_ok(raw, "failure report")
    msg = parse(raw)
    ok(msg["Subject"] == "Undelivered Mail Returned to Sender", "failure subject")
    ok(msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.test", "From MAILER-DAEMON")
    ok(msg["From"].addresses[0].display_name == "Mail Delivery System", "From display name")
    ok(msg["To"].addresses[0].addr_spec == "sender@example.org", "To = original sender")
    ok(msg["Auto-Submitted"] == "auto-replied", "Auto-Submitted: auto-replied")
    ok(re.match(r"^<[^<>@\s]+@mx\.example\.test>$", str(msg["Message-ID"])) is not None,
       "Message-ID at the hostname")
    ok(msg["Date"] is not None and msg["Date"].datetime is not None, "Date parses")
    ok(msg["MIME-Version"] == "1.0", "MIME-Version")
    parts = parts_of(msg)
    text = parts[0].get_content()
    ok("mx.example.test" in text and "<bob@example.test>" in text and
       "User unknown" in text and "<carol@example.test>" in text, "text part names host and recipients")
    ok("4Xyz0123abcd" in text, "text part has the queue ID")
    per_msg, rcpts = status_blocks(parts[1])
    ok(per_msg["Reporting-MTA"] == "dns; mx.example.test", "Reporting-MTA")
    ok(per_msg["Original-Envelope-Id"] == "env+id-42", "Original-Envelope-Id (xtext decoded)")
    ok(per_msg["X-Mailgw-Queue-ID"] == "4Xyz0123abcd", "X-Mailgw-Queue-ID")
    ok(per_msg["Arrival-Date"] is not None, "Arrival-Date")
    ok(len(rcpts) == 2, "two recipient blocks")
    names = [k for k in per_msg.keys()]
    ok(names == ["Original-Envelope-Id", "Reporting-MTA", "Arrival-Date", "X-Mailgw-Queue-ID"],
       "per-message fields in RFC 3464 order: %s" % names)
    ok(list(rcpts[0].keys()) == ["Original-Recipient", "Final-Recipient", "Action", "Status",
                                 "Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date"],
       "per-recipient fields in RFC 3464 order")
    r0, r1 = rcpts[0], rcpts[1]
    ok(r0["Original-Recipient"] == "rfc822; Bob+x@example.test", "Original-Recipient from ORCPT")
    ok(r0["Final-Recipient"] == "rfc822; bob@example.test", "Final-Recipient 1")
    ok(r0["Action"] == "failed" and r0["Status"] == "5.1.1", "Action/Status 1")
    ok(r0["Remote-MTA"] == "dns; mx.example.test", "Remote-MTA from relay NAME[IP]:PORT")
    ok(str(r0["Diagnostic-Code"]).startswith("smtp; 550 5.1.1"), "Diagnostic-Code 1")
    ok(r0["Last-Attempt-Date"] is not None, "Last-Attempt-Date")
    ok(r0["Will-Retry-Until"] is None, "no Will-Retry-Until for failed")
    ok(r1["Original-Recipient"] is None, "no Original-Recipient without ORCPT")
    ok(r1["Final-Recipient"] == "rfc822; carol@example.test", "Final-Recipient 2")
    ok(r1["Remote-MTA"] == "dns; [192.0.2.6]", "Remote-MTA of an unknown name is the IP")
    ok(r1["Status"] == "5.7.1", "Status 2")
    ok(parts[2].get_content_type() == "message/rfc822", "no RET: full message/rfc822")
    inner = parts[2].get_payload()[0]
    ok(inner["Subject"] == "quarterly numbers", "returned message's Subject")
    ok("the numbers are attached." in inner.get_content(), "returned message's body")
    env = p.stderr.decode()
    ok("sender=<> rcpt=<sender@example.org> notify=1 nrcpts=1 body=1 smtputf8=0" in env,
       "report queued: null sender, rcpt = original sender, NOTIFY=NEVER")


def hdrs_report():
    p = make(["-r", "HDRS", "-R", "failed", "-a", "bob@example.test", "-S", "5.2.2",
              "-d", "552 5.2.2 Mailbox full"])
    if not ok(p.returncode == 0, "RET=HDRS report built"):
        return
    wire_ok(p.stdout, "RET=HDRS")
    parts = parts_of(parse(p.stdout))
    ok(parts[2].get_content_type() == "text/rfc822-headers", "RET=HDRS: text/rfc822-headers")
    body = parts[2].get_payload()
    if isinstance(body, list):
        body = "".join(str(x) for x in body)
    ok("Subject: quarterly numbers" in body, "headers returned")
    ok("the numbers are attached." not in body, "body not returned")
    p = make(["-r", "FULL", "-R", "failed", "-a", "bob@example.test"])
    parts = parts_of(parse(p.stdout))
    ok(parts[2].get_content_type() == "message/rfc822", "RET=FULL: message/rfc822")


def delay_report():
    p = make(["-R", "delayed", "-a", "bob@example.test", "-S", "4.4.1",
              "-m", "mx.example.test[192.0.2.5]:25", "-w", "1700400000",
              "-d", "connect to mx.example.test[192.0.2.5]:25: Connection refused"])
    if not ok(p.returncode == 0, "delay report built"):
        return
    wire_ok(p.stdout, "delay report")
    msg = parse(p.stdout)
    ok(msg["Subject"] == "Delayed Mail (still being retried)", "delay subject")
    parts = parts_of(msg)
    ok("THIS IS A WARNING ONLY" in parts[0].get_content(), "delay action text")
    _, rcpts = status_blocks(parts[1])
    ok(rcpts[0]["Action"] == "delayed" and rcpts[0]["Status"] == "4.4.1", "delayed 4.4.1")
    ok(rcpts[0]["Will-Retry-Until"] is not None, "Will-Retry-Until for delayed")
    ok(parts[2].get_content_type() == "text/rfc822-headers", "delay: headers only")
    ok(str(rcpts[0]["Diagnostic-Code"]).startswith("X-Mailgw; connect to"),
       "our own diagnostic has type X-Mailgw")


def eight_bit_original():
    orig = ORIGINAL.replace(b"Hello Bob,", "Grüße, Bob".encode())
    p = make(["-Q", "-R", "failed", "-a", "bob@example.test"], original=orig)
    if not ok(p.returncode == 0, "report of an 8-bit original"):
        return
    msg = parse(p.stdout)
    ok(msg["Content-Transfer-Encoding"] == "8bit", "top level: 8bit")
    parts = parts_of(msg)
    ok(parts[0]["Content-Transfer-Encoding"] is None, "text part stays 7-bit")
    ok(parts[2]["Content-Transfer-Encoding"] == "8bit", "returned message: 8bit")
    ok("body=2 smtputf8=0" in p.stderr.decode(), "report envelope: 8BITMIME, no SMTPUTF8")
    ok(b"Gr\xc3\xbc\xc3\x9fe, Bob" in p.stdout, "8-bit octets returned unchanged")


def relayed_report():
    p = make(["-R", "relayed", "-a", "bob@example.test", "-m", "mx.example.test[192.0.2.5]:25",
              "-d", "250 2.0.0 Ok: queued as ABC", "-R", "delivered", "-a", "carol@example.test",
              "-S", "5.1.1"])
    if not ok(p.returncode == 0, "success report built"):
        return
    msg = parse(p.stdout)
    ok(msg["Subject"] == "Successful Mail Delivery Report", "success subject")
    parts = parts_of(msg)
    per_msg, rcpts = status_blocks(parts[1])
    ok(per_msg["Original-Envelope-Id"] is None, "no Original-Envelope-Id without ENVID")
    ok(rcpts[0]["Action"] == "relayed" and rcpts[0]["Status"] == "2.0.0", "relayed 2.0.0")
    ok(rcpts[1]["Action"] == "delivered" and rcpts[1]["Status"] == "2.0.0",
       "a status of the wrong class is replaced (5.1.1 for delivered -> 2.0.0)")
    ok("delivery via mx.example.test" in parts[0].get_content(), "success text")
    ok(parts[2].get_content_type() == "text/rfc822-headers", "success: headers only")


def hostile():
    evil = ("550 5.1.1 bad\r\nBcc: victim@example.net\r\n\r\n--x\nSubject: injected\x00\x07"
            "\x1b[31m end").replace("\x00", "")
    longword = "A" * 5000
    orig = (b"Subject: long\r\nX-Long: " + b"h" * 3000 + b"\r\n\r\n" + b"b" * 5000 +
            b"\r\nbare lf\nbare cr\rend\r\n")
    p = make(["-s", "weird\x01sender@example.org", "-q", "Q\r\nX-Evil: 1",
              "-H", "mx.example.test\r\nX-Host: 1",
              "-R", "failed", "-a", "bob@example.test", "-d", evil,
              "-m", "evil\r\nX-Remote: 1[192.0.2.9]:25",
              "-R", "failed", "-a", "carol@example.test", "-d", longword,
              "-o", "rfc822;carol+0D+0AX-Orcpt:+201@example.test"], original=orig)
    if not ok(p.returncode == 0, "hostile report built"):
        return
    raw = p.stdout
    wire_ok(raw, "hostile report")
    msg = parse(raw)
    ok(msg["Bcc"] is None and msg["X-Evil"] is None and msg["X-Host"] is None,
       "no injected top-level header")
    ok(msg["To"] is not None and "\x01" not in str(msg["To"]), "control char removed from To")
    ok(re.match(r"^<[^<>\s]+>$", str(msg["Message-ID"])) is not None, "Message-ID well formed")
    parts = parts_of(msg)
    text = parts[0].get_content()
    ok(not re.search(r"^(X-Evil|X-Host|Bcc|Subject|X-Orcpt|X-Remote):", text, re.M),
       "no injected line in the text part")
    per_msg, rcpts = status_blocks(parts[1])
    ok(len(rcpts) == 2, "still two recipient blocks (no injected block)")
    ok(all(b["Bcc"] is None and b["Subject"] is None and b["X-Remote"] is None and
           b["X-Orcpt"] is None for b in [per_msg] + rcpts), "no injected status field")
    dc = str(rcpts[0]["Diagnostic-Code"])
    ok("Bcc: victim@example.net" in dc and "\x1b" not in dc and "\x07" not in dc,
       "diagnostic kept as one cleaned field")
    ok(rcpts[0]["Remote-MTA"] is None or "\r" not in str(rcpts[0]["Remote-MTA"]), "Remote-MTA clean")
    ok(per_msg["Reporting-MTA"] is not None and "\n" not in str(per_msg["Reporting-MTA"]),
       "Reporting-MTA clean")
    dc2 = re.sub(r"\s", "", str(rcpts[1]["Diagnostic-Code"]))
    ok(dc2.startswith("X-Mailgw;AAAA") and len(dc2) <= 2048 + 9,
       "over-long diagnostic cut and folded (%d)" % len(dc2))
    ok(rcpts[1]["Original-Recipient"] == "rfc822; carol+0D+0AX-Orcpt:+201@example.test",
       "ORCPT with CR/LF stays in xtext")
    inner = parts[2].get_payload()[0]
    ok(inner["Subject"] == "long", "original with long lines still parses")
    ok(b"bare lf\r\nbare cr\r\nend\r\n" in raw, "bare CR/LF in the original become CRLF")


def boundary_collision():
    cand = "=_BOUNDARY_IN_CONTENT_1"
    orig = ORIGINAL + b"--" + cand.encode() + b"\r\n" + b"Content-Type: text/html\r\n\r\nX\r\n--" + \
        cand.encode() + b"--\r\n"
    p = make(["-b", cand, "-R", "failed", "-a", "bob@example.test"], original=orig)
    if not ok(p.returncode == 0, "report with a boundary inside the original"):
        return
    msg = parse(p.stdout)
    ok(msg.get_boundary() != cand, "a boundary found in the content is not used")
    parts = parts_of(msg)
    inner = parts[2].get_payload()[0]
    ok(cand in inner.get_content(), "the original's text is intact")
    p = make(["-b", cand, "-b", "=_free_candidate_2", "-R", "failed", "-a", "bob@example.test"],
             original=orig)
    ok(parse(p.stdout).get_boundary() == "=_free_candidate_2", "a free candidate is taken")


def null_sender_and_loops():
    p = make(["-s", "", "-R", "failed", "-a", "bob@example.test"], expect_rc=2)
    ok(p.returncode == 2 and b"no bounce to <>" in p.stderr, "no bounce to <>")
    first = make(["-R", "failed", "-a", "bob@example.test"]).stdout
    p = make(["-s", "someone@example.org", "-R", "failed", "-a", "x@example.test"],
             original=first, expect_rc=2)
    ok(p.returncode == 2 and b"no bounce about a delivery report" in p.stderr,
       "no bounce about our own bounce")


def limits():
    big = ORIGINAL + (b"x" * 70 + b"\r\n") * 3000
    p = make(["-l", "4000", "-R", "failed", "-a", "bob@example.test"], original=big)
    if not ok(p.returncode == 0, "report of a large original"):
        return
    ok(len(p.stdout) < 4000 + 4000, "report size bounded by the limit (%d)" % len(p.stdout))
    parts = parts_of(parse(p.stdout))
    inner = parts[2].get_payload()[0]
    ok(inner["Subject"] == "quarterly numbers", "headers kept in the cut original")
    ok("truncated" in str(parts[2]["Content-Description"]), "cut original marked truncated")


def smtputf8():
    orig = ORIGINAL
    p = make(["-u", "-Q", "-s", "s\u00e9nder@example.org",
              "-R", "failed", "-a", "jos\u00e9@example.test", "-o", "rfc822;jos+C3+A9@example.test"],
             original=orig)
    if not ok(p.returncode == 0, "SMTPUTF8 report built"):
        return
    msg = parse(p.stdout)
    _, rcpts = status_blocks(parts_of(msg)[1])
    ok(rcpts[0]["Final-Recipient"] == "rfc822; jos\u00e9@example.test", "SMTPUTF8: raw UTF-8 address")
    ok(rcpts[0]["Original-Recipient"] == "rfc822; jos\u00e9@example.test", "SMTPUTF8: ORCPT decoded")
    ok("smtputf8=1" in p.stderr.decode() and "body=2" in p.stderr.decode(),
       "report envelope: SMTPUTF8 and 8BITMIME")
    p = make(["-R", "failed", "-a", "jos\u00e9@example.test", "-o", "rfc822;jos+C3+A9@example.test"])
    raw = p.stdout
    _, rcpts = status_blocks(parts_of(parse(raw))[1])
    ok(rcpts[0]["Final-Recipient"] == "rfc822; jos+C3+A9@example.test", "no SMTPUTF8: xtext address")
    ok(rcpts[0]["Original-Recipient"] == "rfc822; jos+C3+A9@example.test", "no SMTPUTF8: xtext ORCPT")
    ok(all(b < 0x80 for b in raw), "no SMTPUTF8: the report is 7-bit")


def template():
    with tempfile.NamedTemporaryFile("w", suffix=".tmpl", delete=False) as f:
        f.write("# comment line %HOSTNAME%\nHost %HOSTNAME% / 100%% / %UNKNOWN% / %SENDER%\n"
                "%RECIPIENTS%\nbye\n")
        path = f.name
    try:
        p = make(["-t", path, "-R", "failed", "-a", "bob@example.test",
                  "-d", "550 %HOSTNAME% %SENDER% %%"])
        if not ok(p.returncode == 0, "report with a custom template"):
            return
        text = parts_of(parse(p.stdout))[0].get_content()
        ok(text.startswith("Host mx.example.test / 100% / %UNKNOWN% / sender@example.org"),
           "macros expanded, %%, unknown macro literal, comments dropped")
        ok("<bob@example.test>: 550 %HOSTNAME% %SENDER% %%" in text,
           "macro syntax inside a value is not expanded")
        shipped = os.path.join(ROOT, "conf", "dsn.tmpl")
        a = make(["-t", shipped, "-R", "failed", "-a", "bob@example.test", "-b", "=_x"]).stdout
        b = make(["-R", "failed", "-a", "bob@example.test", "-b", "=_x"]).stdout
        strip = lambda r: re.sub(rb"Message-ID: <[^>]*>", b"", r)
        ok(strip(a) == strip(b), "conf/dsn.tmpl gives the same text as the built-in template")
    finally:
        os.unlink(path)


if not os.access(HELPER, os.X_OK):
    print("1..0 # SKIP %s not built (make B=%s)" % (HELPER, BUILD))
    sys.exit(0)

for t in (fail_report, hdrs_report, delay_report, eight_bit_original, relayed_report, hostile,
          boundary_collision,
          null_sender_and_loops, limits, smtputf8, template):
    try:
        t()
    except Exception as e:  # a crash is a failure, not a silent skip
        ok(False, "%s raised %r" % (t.__name__, e))
done()
