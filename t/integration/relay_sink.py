#!/usr/bin/python3
# relay_sink.py - a downstream SMTP server for the relay tests (aiosmtpd).
#
# Usage: relay_sink.py PORT DIR
# Listens on 127.0.0.1:PORT (ESMTP with 8BITMIME, SMTPUTF8; no DSN), and
# appends one JSON line per accepted message to DIR/messages.jsonl:
#   {"from": ..., "rcpts": [...], "data": "<message, latin-1>",
#    "message_id": "<Message-ID header or ''>"}
# Behaviour is steered by DIR/control, re-read for every command; each line
#   rcpt REGEX REPLY     answer RCPT TO addresses matching REGEX with REPLY
#                        (e.g. "rcpt ^soft@ 451 4.2.0 try later")
#   data REPLY           answer every end-of-data with REPLY
# Lines are tried in order; no match = accept.  Writes DIR/ready when
# listening.  Runs until killed.
import email
import json
import os
import re
import signal
import sys

from aiosmtpd.controller import Controller


def rules(d):
    try:
        with open(os.path.join(d, "control")) as f:
            return [l.rstrip("\n").split(" ", 2) if l.startswith("rcpt ")
                    else l.rstrip("\n").split(" ", 1) for l in f if l.strip()]
    except OSError:
        return []


class Sink:
    def __init__(self, d):
        self.dir = d

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for r in rules(self.dir):
            if r[0] == "rcpt" and len(r) == 3 and re.search(r[1], address):
                return r[2]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        for r in rules(self.dir):
            if r[0] == "data" and len(r) == 2:
                return r[1]
        data = envelope.content.decode("latin-1")
        msg = email.message_from_string(data)
        sender = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        rec = {"from": sender, "rcpts": list(envelope.rcpt_tos), "data": data,
               "message_id": msg.get("Message-ID", "")}
        with open(os.path.join(self.dir, "messages.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        return "250 2.0.0 Ok: queued"


def main():
    port, d = int(sys.argv[1]), sys.argv[2]
    ctl = Controller(Sink(d), hostname="127.0.0.1", port=port, decode_data=False,
                     enable_SMTPUTF8=True, data_size_limit=0)
    ctl.start()
    open(os.path.join(d, "ready"), "w").close()
    try:
        signal.pause()
    finally:
        ctl.stop()


if __name__ == "__main__":
    main()
