#!/usr/bin/python3
# mime_corpus.t - lib/mime over the public corpora in ../shared/corpus
# (read in place, never copied; skipped when the folder is absent), through
# t/helpers/mimetree:
#  - every file of mime/** and av/clamav-unit-tests/*.eml, *.mail parses
#    (exit 0, a tree printed, no sanitizer report on stderr);
#  - the MimeKit mbox files with a *-summary.txt: our view-0 tree has the
#    same Content-Type structure, message by message;
#  - every ClamAV tricky-boundary message (and clam.mail) exposes the
#    ClamAV test file (its SHA-256 from av/sigs/clamav.hdb) as a decoded
#    part, whichever view holds it;
#  - the golden trees t/mime/NAME.eml -> NAME.ref through the helper too.
# Environment: B = build directory (default "build"), MIME_CORPUS = corpus
# folder (default <repo>/../shared/corpus).
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("B", "build")
HELPER = os.path.join(ROOT, BUILD, "t", "helpers", "mimetree")
CORPUS = os.environ.get("MIME_CORPUS",
                        os.path.join(os.path.dirname(ROOT), "shared", "corpus"))

sys.path.insert(0, os.path.join(ROOT, "t", "lib"))
from tap import diag, done, ok, skip_all  # noqa: E402


def run(args):
    p = subprocess.run([HELPER] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")


def corpus_files():
    out = []
    for sub in ("mime",):
        for d, _, files in os.walk(os.path.join(CORPUS, sub)):
            out += [os.path.join(d, f) for f in files]
    av = os.path.join(CORPUS, "av", "clamav-unit-tests")
    if os.path.isdir(av):
        out += [os.path.join(av, f) for f in os.listdir(av)
                if f.endswith(".eml") or f.endswith(".mail")]
    return sorted(out)


def test_parse_all():
    for path in corpus_files():
        rc, out, err = run([path])
        good = rc == 0 and out.startswith("message parts=") and err == ""
        if not ok(good, "parses: " + os.path.relpath(path, CORPUS)):
            diag("rc=%d stderr=%s" % (rc, err[:2000]))


def summary_messages(text):
    """[(from-line, [content-type lines])] of a summary or of our -s -m."""
    msgs = []
    for line in text.splitlines():
        if line.startswith("From "):
            msgs.append((line.strip(), []))
        elif msgs and re.match(r"^\s*Content-Type: ", line):
            msgs[-1][1].append(line.rstrip().lower())
    return msgs


def test_mimekit_summaries():
    mbox = os.path.join(CORPUS, "mime", "mimekit", "mbox")
    if not os.path.isdir(mbox):
        return
    for f in sorted(os.listdir(mbox)):
        if not f.endswith("-summary.txt"):
            continue
        src = os.path.join(mbox, f.replace("-summary.txt", ".mbox.txt"))
        if not os.path.exists(src):
            continue
        with open(os.path.join(mbox, f), encoding="utf-8", errors="replace") as fh:
            want = summary_messages(fh.read())
        rc, out, _ = run(["-s", "-m", src])
        got = summary_messages(out)
        ok(rc == 0 and len(got) == len(want),
           "%s: %d messages (want %d)" % (f, len(got), len(want)))
        for i, (w, g) in enumerate(zip(want, got)):
            if not ok(w[1] == g[1], "%s message %d (%s) structure" % (f, i + 1, w[0])):
                diag("want:\n" + "\n".join(w[1]) + "\ngot:\n" + "\n".join(g[1]))


def test_clamav_payload():
    hdb = os.path.join(CORPUS, "av", "sigs", "clamav.hdb")
    av = os.path.join(CORPUS, "av", "clamav-unit-tests")
    if not (os.path.exists(hdb) and os.path.isdir(av)):
        return
    with open(hdb) as fh:
        sha, size, name = fh.readline().strip().split(":")[:3]
    for f in sorted(os.listdir(av)):
        if not (f.startswith("clam.mail")):
            continue
        rc, out, _ = run([os.path.join(av, f)])
        hit = re.search(r"size=%s sha256=%s" % (size, sha), out)
        if not ok(rc == 0 and hit, "%s: %s found as a decoded part" % (f, name)):
            diag(out)


def test_golden():
    gdir = os.path.join(ROOT, "t", "mime")
    for f in sorted(os.listdir(gdir)):
        if not f.endswith(".eml"):
            continue
        with open(os.path.join(gdir, f[:-4] + ".ref"), encoding="utf-8") as fh:
            want = fh.read()
        rc, out, _ = run([os.path.join(gdir, f)])
        if not ok(rc == 0 and out == want, "golden " + f):
            diag(out)


def main():
    if not os.path.exists(HELPER):
        skip_all("%s not built" % HELPER)
    test_golden()
    if not os.path.isdir(CORPUS):
        print("# corpus %s absent: corpus tests skipped" % CORPUS)
    else:
        test_parse_all()
        test_mimekit_summaries()
        test_clamav_payload()
    done()


main()
