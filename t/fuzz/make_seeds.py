#!/usr/bin/python3
"""Write the seed corpora of the lib/proto and lib/addr fuzz targets.

    python3 t/fuzz/make_seeds.py      (from the top of the tree)

t/fuzz/proto/: mode byte + payload (see t/fuzz/proto.c).
t/fuzz/addr/:  mode byte + payload (see t/fuzz/addr.c).
The files are committed; rerun this after changing the formats.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
STR, INT, DATA = 1, 2, 3


def attr(t, name, value):
    if isinstance(name, str):
        name = name.encode()
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, int):
        value = struct.pack(">q", value)
    return struct.pack(">BH", t, len(name)) + name + struct.pack(">I", len(value)) + value


def frame(body, nfds=0):
    return struct.pack(">IH", len(body), nfds) + body


def write(dirname, seeds):
    d = os.path.join(HERE, dirname)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def proto_seeds():
    hello = attr(STR, "proto", "qmgr-commit") + attr(INT, "version", 1)
    new = attr(STR, "op", "new") + attr(STR, "client", "mail.example[192.0.2.1]")
    rcpts = b"".join(attr(STR, "rcpt", "u%d@example.test" % i) for i in range(5))
    binary = attr(DATA, "blob", bytes(range(256))) + attr(DATA, "empty", b"")
    bad = {
        "bad-int-len": attr(INT, "n", b"1234567"),
        "bad-name": attr(STR, "a b", "x"),
        "bad-str": attr(STR, "s", "a\r\nb"),
        "bad-type": attr(9, "t", "x"),
        "truncated": attr(STR, "op", "commit")[:-3],
        "empty-name": attr(STR, "", "x"),
    }
    seeds = {
        "decode-hello": b"\x00" + hello,
        "decode-new": b"\x00" + new,
        "decode-rcpts": b"\x00" + rcpts,
        "decode-binary": b"\x00" + binary,
        "decode-empty": b"\x00",
        "encode-attrs": b"\x03op\x00commit\x00n\x00x\x00d\x00ab\x00",
    }
    for k, v in bad.items():
        seeds["decode-" + k] = b"\x00" + v
    stream = frame(hello) + frame(new) + frame(rcpts) + frame(binary)
    seeds["conn-stream"] = b"\x01" + stream
    seeds["conn-bytewise"] = b"\x01" + frame(hello) + frame(new)
    seeds["conn-chunks-fds"] = bytes([0x05 | (5 << 4)]) + frame(new, 1) + frame(hello)
    seeds["conn-echo"] = bytes([0x09 | (15 << 4)]) + stream
    seeds["conn-echo-fds"] = bytes([0x0d | (15 << 4)]) + frame(new, 1) + frame(new, 1)
    seeds["conn-too-long"] = b"\x01" + struct.pack(">IH", 0x100001, 0)
    seeds["conn-fd-mismatch"] = b"\x01" + frame(new, 2)
    seeds["conn-bad-body"] = b"\x01" + frame(bad["bad-str"])
    seeds["recv-stream"] = b"\x02" + frame(new, 1) + frame(hello)
    seeds["recv-truncated"] = b"\x02" + frame(hello)[:-4]
    seeds["recv-many-fds"] = b"\x02" + struct.pack(">IH", 0, 9)
    write("proto", seeds)


def addr_seeds():
    # mode: 0 MAIL, 1 RCPT (bit 3: ADDR_UTF8, bit 4: SMTPUTF8_OK, bit 5:
    # BARE_OK); 2 wildmatch "mask\0string"; 3 IP mask "mask\0ip";
    # 4 mask list "item\0item\0...\0\0addr-or-ip"; 5 xtext; 6 mask checks.
    paths = {
        "mail-plain": (0x00, "<user@example.com> SIZE=1000 BODY=8BITMIME"),
        "mail-null": (0x00, "<>"),
        "mail-params": (0x00, "<a@b> RET=HDRS ENVID=QQ+2Bx SIZE=5"),
        "mail-route": (0x00, "<@a.example,@b.example:user@d.example>"),
        "mail-quoted": (0x00, '<"a b\\"c"@x.org>'),
        "mail-literal4": (0x00, "<u@[192.0.2.1]>"),
        "mail-literal6": (0x00, "<u@[IPv6:2001:db8::1]>"),
        "mail-utf8": (0x10, "<\u00fcser@ex\u00e4mple.com> SMTPUTF8"),
        "mail-bare": (0x20, "user@example.com SIZE=1"),
        "rcpt-plain": (0x01, "<u@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+40example.test"),
        "rcpt-postmaster": (0x01, "<Postmaster>"),
        "rcpt-utf8": (0x09, "<\u00fc@\u00e4.example> ORCPT=utf-8;\u00fc@\u00e4.example"),
        "rcpt-bad": (0x01, "<a..b@x> FOO=bar"),
        "rcpt-long": (0x01, "<" + "l" * 64 + "@" + "d" * 63 + "." + "e" * 63 + ">"),
    }
    seeds = {k: bytes([m]) + v.encode() for k, (m, v) in paths.items()}
    seeds["wild-1"] = b"\x02*@example.com\x00User@EXAMPLE.com"
    seeds["wild-2"] = b"\x02a*b?c*\x00aXXbYcZZ"
    seeds["wild-3"] = b"\x02*a*a*a*a*b\x00" + b"a" * 200
    seeds["ip-1"] = b"\x03192.168.0.0/16\x00192.168.4.4"
    seeds["ip-2"] = b"\x03192.168.0.0/255.255.0.0\x00::ffff:192.168.1.1"
    seeds["ip-3"] = b"\x032001:db8::/32\x002001:db8::1"
    seeds["ip-4"] = b"\x03any\x001.2.3.4"
    seeds["ip-bad"] = b"\x031.2.3.4/255.0.255.0\x001.2.3.4"
    seeds["list-1"] = b"\x04192.168.0.0/16\x00*@example.com\x00example.org\x00\x00u@example.org"
    seeds["list-2"] = b"\x0410.0.0.0/8\x002001:db8::/32\x00any\x00\x0010.1.1.1"
    seeds["xtext-1"] = b"\x05abc+2Bdef+3D"
    seeds["xtext-2"] = b"\x05bad+0D+0A"
    seeds["check-1"] = b"\x06*@example.com"
    seeds["check-2"] = b"\x06a@b@c"
    write("addr", seeds)


if __name__ == "__main__":
    proto_seeds()
    addr_seeds()
