"""tap - TAP output for the Python tests: ok, is_, diag, skip_all, done."""
import sys

_count = 0
_failed = 0


def ok(cond, name):
    """One test line; returns cond."""
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_count, name))
    sys.stdout.flush()
    return cond


def is_(got, want, name):
    """ok(got == want), with both shown when they differ."""
    if not ok(got == want, name):
        diag("got:  %r\nwant: %r" % (got, want))
    return got == want


def diag(text):
    for line in str(text).splitlines():
        print("# " + line)
    sys.stdout.flush()


def skip_all(why):
    print("1..0 # SKIP %s" % why)
    sys.exit(0)


def done():
    """The plan, then exit with the number of failures (0: all passed)."""
    print("1..%d" % _count)
    sys.stdout.flush()
    sys.exit(min(_failed, 254))
