"""tap - TAP output for the Python tests: ok, is_, diag, skip, bail,
skip_all, done."""
import sys

_count = 0
_failed = 0


def ok(cond, name):
    """One test line ('#' dropped from the name: never a directive);
    returns cond as a bool."""
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_count, str(name).replace("#", "")))
    sys.stdout.flush()
    return bool(cond)


def is_(got, want, name):
    """ok(got == want), with both shown when they differ."""
    if not ok(got == want, name):
        diag("got:  %r\nwant: %r" % (got, want))
    return got == want


def diag(text):
    for line in str(text).splitlines():
        print("# " + line)
    sys.stdout.flush()


def skip(count, why):
    """count tests skipped."""
    global _count
    for _ in range(count):
        _count += 1
        print("ok %d # skip %s" % (_count, why))
    sys.stdout.flush()


def bail(text):
    print("Bail out! " + (str(text).splitlines() or [""])[0])
    diag(text)
    sys.exit(255)


def skip_all(why):
    print("1..0 # SKIP %s" % why)
    sys.exit(0)


def failures():
    """Failed tests so far (for a test that prints its plan up front)."""
    return _failed


def done():
    """The plan, then exit with the number of failures (0: all passed)."""
    print("1..%d" % _count)
    sys.stdout.flush()
    sys.exit(min(_failed, 254))
